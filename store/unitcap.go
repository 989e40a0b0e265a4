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

// Per-unit caps.
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
// The decision is a fold of the evidence in commit order: the window comes
// from the event's time, never from the host clock, and the summary record
// is read and written in the commit's transaction, so a replica applying
// the same events in the same order makes the same decisions. Summarised
// events keep no index entry (that would cost a key per event again), so a
// summarised event delivered twice is counted twice in the summary.
//
//	'u' fam unit window   summary; value: version byte + JSON UnitSummary
//	    fam 4 or 6, unit 4 bytes (IPv4) or the 8 bytes of the /64,
//	    window int64 unix seconds of the window's start.

const pUnit = 'u'

// UnitSummary is what the store did with one unit's evidence in one window.
type UnitSummary struct {
	Unit   netip.Prefix `json:"unit"`
	Window time.Time    `json:"window"` // start of the window
	// Events and RawBytes were stored one by one (raw bytes compressed).
	Events   int     `json:"events"`
	RawBytes int64   `json:"raw_bytes"`
	Kinds    KindSet `json:"kinds"` // kinds stored one by one
	// Summarised counts the events past UnitMaxEvents, by kind, that were
	// only counted here; SummarisedBytes their raw messages, dropped.
	Summarised      map[Kind]int `json:"summarised,omitempty"`
	SummarisedBytes int64        `json:"summarised_bytes,omitempty"`
	// RawDropped counts events stored without their raw message (over
	// UnitMaxRawBytes, or the first of a kind past UnitMaxEvents).
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

func unitKeyPrefix(unit netip.Prefix) []byte {
	a := unit.Addr()
	if a.Is4() {
		v := a.As4()
		return append([]byte{pUnit, 4}, v[:]...)
	}
	v := a.As16()
	return append([]byte{pUnit, 6}, v[:8]...)
}

// capWindow is the start of the window holding t.
func (s *Store) capWindow(t time.Time) time.Time {
	w := s.opts.UnitWindow
	if w <= 0 {
		w = time.Hour
	}
	return t.UTC().Truncate(w)
}

func (s *Store) capsOn() bool { return s.opts.UnitMaxEvents > 0 || s.opts.UnitMaxRawBytes > 0 }

func unitCapKey(unit netip.Prefix, window time.Time) []byte {
	return binary.BigEndian.AppendUint64(unitKeyPrefix(unit), uint64(window.Unix()))
}

// capState holds the summaries a group transaction read and changed.
type capState struct {
	s    *Store
	txn  *badger.Txn
	sums map[string]*UnitSummary
}

func (c *capState) get(r *putReq) (*UnitSummary, error) {
	if u := c.sums[string(r.capKey)]; u != nil {
		return u, nil
	}
	u := &UnitSummary{Unit: r.unit, Window: r.window}
	it, err := c.txn.Get(r.capKey)
	switch {
	case err == nil:
		if err := it.Value(func(v []byte) error { return decodeJSON(v, u) }); err != nil {
			return nil, err
		}
	case !errors.Is(err, badger.ErrKeyNotFound):
		return nil, err
	}
	c.sums[string(r.capKey)] = u
	return u, nil
}

// admit decides what of r is written: the event, its raw message. It
// updates the unit's summary.
func (c *capState) admit(r *putReq) (event, raw bool, err error) {
	u, err := c.get(r)
	if err != nil {
		return false, false, err
	}
	event, raw = u.Admit(c.s.opts.UnitMaxEvents, c.s.opts.UnitMaxRawBytes, r.kind, r.time, r.raw)
	return event, raw, nil
}

// Admit is the per-unit cap's rule, applied to one more event of the unit
// in u's window: whether the event is kept one by one (event) and whether
// with its raw message (raw; nil raw is none). It counts the event in u.
// maxEvents and maxRawBytes <= 0 mean no cap. The store applies it to what
// it commits; a trap node's spool (forward.Spool) applies the same rule
// before forwarding, so that it does not spool what the store would only
// summarise.
func (u *UnitSummary) Admit(maxEvents int, maxRawBytes int64, kind Kind, t time.Time, raw []byte) (event, keepRaw bool) {
	over := maxEvents > 0 && u.Events >= maxEvents
	if over && u.Kinds.Has(kind) {
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
		return false, false
	}
	u.Events++
	u.Kinds = u.Kinds.Add(kind)
	if raw == nil {
		return true, false
	}
	if over || (maxRawBytes > 0 && u.RawBytes+int64(len(raw)) > maxRawBytes) {
		u.RawDropped++
		return true, false
	}
	u.RawBytes += int64(len(raw))
	return true, true
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

// Summaries returns the per-unit summaries of the units in p (an IPv6
// prefix longer than /64 means its /64), newest window first, at most
// limit (0: all).
func (s *Store) Summaries(ctx context.Context, p netip.Prefix, limit int) ([]UnitSummary, error) {
	p = p.Masked()
	if a := p.Addr(); a.Is4In6() {
		p = netip.PrefixFrom(a.Unmap(), max(p.Bits()-96, 0)).Masked()
	} else if a.Is6() && p.Bits() > 64 {
		p = Unit(a)
	}
	var prefix []byte
	if p.Addr().Is4() {
		prefix = addrPrefixKey(pUnit, p)
	} else {
		v := p.Addr().As16()
		prefix = append([]byte{pUnit, 6}, v[:p.Bits()/8]...)
	}
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
