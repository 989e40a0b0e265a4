package store

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// Kind is what a trap made of a message or session. The names are part of
// the outside contract (CONTRACT.md "Classification").
type Kind uint8

// The kinds, in the order of the contract. The numeric values are stored in
// keys: append new kinds at the end, never renumber.
const (
	KindOther     Kind = 0
	KindBounce    Kind = 1
	KindAutoreply Kind = 2
	KindChallenge Kind = 3
	KindMDN       Kind = 4
	KindCallout   Kind = 5
	KindReport    Kind = 6
	KindSpam      Kind = 7
	numKinds           = 8
)

var kindNames = [numKinds]string{"other", "bounce", "autoreply", "challenge", "mdn", "callout", "report", "spam"}

// Kinds lists every kind, for tables and metrics labels.
func Kinds() []Kind {
	out := make([]Kind, numKinds)
	for i := range out {
		out[i] = Kind(i)
	}
	return out
}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Backscatter reports whether mail of this kind, sent to a never-used
// address, is backscatter (CONTRACT.md: bounce, autoreply, challenge, mdn, callout).
func (k Kind) Backscatter() bool {
	switch k {
	case KindBounce, KindAutoreply, KindChallenge, KindMDN, KindCallout:
		return true
	}
	return false
}

// ParseKind is the inverse of Kind.String.
func ParseKind(s string) (Kind, error) {
	for i, n := range kindNames {
		if strings.EqualFold(s, n) {
			return Kind(i), nil
		}
	}
	return KindOther, fmt.Errorf("%w: unknown kind %q", ErrInvalid, s)
}

