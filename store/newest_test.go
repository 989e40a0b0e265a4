package store

import (
	"context"
	"net/netip"
	"sort"
	"testing"
	"time"
)

// TestRefsNewest: the newest n refs of a unit, read with a bounded number
// of keys, for one address and for a /64 of several.
func TestRefsNewest(t *testing.T) {
	s, err := Open("", Options{InMemory: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	put := func(ip string, at time.Time) {
		t.Helper()
		e := &Event{ID: NewEventID(), Time: at, ClientIP: netip.MustParseAddr(ip), Kind: KindCallout, Rcpts: []string{"a@trap.test"}, TrapDomain: "trap.test"}
		if err := s.Put(context.Background(), e, nil); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 100 {
		put("192.0.2.1", t0.Add(time.Duration(i)*time.Second))
	}
	put("192.0.2.2", t0.Add(time.Hour)) // a neighbour, not in the unit
	refs, more, err := s.RefsNewest(netip.MustParsePrefix("192.0.2.1/32"), 10)
	if err != nil || !more || len(refs) != 10 {
		t.Fatalf("got %d refs, more %v, err %v", len(refs), more, err)
	}
	sort.Slice(refs, func(i, j int) bool { return refs[i].Time.Before(refs[j].Time) })
	if !refs[0].Time.Equal(t0.Add(90*time.Second)) || !refs[9].Time.Equal(t0.Add(99*time.Second)) {
		t.Errorf("not the newest: %v .. %v", refs[0].Time, refs[9].Time)
	}
	if refs, more, _ := s.RefsNewest(netip.MustParsePrefix("192.0.2.1/32"), 100); len(refs) != 100 || more {
		t.Errorf("all: %d more %v", len(refs), more)
	}
	// A /64: three addresses with interleaved times; the newest 5 overall.
	for i := range 30 {
		put([]string{"2001:db8::1", "2001:db8::2", "2001:db8::3"}[i%3], t0.Add(time.Duration(i)*time.Minute))
	}
	refs, more, _ = s.RefsNewest(netip.MustParsePrefix("2001:db8::/64"), 5)
	sort.Slice(refs, func(i, j int) bool { return refs[i].Time.Before(refs[j].Time) })
	if len(refs) != 5 || !more || !refs[0].Time.Equal(t0.Add(25*time.Minute)) || !refs[4].Time.Equal(t0.Add(29*time.Minute)) {
		t.Errorf("/64: %d refs, more %v: %v .. %v", len(refs), more, refs[0].Time, refs[len(refs)-1].Time)
	}
}
