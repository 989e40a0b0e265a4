package store

import (
	"context"
	"errors"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"
)

// fakeSpace makes the store see free bytes; returns the knob.
func fakeSpace(t *testing.T, s *Store) *atomic.Int64 {
	t.Helper()
	if s.space == nil {
		t.Fatal("store has no space guard")
	}
	var free atomic.Int64
	free.Store(1 << 40)
	s.space.free = func(string) (int64, error) { return free.Load(), nil }
	return &free
}

// TestDiskFullRefusesAndRecovers: below the reserve every write is refused
// with ErrDiskFull and nothing of it is stored; once space is back writes
// resume, and everything acknowledged survives a reopen.
func TestDiskFullRefusesAndRecovers(t *testing.T) {
	dir := t.TempDir()
	o := DefaultOptions()
	o.MinFreeBytes = 100 << 20
	s, err := Open(dir, o, nil)
	if err != nil {
		t.Fatal(err)
	}
	free := fakeSpace(t, s)
	ctx := context.Background()
	var acked []EventID
	put := func(want error) {
		t.Helper()
		e := ev("192.0.2.9", time.Now(), KindBounce)
		err := s.Put(ctx, e, []byte("raw"))
		if !errors.Is(err, want) && !(want == nil && err == nil) {
			t.Fatalf("put with %d bytes free: %v, want %v", free.Load(), err, want)
		}
		if err == nil {
			acked = append(acked, e.ID)
		} else if has, _ := s.Has(e.ID); has {
			t.Fatalf("refused event %s is stored", e.ID)
		}
	}
	put(nil)
	free.Store(100<<20 - 1)
	put(ErrDiskFull)
	if full, got := s.DiskFull(); !full || got != 100<<20-1 {
		t.Fatalf("DiskFull = %v, %d", full, got)
	}
	p := netip.MustParsePrefix("192.0.2.9/32")
	for name, err := range map[string]error{
		"action": s.AddAction(ctx, Action{Time: time.Now(), Prefix: p, Op: OpDelist, Who: "t"}),
		"audit":  s.Audit(ctx, AuditEntry{Who: "t", Action: "x"}),
		"meta":   s.SetMeta("k", []byte("v")),
	} {
		if !errors.Is(err, ErrDiskFull) {
			t.Errorf("%s on a full disk: %v", name, err)
		}
	}
	if _, err := s.NextSerial(1); !errors.Is(err, ErrDiskFull) {
		t.Errorf("serial on a full disk: %v", err)
	}
	if err := s.NewLoader().Add(ev("192.0.2.10", time.Now(), KindBounce), nil); !errors.Is(err, ErrDiskFull) {
		t.Error("loader on a full disk accepted an event")
	}
	// Concurrent Puts in one group are all refused.
	errc := make(chan error, 20)
	for range 20 {
		go func() { errc <- s.Put(ctx, ev("192.0.2.11", time.Now(), KindBounce), nil) }()
	}
	for range 20 {
		if err := <-errc; !errors.Is(err, ErrDiskFull) {
			t.Fatalf("concurrent put on a full disk: %v", err)
		}
	}
	if refs, _ := s.Refs(netip.MustParsePrefix("192.0.2.11/32")); len(refs) != 0 {
		t.Fatalf("%d refused events stored", len(refs))
	}
	free.Store(100<<20 + 64<<10)
	put(nil)
	if full, _ := s.DiskFull(); full {
		t.Fatal("still full after space came back")
	}
	if err := s.AddAction(ctx, Action{Time: time.Now(), Prefix: p, Op: OpDelist, Who: "t"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(dir, o, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	n := 0
	if err := s.ScanRefs(ctx, func(Ref) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	if n != len(acked) || len(acked) != 2 {
		t.Fatalf("%d events stored, %d acknowledged (want 2)", n, len(acked))
	}
	for _, id := range acked {
		if has, err := s.Has(id); !has {
			t.Fatalf("acknowledged %s lost: %v", id, err)
		}
	}
}

// TestDiskFreeReal: the real free-space call works on the test's
// filesystem, and a reserve larger than any disk refuses writes.
func TestDiskFreeReal(t *testing.T) {
	dir := t.TempDir()
	free, err := FreeSpace(dir)
	if err != nil || free <= 0 {
		t.Fatalf("FreeSpace = %d, %v", free, err)
	}
	o := DefaultOptions()
	o.MinFreeBytes = 1 << 62
	if _, err := Open(dir, o, nil); !errors.Is(err, ErrDiskFull) {
		t.Fatalf("open with an impossible reserve: %v", err)
	}
	o.MinFreeBytes = free / 1024
	s, err := Open(dir, o, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Put(context.Background(), ev("192.0.2.1", time.Now(), KindBounce), nil); err != nil {
		t.Fatal(err)
	}
	s.space.min = 1 << 62
	if err := s.Put(context.Background(), ev("192.0.2.1", time.Now(), KindBounce), nil); !errors.Is(err, ErrDiskFull) {
		t.Fatalf("put with an impossible reserve: %v", err)
	}
}
