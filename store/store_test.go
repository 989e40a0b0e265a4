package store

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"
)

func testStore(t testing.TB) *Store {
	t.Helper()
	s, err := Open(t.TempDir(), DefaultOptions(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func ev(ip string, at time.Time, k Kind) *Event {
	return &Event{ID: NewEventID(), Time: at, ClientIP: netip.MustParseAddr(ip), Kind: k,
		Rcpts: []string{"x@trap.test"}, TrapDomain: "trap.test", HELO: "mx.example"}
}

func TestPutRefsEvents(t *testing.T) {
	s := testStore(t)
	ctx := context.Background()
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	a := ev("192.0.2.1", t0, KindBounce)
	if err := s.Put(ctx, a, []byte("raw message")); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, a, nil); !errors.Is(err, ErrDuplicate) {
		t.Fatalf("second put: %v, want ErrDuplicate", err)
	}
	for _, e := range []*Event{ev("192.0.2.2", t0, KindAutoreply), ev("2001:db8::1", t0, KindCallout), ev("2001:db8::2", t0.Add(time.Hour), KindBounce), ev("2001:db8:0:1::1", t0, KindBounce)} {
		if err := s.Put(ctx, e, nil); err != nil {
			t.Fatal(err)
		}
	}
	refs, err := s.Refs(netip.MustParsePrefix("192.0.2.1/32"))
	if err != nil || len(refs) != 1 || refs[0].ID != a.ID || refs[0].Kind != KindBounce || !refs[0].Time.Equal(t0) {
		t.Fatalf("refs = %+v, %v", refs, err)
	}
	if refs[0].Rcpt != Hash32("X@trap.test") || refs[0].Domain != Hash32("trap.test") {
		t.Fatalf("hashes: %+v", refs[0])
	}
	refs, _ = s.Refs(netip.MustParsePrefix("2001:db8::/64"))
	if len(refs) != 2 {
		t.Fatalf("v6 /64 refs = %d, want 2", len(refs))
	}
	evs, err := s.Events(netip.MustParsePrefix("2001:db8::/64"), 0)
	if err != nil || len(evs) != 2 || !evs[0].Time.After(evs[1].Time) {
		t.Fatalf("events = %+v, %v", evs, err)
	}
	raw, err := s.Raw(a.ID)
	if err != nil || string(raw) != "raw message" {
		t.Fatalf("raw = %q, %v", raw, err)
	}
	got, err := s.Get(a.ID)
	if err != nil || got.HELO != "mx.example" {
		t.Fatalf("get = %+v, %v", got, err)
	}
	n := 0
	if err := s.ScanRefs(ctx, func(Ref) error { n++; return nil }); err != nil || n != 5 {
		t.Fatalf("scan = %d, %v", n, err)
	}
}

func TestActionsAuditSerial(t *testing.T) {
	s := testStore(t)
	ctx := context.Background()
	p := netip.MustParsePrefix("198.51.100.7/32")
	now := time.Now()
	if err := s.AddAction(ctx, Action{Time: now, Prefix: p, Op: OpDelist, Who: "admin", Reason: "fixed"}); err != nil {
		t.Fatal(err)
	}
	if err := s.AddAction(ctx, Action{Time: now, Prefix: p, Op: "bogus"}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("bogus op: %v", err)
	}
	acts, err := s.Actions(p)
	if err != nil || len(acts) != 1 || acts[0].Reason != "fixed" {
		t.Fatalf("actions = %+v, %v", acts, err)
	}
	log, err := s.AuditLog(time.Time{}, 0)
	if err != nil || len(log) != 1 || log[0].Who != "admin" || log[0].Target != p.String() {
		t.Fatalf("audit = %+v, %v", log, err)
	}
	a, _ := s.NextSerial(100)
	b, _ := s.NextSerial(50)
	if a != 100 || b != 101 {
		t.Fatalf("serials %d %d", a, b)
	}
}

func TestReopenKeepsEvidence(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, DefaultOptions(), nil)
	if err != nil {
		t.Fatal(err)
	}
	e := ev("203.0.113.5", time.Now(), KindBounce)
	if err := s.Put(context.Background(), e, nil); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = Open(dir, DefaultOptions(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if ok, err := s.Has(e.ID); !ok || err != nil {
		t.Fatalf("after reopen: %v %v", ok, err)
	}
}

func TestLoader(t *testing.T) {
	s := testStore(t)
	l := s.NewLoader()
	var ids []EventID
	for i := 0; i < 1000; i++ {
		e := ev("192.0.2.9", time.Now().Add(time.Duration(i)*time.Second), KindBounce)
		ids = append(ids, e.ID)
		if err := l.Add(e, []byte("raw")); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := l.Flush(); err != nil || n != 1000 {
		t.Fatalf("flush: %d %v", n, err)
	}
	refs, err := s.Refs(netip.MustParsePrefix("192.0.2.9/32"))
	if err != nil || len(refs) != 1000 {
		t.Fatalf("refs %d %v", len(refs), err)
	}
	// Loaded events are known to Put's duplicate check.
	e, err := s.Get(ids[5])
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Put(context.Background(), e, nil); !errors.Is(err, ErrDuplicate) {
		t.Fatalf("put of a loaded event: %v", err)
	}
}

// TestSortEventsNewestFirst: events of a /64 come by address, then newest
// first; the sort puts them newest first across addresses and keeps the
// key order of events with the same time.
func TestSortEventsNewestFirst(t *testing.T) {
	base := time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)
	var ev []Event
	for a := 0; a < 50; a++ { // 50 addresses, each with 40 events newest first
		for k := 39; k >= 0; k-- {
			ev = append(ev, Event{Time: base.Add(time.Duration(k*50+a%7) * time.Second), Subject: fmt.Sprint(a, "/", k)})
		}
	}
	want := slices.Clone(ev)
	// The reference: a plain stable insertion by time, newest first.
	for i := 1; i < len(want); i++ {
		for j := i; j > 0 && want[j].Time.After(want[j-1].Time); j-- {
			want[j], want[j-1] = want[j-1], want[j]
		}
	}
	sortEventsNewestFirst(ev)
	for i := range ev {
		if !ev[i].Time.Equal(want[i].Time) || ev[i].Subject != want[i].Subject {
			t.Fatalf("event %d: %v %q, want %v %q", i, ev[i].Time, ev[i].Subject, want[i].Time, want[i].Subject)
		}
	}
}

// TestEventsNewestAcrossAddresses: with a limit, the events of a /64 are
// its newest across all its addresses, newest first; the lower addresses
// here have the newer events (keys sort by address, so the limit used to
// cut the newest events away).
func TestEventsNewestAcrossAddresses(t *testing.T) {
	s := testStore(t)
	ctx := context.Background()
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	var all []*Event
	for a := 1; a <= 20; a++ {
		for k := 0; k < 5; k++ {
			// Address ::a gets times that fall as a grows.
			e := ev(fmt.Sprintf("2001:db8::%x", a), t0.Add(time.Duration((20-a)*10+k)*time.Minute), KindBounce)
			if err := s.Put(ctx, e, nil); err != nil {
				t.Fatal(err)
			}
			all = append(all, e)
		}
	}
	slices.SortFunc(all, func(a, b *Event) int { return b.Time.Compare(a.Time) })
	for _, limit := range []int{1, 7, 50, 100, 500} {
		got, err := s.Events(netip.MustParsePrefix("2001:db8::/64"), limit)
		if err != nil {
			t.Fatal(err)
		}
		want := all[:min(limit, len(all))]
		if len(got) != len(want) {
			t.Fatalf("limit %d: %d events, want %d", limit, len(got), len(want))
		}
		for i := range want {
			if got[i].ID != want[i].ID {
				t.Fatalf("limit %d: event %d is %v at %v, want %v at %v", limit, i, got[i].ClientIP, got[i].Time, want[i].ClientIP, want[i].Time)
			}
		}
	}
}
