package listing

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/blowback-dnsbl/blowback/internal/testenv"
	"github.com/blowback-dnsbl/blowback/scoring"
	"github.com/blowback-dnsbl/blowback/store"
	"github.com/blowback-dnsbl/blowback/zones"
)

// A restart serves the last published snapshot at once, takes evidence
// and delistings while the rebuild runs behind it, and ends with the
// rebuilt listing (the same as a full rebuild).
func TestRestartServesPersistedSnapshot(t *testing.T) {
	dir := t.TempDir()
	snapFile := filepath.Join(dir, "snapshot.bin")
	clk := testenv.NewManualClock(time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC))
	cfg := Config{Zone: "bl.test", TXT: "see $", Policy: scoring.DefaultPolicy(), Now: clk.Now, Coalesce: time.Millisecond,
		SnapshotFile: snapFile, PersistEvery: time.Hour}
	open := func() *store.Store {
		st, err := store.Open(filepath.Join(dir, "store"), store.DefaultOptions(), nil)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	st := open()
	cur := &zones.Current{}
	eng := New(cfg, st, cur, nil, nil)
	if err := eng.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	f := &fixture{eng, st, cur, clk}
	for _, ip := range []string{"192.0.2.1", "192.0.2.2", "192.0.2.3", "2001:db8::1"} {
		f.act(t, ip, store.OpList, "admin", false)
	}
	eng.Stop(context.Background())
	before := cur.Load()
	st.Close()
	if _, err := os.Stat(snapFile); err != nil {
		t.Fatalf("no snapshot persisted at stop: %v", err)
	}

	// Restart with the rebuild held back.
	st = open()
	defer st.Close()
	cur = &zones.Current{}
	eng = New(cfg, st, cur, nil, nil)
	release := make(chan struct{})
	var once sync.Once
	releaseOnce := func() { once.Do(func() { close(release) }) }
	eng.holdRebuild = func() { <-release }
	var got []*zones.Snapshot
	eng.Subscribe(func(s *zones.Snapshot) { got = append(got, s) })
	if err := eng.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer eng.Stop(context.Background())
	defer releaseOnce() // before Stop, also when the test fails
	f = &fixture{eng, st, cur, clk}
	s := cur.Load()
	if s == nil || s.Serial != before.Serial || entries(s) != entries(before) {
		t.Fatalf("after restart: serving %v, want the persisted snapshot %d", s, before.Serial)
	}
	if len(got) != 1 || got[0] != s {
		t.Errorf("subscribers got %d snapshots at start", len(got))
	}
	// While the rebuild waits: a delisting and a new listing are served.
	clk.Add(time.Minute) // after the listing, not at the same instant
	f.act(t, "192.0.2.2", store.OpDelist, "admin", false)
	f.served(t, "192.0.2.2", 0)
	f.act(t, "192.0.2.9", store.OpList, "admin", false)
	f.served(t, "192.0.2.9", zones.CodeBounce)
	f.served(t, "192.0.2.1", zones.CodeBounce)
	mid := cur.Load().Serial

	releaseOnce()
	deadline := time.Now().Add(20 * time.Second)
	for {
		eng.mu.Lock()
		behind := eng.behind
		eng.mu.Unlock()
		if !behind && cur.Load().Serial != mid {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the rebuild never replaced the persisted snapshot")
		}
		time.Sleep(5 * time.Millisecond)
	}
	f.served(t, "192.0.2.2", 0)
	f.served(t, "192.0.2.9", zones.CodeBounce)
	eng.Stop(context.Background())
	rebuilt := entries(cur.Load())
	if err := eng.Rebuild(context.Background()); err != nil {
		t.Fatal(err)
	}
	if full := entries(cur.Load()); full != rebuilt {
		t.Errorf("after the rebuild behind:\n%s\nfull rebuild:\n%s", rebuilt, full)
	}
	if !zones.SerialLess(before.Serial, cur.Load().Serial) {
		t.Errorf("serial %d not newer than the persisted %d", cur.Load().Serial, before.Serial)
	}
}

// A damaged snapshot file, or one of another zone, is not served: the
// listing is rebuilt first, as without one.
func TestPersistedSnapshotRefused(t *testing.T) {
	dir := t.TempDir()
	snapFile := filepath.Join(dir, "snapshot.bin")
	st, err := store.Open("", store.Options{InMemory: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	stale := zones.Build(zones.Info{Zone: "bl.test", TXT: "see $", Serial: 5}, []zones.Entry{{Prefix: netip.MustParsePrefix("198.51.100.1/32"), Codes: zones.CodeBounce}})
	for name, write := range map[string]func(){
		"damaged": func() {
			zones.SaveSnapshotFile(snapFile, stale)
			b, _ := os.ReadFile(snapFile)
			b[len(b)/2] ^= 1
			os.WriteFile(snapFile, b, 0o644)
		},
		"other zone": func() {
			zones.SaveSnapshotFile(snapFile, zones.Build(zones.Info{Zone: "bl.other", TXT: "see $", Serial: 5}, nil))
		},
		"other TXT": func() {
			zones.SaveSnapshotFile(snapFile, zones.Build(zones.Info{Zone: "bl.test", TXT: "other $", Serial: 5}, nil))
		},
	} {
		write()
		cur := &zones.Current{}
		eng := New(Config{Zone: "bl.test", TXT: "see $", Policy: scoring.DefaultPolicy(), SnapshotFile: snapFile}, st, cur, nil, nil)
		if err := eng.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		eng.mu.Lock()
		behind := eng.behind
		eng.mu.Unlock()
		if behind || cur.Load().Lookup(netip.MustParseAddr("198.51.100.1")) != 0 || cur.Load().Serial == 5 {
			t.Errorf("%s: the snapshot file was served", name)
		}
		eng.Stop(context.Background())
	}
}
