package classify

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"net/mail"
	"slices"
	"strings"

	"github.com/blowback-dnsbl/blowback/store"
)

// ImportRule says which messages of a mailbox are evidence and how its
// event is made (`blowback import`): the client is the address a Received
// field names (Client, RFC 5321 §4.4), the time that field's date (else the
// Date field), the envelope the delivery fields (DeliveredEnvelope).
type ImportRule struct {
	Client     HopRule  // which Received field names the client
	Domains    []string // trap domains (lower case, no final dot); a message to another domain is skipped
	AnyRcpt    bool     // accept any recipient domain
	AllKinds   bool     // accept non-backscatter kinds too
	AllowLocal bool     // accept private, loopback and link-local clients
	Node       string   // recorded as the event's node
}

// Event classifies msg (a mailbox message; fromLine its mbox From_ line)
// and returns the evidence it is, or nil and the reason it is skipped, a
// snake_case word for a summary ("no_client_ip", "not_trap_domain",
// "not_backscatter_spam"...). The event id is a hash of msg, so importing
// the same message twice gives the same event (store.ErrDuplicate).
func (r *ImportRule) Event(msg []byte, fromLine string) (*store.Event, string) {
	m, err := mail.ReadMessage(bufio.NewReader(bytes.NewReader(msg)))
	if err != nil {
		return nil, "unparseable"
	}
	h := m.Header
	hop, ok := r.Client.Client(h["Received"])
	if !ok {
		return nil, "no_client_ip"
	}
	if !r.AllowLocal && (hop.IP.IsPrivate() || hop.IP.IsLoopback() || hop.IP.IsLinkLocalUnicast() || hop.IP.IsUnspecified()) {
		return nil, "private_client_ip"
	}
	env := DeliveredEnvelope(h, fromLine)
	dom := ""
	if len(env.Rcpts) > 0 {
		if _, d, ok := strings.Cut(env.Rcpts[0], "@"); ok {
			dom = strings.ToLower(d)
		}
	}
	if !r.AnyRcpt && !slices.Contains(r.Domains, dom) {
		return nil, "not_trap_domain"
	}
	res := Classify(msg, env)
	if !r.AllKinds && !res.Kind.Backscatter() {
		return nil, "not_backscatter_" + res.Kind.String()
	}
	t := hop.Time
	if t.IsZero() {
		if d, err := h.Date(); err == nil {
			t = d
		}
	}
	if t.IsZero() {
		return nil, "no_date"
	}
	ev := &store.Event{ID: importEventID(msg), Time: t.UTC(), Node: r.Node, ClientIP: hop.IP, HELO: hop.HELO,
		MailFrom: env.MailFrom, Rcpts: env.Rcpts, TrapDomain: dom, Kind: res.Kind, SubKind: res.SubKind,
		Signals: res.Signals, MessageID: res.MessageID, From: res.From, Subject: res.Subject, Headers: res.Headers,
		Size: int64(len(msg)), DSN: res.DSN, Original: res.Original, TrapField: res.TrapField, MTA: res.MTA}
	if err := ev.Validate(); err != nil {
		return nil, "invalid"
	}
	return ev, ""
}

// importEventID is the event id of an imported message: a hash of its
// bytes, so a re-import is idempotent.
func importEventID(msg []byte) store.EventID {
	h := sha256.Sum256(append([]byte("blowback-import\x00"), msg...))
	var id store.EventID
	copy(id[:], h[:])
	return id
}
