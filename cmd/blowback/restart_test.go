package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/blowback-dnsbl/blowback/store"
)

// TestRestartServesAtOnce: a node restarted on a store of N listed
// addresses answers for all of them as soon as it has started, from the
// persisted snapshot, while the listing is rebuilt behind it; then the
// rebuilt zone (a newer serial) answers the same. N is
// $BLOWBACK_RESTART_UNITS (default 3000); the log gives the times:
//
//	BLOWBACK_RESTART_UNITS=200000 go test ./cmd/blowback -run TestRestartServesAtOnce -v
func TestRestartServesAtOnce(t *testing.T) {
	units := 3000
	if v := os.Getenv("BLOWBACK_RESTART_UNITS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			t.Fatalf("BLOWBACK_RESTART_UNITS=%q", v)
		}
		units = n
	}
	addr := func(i int) netip.Addr {
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], 11<<24+uint32(i))
		return netip.AddrFrom4(b)
	}
	dir := t.TempDir()
	cfg := defaultConfig()
	cfg.Data = dir
	cfg.SMTP, cfg.DNS, cfg.HTTP = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	st, err := store.Open(filepath.Join(dir, "store"), cfg.storeOptions(), nil)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	l := st.NewLoader()
	now := time.Now()
	for i := range units * 2 {
		e := &store.Event{ID: store.NewEventID(), ClientIP: addr(i % units), Kind: store.KindBounce,
			Time: now.Add(-time.Duration(1+i%3600) * time.Second), Rcpts: []string{fmt.Sprintf("u%d@trap.blowback.test", i%7)},
			TrapDomain: "trap.blowback.test", HELO: "mx.example.net"}
		if err := l.Add(e, nil); err != nil {
			t.Fatal(err)
		}
		if (i+1)%100000 == 0 {
			if _, err := l.Flush(); err != nil {
				t.Fatal(err)
			}
			l = st.NewLoader()
		}
	}
	if _, err := l.Flush(); err != nil {
		t.Fatal(err)
	}
	st.Close()
	t.Logf("loaded %d events for %d addresses in %v", units*2, units, time.Since(start).Round(time.Millisecond))

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	last := addr(units - 1)
	n := newNode(cfg, slog.New(slog.DiscardHandler))
	start = time.Now()
	if err := n.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("first start (full rebuild before serving): %v", time.Since(start).Round(time.Millisecond))
	if r := check(t, n.dns.Addr().String(), last.String()); !r.Listed {
		t.Fatalf("%s not listed after the first start", last)
	}
	first := n.cur.Load().Serial
	if err := n.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "snapshot.bin")); err != nil {
		t.Fatalf("no snapshot.bin after stop: %v", err)
	}

	n = newNode(cfg, slog.New(slog.DiscardHandler))
	start = time.Now()
	if err := n.Start(ctx); err != nil {
		t.Fatal(err)
	}
	started := time.Since(start)
	defer n.Stop()
	for _, i := range []int{0, units / 2, units - 1} {
		if r := check(t, n.dns.Addr().String(), addr(i).String()); !r.Listed {
			t.Fatalf("%s not answered listed right after the restart", addr(i))
		}
	}
	answered := time.Since(start)
	eventually(t, "the rebuilt listing", func() bool { return n.cur.Load().Serial != first })
	rebuilt := time.Since(start)
	if r := check(t, n.dns.Addr().String(), last.String()); !r.Listed {
		t.Fatalf("%s not listed after the rebuild", last)
	}
	t.Logf("restart with %d addresses: started in %v, answering in %v, rebuilt listing served after %v",
		units, started.Round(time.Millisecond), answered.Round(time.Millisecond), rebuilt.Round(time.Millisecond))
}
