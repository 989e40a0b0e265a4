package store

import (
	"context"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
	"time"
)

// TestSortedLoader loads the same events through the Loader (in random
// order) and the SortedLoader (in key order) and finds the same store.
func TestSortedLoader(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	rng := rand.New(rand.NewPCG(1, 2))
	addrs := []string{"192.0.2.1", "192.0.2.7", "198.51.100.3", "2001:db8::1", "2001:db8::2", "2001:db8:1::9"}
	var byAddr [][]*Event
	for _, a := range addrs { // ascending: the key order of addresses
		var evs []*Event
		for i := 0; i < 50; i++ {
			e := ev(a, t0.Add(time.Duration(rng.IntN(1000))*time.Second), Kind(1+rng.IntN(5)))
			e.Rcpts = []string{[]string{"a@t1.test", "b@t2.test"}[rng.IntN(2)]}
			evs = append(evs, e)
		}
		SortByKey(evs)
		byAddr = append(byAddr, evs)
	}
	var id uint64
	var all []*Event
	for _, evs := range byAddr {
		for _, e := range evs {
			id++
			e.ID = EventID{}
			binary.BigEndian.PutUint64(e.ID[8:], id)
			all = append(all, e)
		}
	}

	dir := t.TempDir()
	sorted, err := Open(dir, DefaultOptions(), nil)
	if err != nil {
		t.Fatal(err)
	}
	l, err := sorted.NewSortedLoader()
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Add(all[1]); err != nil {
		t.Fatal(err)
	}
	if err := l.Add(all[0]); !errors.Is(err, ErrNotSorted) {
		t.Fatalf("out of order: %v, want ErrNotSorted", err)
	}
	for _, e := range all[2:] {
		if err := l.Add(e); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := l.Flush(); err != nil || n != len(all)-1 {
		t.Fatalf("flush: %d %v", n, err)
	}
	if _, err := sorted.NewSortedLoader(); !errors.Is(err, ErrInvalid) {
		t.Fatalf("sorted load into a store with data: %v, want ErrInvalid", err)
	}
	sorted.Close()
	if sorted, err = Open(dir, DefaultOptions(), nil); err != nil { // what was loaded is durable
		t.Fatal(err)
	}
	defer sorted.Close()

	plain := testStore(t)
	pl := plain.NewLoader()
	for _, i := range rng.Perm(len(all)) {
		if i == 0 {
			continue
		}
		if err := pl.Add(all[i], nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := pl.Flush(); err != nil {
		t.Fatal(err)
	}

	scan := func(s *Store) []Ref {
		var out []Ref
		if err := s.ScanRefs(context.Background(), func(r Ref) error { out = append(out, r); return nil }); err != nil {
			t.Fatal(err)
		}
		return out
	}
	got, want := scan(sorted), scan(plain)
	if len(got) != len(all)-1 || !slices.Equal(got, want) {
		t.Fatalf("sorted load scans %d refs, plain load %d; equal: %v", len(got), len(want), slices.Equal(got, want))
	}
	for _, e := range []*Event{all[1], all[len(all)/2], all[len(all)-1]} {
		g, err := sorted.Get(e.ID)
		if err != nil || g.MessageID != e.MessageID || !g.Time.Equal(e.Time) || g.ClientIP != e.ClientIP {
			t.Fatalf("get %s: %+v %v", e.ID, g, err)
		}
		if err := sorted.Put(context.Background(), e, nil); !errors.Is(err, ErrDuplicate) {
			t.Fatalf("put of a loaded event: %v, want ErrDuplicate", err)
		}
	}
	if ok, err := sorted.Has(all[0].ID); ok || err != nil {
		t.Fatalf("the refused event: has %v %v", ok, err)
	}
	// Writes after the load go through as usual.
	if err := sorted.Put(context.Background(), ev("192.0.2.1", t0, KindBounce), nil); err != nil {
		t.Fatal(err)
	}
	if refs, err := sorted.Refs(netip.MustParsePrefix("192.0.2.1/32")); err != nil || len(refs) != 50 { // 49 loaded (all[0] was refused) and this one
		t.Fatalf("refs after a put: %d %v", len(refs), err)
	}
}
