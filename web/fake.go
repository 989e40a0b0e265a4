package web

import (
	"context"
	"net/netip"
	"sync"
	"time"

	"github.com/blowback-dnsbl/blowback/listing"
	"github.com/blowback-dnsbl/blowback/scoring"
	"github.com/blowback-dnsbl/blowback/store"
	"github.com/blowback-dnsbl/blowback/zones"
)

// FakeListing is an in-memory Reader and Delister for tests of the pages
// and APIs: units are listed by List with the kinds given, events added
// by AddEvent are shown as evidence, and Act records actions (a delist
// unlists the unit). It decides nothing by itself and reads no store.
type FakeListing struct {
	mu      sync.Mutex
	Now     func() time.Time
	listed  map[netip.Prefix]store.KindSet
	events  map[netip.Prefix][]store.Event
	actions map[netip.Prefix][]store.Action
}

// NewFakeListing returns an empty fake.
func NewFakeListing() *FakeListing {
	return &FakeListing{Now: time.Now, listed: map[netip.Prefix]store.KindSet{},
		events: map[netip.Prefix][]store.Event{}, actions: map[netip.Prefix][]store.Action{}}
}

// List lists the unit holding a with kinds.
func (f *FakeListing) List(a netip.Addr, kinds ...store.Kind) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var ks store.KindSet
	for _, k := range kinds {
		ks = ks.Add(k)
	}
	f.listed[scoring.Unit(a)] = ks
}

// AddEvent stores ev as evidence of its unit.
func (f *FakeListing) AddEvent(ev store.Event) {
	f.mu.Lock()
	defer f.mu.Unlock()
	u := scoring.Unit(ev.ClientIP)
	f.events[u] = append([]store.Event{ev}, f.events[u]...) // newest first
}

// Actions returns the actions recorded for the unit holding a.
func (f *FakeListing) Actions(a netip.Addr) []store.Action {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]store.Action(nil), f.actions[scoring.Unit(a)]...)
}

func (f *FakeListing) decide(a netip.Addr) scoring.Decision {
	u := scoring.Unit(a)
	d := scoring.Decision{Unit: u, Counts: map[store.Kind]int{}, Reason: "no backscatter on record"}
	for _, ev := range f.events[u] {
		d.Counts[ev.Kind]++
	}
	if ks, ok := f.listed[u]; ok && scoring.Listable(a) {
		d.Listed, d.Kinds, d.Reason = true, ks, "listed (fake)"
		d.Expires = f.Now().Add(24 * time.Hour)
	}
	if acts := f.actions[u]; len(acts) > 0 && acts[len(acts)-1].Op == store.OpDelist && !d.Listed {
		d.Manual, d.Reason = store.OpDelist, "delisted by "+acts[len(acts)-1].Who+": "+acts[len(acts)-1].Reason
	}
	return d
}

// Decide implements Reader.
func (f *FakeListing) Decide(a netip.Addr) (scoring.Decision, []store.Ref, []store.Action, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.decide(a), nil, append([]store.Action(nil), f.actions[scoring.Unit(a)]...), nil
}

// ExplainPage implements Reader (the decision, no evidence items).
func (f *FakeListing) ExplainPage(a netip.Addr, offset, limit int) (listing.Explanation, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	d := f.decide(a)
	x := listing.Explanation{IP: a.String(), Unit: d.Unit.String(), Listed: d.Listed, Reason: d.Reason, Manual: d.Manual,
		Codes: []string{}, Evidence: []listing.ExplainedEvent{}, Summary: []listing.KindSummary{}, Offset: offset, Limit: limit,
		Actions: append([]store.Action{}, f.actions[d.Unit]...), ActionsTotal: len(f.actions[d.Unit])}
	if d.Listed {
		for _, c := range zones.CodesOf(d.Kinds).Addrs() {
			x.Codes = append(x.Codes, c.String())
		}
	}
	return x, nil
}

// Events implements Reader.
func (f *FakeListing) Events(unit netip.Prefix, limit int) ([]store.Event, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	evs := f.events[unit]
	if limit > 0 && len(evs) > limit {
		evs = evs[:limit]
	}
	return append([]store.Event(nil), evs...), nil
}

// Summarised implements Reader (the fake summarises nothing).
func (f *FakeListing) Summarised(netip.Prefix) (map[string]int, error) { return nil, nil }

// MaxRefs implements Reader.
func (f *FakeListing) MaxRefs() int { return listing.DefaultMaxRefs }

// Act implements Delister: it records a and applies a delist or list.
func (f *FakeListing) Act(_ context.Context, a store.Action) (scoring.Decision, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	u := scoring.Unit(a.Prefix.Addr())
	if a.Time.IsZero() {
		a.Time = f.Now()
	}
	a.Prefix = u
	f.actions[u] = append(f.actions[u], a)
	switch a.Op {
	case store.OpDelist:
		delete(f.listed, u)
	case store.OpList:
		var ks store.KindSet
		for _, k := range a.Kinds {
			ks = ks.Add(k)
		}
		if ks == 0 {
			ks = ks.Add(store.KindBounce)
		}
		f.listed[u] = ks
	}
	return f.decide(u.Addr()), nil
}
