package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

func TestBackupRestoreRoundTrip(t *testing.T) {
	ctx := context.Background()
	src := testStore(t)
	t0 := time.Now().UTC().Truncate(time.Second)
	var ids []EventID
	for i := 0; i < 50; i++ {
		e := ev(fmt.Sprintf("192.0.2.%d", i%7), t0.Add(time.Duration(i)*time.Second), Kind(1+i%5))
		if i%3 == 0 {
			e.ClientIP = netip.MustParseAddr(fmt.Sprintf("2001:db8::%x", i))
		}
		if err := src.Put(ctx, e, []byte(fmt.Sprintf("raw %d", i))); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, e.ID)
	}
	p := netip.MustParsePrefix("192.0.2.3/32")
	if err := src.AddAction(ctx, Action{Time: t0, Prefix: p, Op: OpDelist, Who: "public:x", Reason: "fixed", Public: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := src.NextSerial(77); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := src.Backup(&buf); err != nil {
		t.Fatal(err)
	}
	dst := testStore(t)
	if err := dst.Restore(&buf); err != nil {
		t.Fatal(err)
	}
	dump := func(s *Store) string {
		t.Helper()
		var b bytes.Buffer
		if err := s.ScanRefs(ctx, func(r Ref) error { fmt.Fprintln(&b, r); return nil }); err != nil {
			t.Fatal(err)
		}
		acts, err := s.Actions(p)
		if err != nil {
			t.Fatal(err)
		}
		audit, err := s.AuditLog(time.Time{}, 0)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintln(&b, acts, audit)
		for _, id := range ids {
			e, err := s.Get(id)
			if err != nil {
				t.Fatal(err)
			}
			raw, err := s.Raw(id)
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(&b, "%+v %q\n", *e, raw)
		}
		return b.String()
	}
	a, b := dump(src), dump(dst)
	if a != b || len(a) < 1000 {
		t.Fatalf("restore differs (%d vs %d bytes)", len(a), len(b))
	}
	// The serial survives and keeps increasing.
	if n, err := dst.NextSerial(0); err != nil || n != 78 {
		t.Fatalf("serial after restore = %d, %v", n, err)
	}
	// A duplicate stays a duplicate after restore.
	e, _ := src.Get(ids[0])
	if err := dst.Put(ctx, e, nil); err == nil {
		t.Fatal("duplicate accepted after restore")
	}
}

func TestRetentionTTL(t *testing.T) {
	o := DefaultOptions()
	o.Retention, o.RawTTL = 3*time.Second, 2*time.Second
	s, err := Open(t.TempDir(), o, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	start := time.Now()
	e := ev("192.0.2.1", start, KindBounce)
	if err := s.Put(context.Background(), e, []byte("raw")); err != nil {
		t.Fatal(err)
	}
	// badger TTLs have one-second granularity: the raw message may already
	// be gone on a stalled machine once RawTTL less that second has passed.
	if _, err := s.Raw(e.ID); err != nil && time.Since(start) < o.RawTTL-time.Second {
		t.Fatalf("raw message missing right after Put: %v", err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, rawErr := s.Raw(e.ID)
		ok, _ := s.Has(e.ID)
		if rawErr == ErrNotFound && !ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("evidence not expired: raw %v has %v", rawErr, ok)
		}
		time.Sleep(100 * time.Millisecond)
	}
	refs, _ := s.Refs(netip.MustParsePrefix("192.0.2.1/32"))
	if len(refs) != 0 {
		t.Fatalf("expired refs still scanned: %v", refs)
	}
}

// TestConcurrentPutsAllDurable: every Put that returned nil is there after
// a reopen, with many writers sharing commits.
func TestConcurrentPutsAllDurable(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, DefaultOptions(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var ok []EventID
	var wg sync.WaitGroup
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < 20; i++ {
				e := ev(fmt.Sprintf("198.51.100.%d", w), time.Now(), KindBounce)
				if err := s.Put(context.Background(), e, nil); err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				ok = append(ok, e.ID)
				mu.Unlock()
			}
		}(w)
	}
	wg.Wait()
	s.Close()
	s, err = Open(dir, DefaultOptions(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, id := range ok {
		if has, err := s.Has(id); !has || err != nil {
			t.Fatalf("acknowledged event %s lost: %v", id, err)
		}
	}
	var got []EventID
	s.ScanRefs(context.Background(), func(r Ref) error { got = append(got, r.ID); return nil })
	if len(got) != len(ok) || len(ok) != 16*20 {
		t.Fatalf("scan found %d events, want %d", len(got), len(ok))
	}
}

// BenchmarkPutSequential and BenchmarkPutConcurrent measure synced Puts per
// second: with group commit, concurrent writers share fsyncs, so the
// concurrent rate is many times the sequential one (one fsync per Put).
//
//	go test ./store -run '^$' -bench 'Put(Sequential|Concurrent)' -benchtime 2s
func BenchmarkPutSequential(b *testing.B) {
	s := testStore(b)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := s.Put(context.Background(), ev("192.0.2.1", time.Now(), KindBounce), nil); err != nil {
			b.Fatal(err)
		}
	}
	reportGroups(b, s)
}

// reportGroups reports Puts per second and events per commit (per fsync).
func reportGroups(b *testing.B, s *Store) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "puts/s")
	if c, e := s.GroupStats(); c > 0 {
		b.ReportMetric(float64(e)/float64(c), "events/fsync")
	}
}

func BenchmarkPutConcurrent(b *testing.B) {
	for _, writers := range []int{8, 64} {
		b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) {
			s := testStore(b)
			b.SetParallelism(writers) // times GOMAXPROCS goroutines
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := s.Put(context.Background(), ev("192.0.2.1", time.Now(), KindBounce), nil); err != nil {
						b.Error(err)
						return
					}
				}
			})
			reportGroups(b, s)
		})
	}
}

// TestOpenLocked: a second open of a database in use fails with ErrLocked
// (callers fall back to the running node's API on it), and succeeds once
// the first is closed.
func TestOpenLocked(t *testing.T) {
	dir := t.TempDir()
	a, err := Open(dir, DefaultOptions(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir, DefaultOptions(), nil); !errors.Is(err, ErrLocked) {
		t.Fatalf("second open: %v, want ErrLocked", err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := Open(dir, DefaultOptions(), nil)
	if err != nil {
		t.Fatalf("open after close: %v", err)
	}
	b.Close()
	// Another failure is not ErrLocked.
	f := filepath.Join(t.TempDir(), "file")
	os.WriteFile(f, nil, 0o600)
	if _, err := Open(f, DefaultOptions(), nil); err == nil || errors.Is(err, ErrLocked) {
		t.Errorf("open on a file: %v", err)
	}
}