// MarshalText implements encoding.TextMarshaler.
func (k Kind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (k *Kind) UnmarshalText(b []byte) error {
	v, err := ParseKind(string(b))
	if err != nil {
		return err
	}
	*k = v
	return nil
}

// EventID identifies one piece of evidence; trap nodes mint it, so a forwarded
// event stays idempotent however often it is delivered.
type EventID [16]byte

// NewEventID returns a random id.
func NewEventID() EventID {
	var id EventID
	if _, err := rand.Read(id[:]); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	return id
}

func (id EventID) String() string { return hex.EncodeToString(id[:]) }

// IsZero reports whether the id is unset.
func (id EventID) IsZero() bool { return id == EventID{} }

// ParseEventID parses the 32 hex digits of EventID.String.
func ParseEventID(s string) (EventID, error) {
	var id EventID
	if len(s) != 32 {
		return id, fmt.Errorf("%w: event id must be 32 hex digits", ErrInvalid)
	}
	if _, err := hex.Decode(id[:], []byte(s)); err != nil {
		return id, fmt.Errorf("%w: event id: %v", ErrInvalid, err)
	}
	return id, nil
}

// MarshalText implements encoding.TextMarshaler.
func (id EventID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (id *EventID) UnmarshalText(b []byte) error {
	v, err := ParseEventID(string(b))
	if err != nil {
		return err
	}
	*id = v
	return nil
}

// DSN holds the delivery-status fields of a bounce (RFC 3464 §2.2, §2.3).
type DSN struct {
	ReportingMTA    string `json:"reporting_mta,omitempty"`
	ReceivedFromMTA string `json:"received_from_mta,omitempty"`
	ArrivalDate     string `json:"arrival_date,omitempty"`
	FinalRecipient  string `json:"final_recipient,omitempty"`
	OrigRecipient   string `json:"original_recipient,omitempty"`
	Action          string `json:"action,omitempty"`
	Status          string `json:"status,omitempty"`
	RemoteMTA       string `json:"remote_mta,omitempty"`
	DiagnosticCode  string `json:"diagnostic_code,omitempty"`
}

// Original describes the message a bounce or reply was about: the mail that
// carried the forged sender.
type Original struct {
	MessageID string `json:"message_id"`
	From      string `json:"from"`
	To        string `json:"to"`
	Subject   string `json:"subject,omitempty"`
	FirstHop  string `json:"first_hop,omitempty"` // first Received header outside the reporting site
}

// Event is one piece of evidence: a message or a session a trap received.
// The client address is the TCP peer (or a PROXY header from a trusted
// proxy), never anything taken from headers.
type Event struct {
	ID         EventID    `json:"id"`
	Time       time.Time  `json:"time"`
	Node       string     `json:"node,omitempty"` // trap node that saw it
	ClientIP   netip.Addr `json:"client_ip"`
	HELO       string     `json:"helo"`
	MailFrom   string     `json:"mail_from"`
	Rcpts      []string   `json:"rcpts"`
	TrapDomain string     `json:"trap_domain"`
	TLS        bool       `json:"tls,omitempty"`
	Kind       Kind       `json:"kind"`
	SubKind    string     `json:"sub_kind,omitempty"`
	Signals    []string   `json:"signals,omitempty"`

	// Outer message.
	MessageID string            `json:"message_id,omitempty"`
	From      string            `json:"from,omitempty"`
	Subject   string            `json:"subject,omitempty"`
	Headers   map[string]string `json:"headers,omitempty"` // outer headers that matter
	Size      int64             `json:"size,omitempty"`

	DSN       *DSN     `json:"dsn,omitempty"`
	Original  Original `json:"original"`
	TrapField string   `json:"trap_field,omitempty"` // where the trap address stood (e.g. "Final-Recipient")
	MTA       string   `json:"mta,omitempty"`        // software family that wrote it (classify.Result.MTA); "" unknown or stored before 2026-12
}

// Validate checks what the store relies on.
func (e *Event) Validate() error {
	switch {
	case e.ID.IsZero():
		return fmt.Errorf("%w: event without id", ErrInvalid)
	case !e.ClientIP.IsValid():
		return fmt.Errorf("%w: event without client address", ErrInvalid)
	case e.Time.IsZero():
		return fmt.Errorf("%w: event without time", ErrInvalid)
	case int(e.Kind) >= numKinds:
		return fmt.Errorf("%w: event kind %d", ErrInvalid, e.Kind)
	}
	return nil
}

// TrapAddress is the first recipient, the trap address the event is counted under.
func (e *Event) TrapAddress() string {
	if len(e.Rcpts) == 0 {
		return ""
	}
	return strings.ToLower(e.Rcpts[0])
}

// Ref is the compact form of an event that scoring needs, read from the key
// alone (no value decoding): enough to weigh, decay and count distinct traps.
type Ref struct {
	ID     EventID
	Addr   netip.Addr
	Time   time.Time
	Kind   Kind
	Rcpt   uint32 // hash of the trap address (distinct-address weighting)
	Domain uint32 // hash of the trap domain
}

// Action is a manual listing decision, by an admin or by the public delist.
type Action struct {
	Time   time.Time    `json:"time"`
	Prefix netip.Prefix `json:"prefix"`
	Op     string       `json:"op"` // "list" or "delist"
	Who    string       `json:"who"`
	Reason string       `json:"reason"`
	Public bool         `json:"public,omitempty"` // self-service delist
	Kinds  []Kind       `json:"kinds,omitempty"`  // for "list": codes to publish; empty means bounce
}

// Manual action operations.
const (
	OpList   = "list"
	OpDelist = "delist"
)

// AuditEntry is one line of the audit trail.
type AuditEntry struct {
	Time   time.Time `json:"time"`
	Who    string    `json:"who"`
	Action string    `json:"action"`
	Target string    `json:"target,omitempty"`
	Reason string    `json:"reason,omitempty"`
	Detail string    `json:"detail,omitempty"`
}

// KindSet is a set of kinds, as a bit mask (bit k for Kind k).
type KindSet uint16

// Add returns the set with k in it.
func (s KindSet) Add(k Kind) KindSet { return s | 1<<k }

// Has reports whether k is in the set.
func (s KindSet) Has(k Kind) bool { return s&(1<<k) != 0 }

// Kinds lists the members in kind order.
func (s KindSet) Kinds() []Kind {
	var out []Kind
	for k := Kind(0); k < numKinds; k++ {
		if s.Has(k) {
			out = append(out, k)
		}
	}
	return out
}

// Unit is the listing unit an address belongs to: the address itself for
// IPv4, its /64 for IPv6 (CONTRACT.md "DNS"). Evidence is capped per unit
// (unitcap.go) and scored per unit (scoring.Unit).
func Unit(a netip.Addr) netip.Prefix {
	a = a.Unmap()
	if a.Is4() {
		return netip.PrefixFrom(a, 32)
	}
	p, _ := a.Prefix(64)
	return p
}
