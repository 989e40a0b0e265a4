package web

import (
	"context"
	"net/netip"

	"github.com/blowback-dnsbl/blowback/listing"
	"github.com/blowback-dnsbl/blowback/scoring"
	"github.com/blowback-dnsbl/blowback/store"
)

// The boundary of the public pages (STYLE.md habit 2): what the lookup
// page, the lookup and explain APIs and the delist read (Reader) and what
// the public delist writes (Delister). New wires them to the listing
// engine and the store; NewWith takes any, such as the in-memory fake
// beside them, to test the pages without a store.

// Reader is what the public pages and APIs read about an address.
type Reader interface {
	// Decide is the decision for the unit holding a, from its newest
	// MaxRefs refs, with the refs and the unit's manual actions.
	Decide(a netip.Addr) (scoring.Decision, []store.Ref, []store.Action, error)
	// ExplainPage is the explanation with one page of evidence.
	ExplainPage(a netip.Addr, offset, limit int) (listing.Explanation, error)
	// Events are the newest events of unit, at most limit.
	Events(unit netip.Prefix, limit int) ([]store.Event, error)
	// Summarised counts by kind what the store only counted for unit.
	Summarised(unit netip.Prefix) (map[string]int, error)
	// MaxRefs is how many refs a decision considers.
	MaxRefs() int
}

// Delister records a manual action (the public delist) and applies it.
type Delister interface {
	Act(ctx context.Context, a store.Action) (scoring.Decision, error)
}

// engineReader is the Reader of a listing engine over its store.
type engineReader struct {
	*listing.Engine
	st *store.Store
}

func (r engineReader) Events(unit netip.Prefix, limit int) ([]store.Event, error) {
	return r.st.Events(unit, limit)
}

var (
	_ Reader   = engineReader{}
	_ Delister = (*listing.Engine)(nil)
	_ Reader   = (*FakeListing)(nil)
	_ Delister = (*FakeListing)(nil)
)
