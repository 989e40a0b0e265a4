package store

import (
	"context"
	"encoding/binary"
	"errors"
	"net/netip"
	"sort"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Per-unit and per-network caps.
//
// One sender must not fill the disk (and so make the trap answer 452 to
// everyone): per unit (an IPv4 address, an IPv6 /64: what the list
// publishes) and per window of Options.UnitWindow, at most
// Options.UnitMaxEvents events are stored one by one and at most
// Options.UnitMaxRawBytes of raw messages (compressed, as on disk). Past
// the event cap an event is summarised: counted in the unit's summary
// record for that window, by kind, and not stored; its raw message is
// dropped. The first event of each kind in a window is always stored (at
// most one per kind past the cap), so scoring, which reads events, still
// sees every kind a unit sent: one hit lists, and a burst adds little.
// Past the raw cap, events are still stored but without their raw message.
//
// A sender with a whole network would get the unit's allowance once per
// unit in it: 65536 times for an IPv6 /48, 256 times for an IPv4 /24. So
// the same rule applies a second time per network (Network: IPv4 /24, IPv6
// /48) and window, with its own caps (Options.NetMaxEvents,
// NetMaxRawBytes), after the unit's: an event the unit's rule keeps is
// summarised instead while the network has stored NetMaxEvents, except the
// first event of each kind per unit and window, which is always stored
// (without its raw message once a cap is reached), so that every unit that
// sends is still listed: a network over its cap stores at most
// NetMaxEvents plus one event per unit and kind per window. Raw messages
// past the network's raw cap are dropped, the event kept. The network's
// summary record is the sum of its units': every event of the network is
// counted in both (stored, summarised by either cap, raw dropped).
//
// The decision is a fold of the evidence in commit order: the window comes
// from the event's time, never from the host clock, and the summary
// records are read and written in the commit's transaction, so a replica
// applying the same events in the same order makes the same decisions
// (cluster/replica.go applies a network's events in stream order for
// that). Summarised events keep no index entry (that would cost a key per
// event again), so a summarised event delivered twice is counted twice in
// the summaries.
//
//	'u' fam unit window   unit summary; value: version byte + JSON UnitSummary
//	    fam 4 or 6, unit 4 bytes (IPv4) or the 8 bytes of the /64,
//	    window int64 unix seconds of the window's start.
//	'n' fam net window    network summary; value: version byte + JSON UnitSummary
//	    fam 4 or 6, net the 3 bytes of the IPv4 /24 or the 6 bytes of the
//	    IPv6 /48, window as for 'u'.

const (
	pUnit = 'u'
	pNet  = 'n'
)

// UnitSummary is what the store did with one unit's evidence in one
// window; as a network summary (NetSummaries), with the network's evidence.
type UnitSummary struct {
	Unit   netip.Prefix `json:"unit"`   // the unit, or the network
	Window time.Time    `json:"window"` // start of the window
	// Events and RawBytes were stored one by one (raw bytes compressed).
	Events   int     `json:"events"`
	RawBytes int64   `json:"raw_bytes"`
	Kinds    KindSet `json:"kinds"` // kinds stored one by one
	// Summarised counts the events past a cap (UnitMaxEvents, or the
	// network's NetMaxEvents), by kind, that were only counted here;
	// SummarisedBytes their raw messages, dropped.
	Summarised      map[Kind]int `json:"summarised,omitempty"`
	SummarisedBytes int64        `json:"summarised_bytes,omitempty"`
	// RawDropped counts events stored without their raw message (over
	// a raw cap, or the first of a kind past an event cap).
	RawDropped int `json:"raw_dropped,omitempty"`
	// First and Last are the times of the first and last summarised event.
	First time.Time `json:"first,omitzero"`
	Last  time.Time `json:"last,omitzero"`
}

// SummarisedTotal is the number of summarised events.
func (u *UnitSummary) SummarisedTotal() int {
	n := 0
	for _, c := range u.Summarised {
		n += c
	}
	return n
}

// Network is the network the per-network caps count a's unit in: the IPv4
// /24 or the IPv6 /48 holding a (as the trap's per-prefix connection caps).
func Network(a netip.Addr) netip.Prefix {
	a = a.Unmap()
	bits := 48
	if a.Is4() {
		bits = 24
	}
	p, _ := a.Prefix(bits)
	return p
}

func unitKeyPrefix(unit netip.Prefix) []byte {
	a := unit.Addr()
	if a.Is4() {
		v := a.As4()
		return append([]byte{pUnit, 4}, v[:]...)
	}
	v := a.As16()
	return append([]byte{pUnit, 6}, v[:8]...)
}

// netKeyPrefix is the key prefix of the networks in p (a Network or wider).
func netKeyPrefix(p netip.Prefix) []byte { return addrPrefixKey(pNet, p) }

// capWindow is the start of the window holding t.
func (s *Store) capWindow(t time.Time) time.Time {
	w := s.opts.UnitWindow
	if w <= 0 {
		w = time.Hour
	}
	return t.UTC().Truncate(w)
}

func (s *Store) capsOn() bool {
	return s.opts.UnitMaxEvents > 0 || s.opts.UnitMaxRawBytes > 0 || s.netCapsOn()
}

func (s *Store) netCapsOn() bool { return s.opts.NetMaxEvents > 0 || s.opts.NetMaxRawBytes > 0 }

// caps are the store's caps.
func (s *Store) caps() Caps {
	return Caps{UnitMaxEvents: s.opts.UnitMaxEvents, UnitMaxRawBytes: s.opts.UnitMaxRawBytes,
		NetMaxEvents: s.opts.NetMaxEvents, NetMaxRawBytes: s.opts.NetMaxRawBytes}
}

func capKey(prefix []byte, window time.Time) []byte {
	return binary.BigEndian.AppendUint64(prefix, uint64(window.Unix()))
}

func unitCapKey(unit netip.Prefix, window time.Time) []byte {
	return capKey(unitKeyPrefix(unit), window)
}

func netCapKey(net netip.Prefix, window time.Time) []byte {
	return capKey(netKeyPrefix(net), window)
}

// capState holds the summaries a group transaction read and changed.
type capState struct {
	s    *Store
	txn  *badger.Txn
	sums map[string]*UnitSummary
}

// get returns the summary under key (of p and window), read once per
// transaction.
func (c *capState) get(key []byte, p netip.Prefix, window time.Time) (*UnitSummary, error) {
	if u := c.sums[string(key)]; u != nil {
		return u, nil
	}
	u := &UnitSummary{Unit: p, Window: window}
	it, err := c.txn.Get(key)
	switch {
	case err == nil:
		if err := it.Value(func(v []byte) error { return decodeJSON(v, u) }); err != nil {
			return nil, err
		}
	case !errors.Is(err, badger.ErrKeyNotFound):
		return nil, err
	}
	c.sums[string(key)] = u
	return u, nil
}

// admit decides what of r is written: the event, its raw message. It
// updates the unit's summary and, with network caps, the network's.
func (c *capState) admit(r *putReq) (Admission, error) {
	u, err := c.get(r.capKey, r.unit, r.window)
	if err != nil {
		return Admission{}, err
	}
	var n *UnitSummary
	if r.netKey != nil {
		if n, err = c.get(r.netKey, r.net, r.window); err != nil {
			return Admission{}, err
		}
	}
	return c.s.caps().Admit(u, n, r.kind, r.time, r.raw), nil
}

// Caps are the per-unit and per-network caps of one window; zero or less
// is no cap.
type Caps struct {
	UnitMaxEvents   int
	UnitMaxRawBytes int64
	NetMaxEvents    int
	NetMaxRawBytes  int64
}

// CapBy names the cap that decided.
type CapBy uint8

// The caps.
const (
	CapNone CapBy = iota
	CapUnit       // the unit's (UnitMaxEvents, UnitMaxRawBytes)
	CapNet        // the network's (NetMaxEvents, NetMaxRawBytes)
)

// String is the cap's name as metrics label it: "unit", "network" ("" for CapNone).
func (b CapBy) String() string {
	switch b {
	case CapUnit:
		return "unit"
	case CapNet:
		return "network"
	}
	return ""
}

// Admission is what Caps.Admit decided for one event.
type Admission struct {
	Event bool  // keep the event one by one (false: summarised)
	Raw   bool  // with its raw message
	By    CapBy // the cap that summarised the event or dropped its raw message; CapNone: neither
}

// Admit is the caps' rule, applied to one more event of a unit in the
// window of unit (its summary) and net (its network's; nil: no network
// caps): whether the event is kept one by one and whether with its raw
// message (nil raw is none). It counts the event in both summaries.
//
// Past the unit's event cap, or the network's, the event is summarised,
// unless it is the unit's first of its kind in the window: that one is
// kept, without its raw message. Past the unit's raw cap, or the
// network's, the raw message is dropped. The unit's rule comes first:
// when both caps are reached, By names the unit's.
//
// The store applies it to what it commits; a trap node's spool
// (forward.Spool) applies the same rule before forwarding, so that it does
// not spool what the store would only summarise.
func (c Caps) Admit(unit, net *UnitSummary, kind Kind, t time.Time, raw []byte) Admission {
	var by CapBy
	switch {
	case c.UnitMaxEvents > 0 && unit.Events >= c.UnitMaxEvents:
		by = CapUnit
	case net != nil && c.NetMaxEvents > 0 && net.Events >= c.NetMaxEvents:
		by = CapNet
	}
	if by != CapNone && unit.Kinds.Has(kind) {
		unit.summarise(kind, t, raw)
		if net != nil {
			net.summarise(kind, t, raw)
		}
		return Admission{By: by}
	}
	unit.stored(kind)
	if net != nil {
		net.stored(kind)
	}
	if raw == nil {
		return Admission{Event: true}
	}
	n := int64(len(raw))
	switch {
	case by != CapNone: // the first of its kind past an event cap
	case c.UnitMaxRawBytes > 0 && unit.RawBytes+n > c.UnitMaxRawBytes:
		by = CapUnit
	case net != nil && c.NetMaxRawBytes > 0 && net.RawBytes+n > c.NetMaxRawBytes:
		by = CapNet
	default:
		unit.RawBytes += n
		if net != nil {
			net.RawBytes += n
		}
		return Admission{Event: true, Raw: true}
	}
	unit.RawDropped++
	if net != nil {
		net.RawDropped++
	}
	return Admission{Event: true, By: by}
}

func (u *UnitSummary) stored(kind Kind) {
	u.Events++
	u.Kinds = u.Kinds.Add(kind)
}

func (u *UnitSummary) summarise(kind Kind, t time.Time, raw []byte) {
	if u.Summarised == nil {
		u.Summarised = map[Kind]int{}
	}
	u.Summarised[kind]++
	u.SummarisedBytes += int64(len(raw))
	if u.First.IsZero() || t.Before(u.First) {
		u.First = t
	}
	if t.After(u.Last) {
		u.Last = t
	}
}

// flush writes the changed summaries into the transaction.
func (c *capState) flush() error {
	for k, u := range c.sums {
		val, err := encodeJSON(u)
		if err != nil {
			return err
		}
		if err := c.txn.SetEntry(c.s.ttlEntry([]byte(k), val, c.s.opts.Retention)); err != nil {
			return err
		}
	}
	return nil
}

// unmapPrefix is p masked, an IPv4-mapped prefix as IPv4.
func unmapPrefix(p netip.Prefix) netip.Prefix {
	p = p.Masked()
	if a := p.Addr(); a.Is4In6() {
		p = netip.PrefixFrom(a.Unmap(), max(p.Bits()-96, 0)).Masked()
	}
	return p
}

// Summaries returns the per-unit summaries of the units in p (an IPv6
// prefix longer than /64 means its /64), newest window first, at most
// limit (0: all).
func (s *Store) Summaries(ctx context.Context, p netip.Prefix, limit int) ([]UnitSummary, error) {
	p = unmapPrefix(p)
	if a := p.Addr(); a.Is6() && p.Bits() > 64 {
		p = Unit(a)
	}
	var prefix []byte
	if p.Addr().Is4() {
		prefix = addrPrefixKey(pUnit, p)
	} else {
		v := p.Addr().As16()
		prefix = append([]byte{pUnit, 6}, v[:p.Bits()/8]...)
	}
	return s.summaries(ctx, prefix, p, limit)
}

// NetSummaries returns the per-network summaries (Network: IPv4 /24, IPv6
// /48) of the networks overlapping p (a longer prefix, or an address,
// means its network), newest window first, at most limit (0: all). They
// are written only while network caps are on (Options.NetMaxEvents,
// NetMaxRawBytes).
func (s *Store) NetSummaries(ctx context.Context, p netip.Prefix, limit int) ([]UnitSummary, error) {
	p = unmapPrefix(p)
	if n := Network(p.Addr()); p.Bits() > n.Bits() {
		p = n
	}
	return s.summaries(ctx, netKeyPrefix(p), p, limit)
}

func (s *Store) summaries(ctx context.Context, prefix []byte, p netip.Prefix, limit int) ([]UnitSummary, error) {
	var out []UnitSummary
	err := scanValues(ctx, s.db, prefix, func(u UnitSummary) error {
		if p.Overlaps(u.Unit) {
			out = append(out, u)
		}
		return nil
	})
	sort.SliceStable(out, func(i, j int) bool { return out[i].Window.After(out[j].Window) })
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, err
}
