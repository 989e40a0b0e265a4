package cluster_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/blowback-dnsbl/blowback/store"
	"github.com/blowback-dnsbl/blowback/zones"
)

// TestClusterBatchBoundaries: two replicas cut the same log into very
// different batches (3 messages and 1000) and still store the same events,
// summarise the same flood past the store's per-unit cap, and publish the
// same serial and zone.
func TestClusterBatchBoundaries(t *testing.T) {
	_, cfg, admin := startLog(t, 1, 3*time.Second, 7000)
	ctx := context.Background()
	r1 := runReplica(t, &replicaNode{name: "r1", cfg: cfg, batch: 3})
	r2 := runReplica(t, &replicaNode{name: "r2", cfg: cfg, batch: 1000})

	flood := netip.MustParseAddr("192.0.2.77")
	kinds := []store.Kind{store.KindBounce, store.KindBounce, store.KindAutoreply, store.KindBounce, store.KindCallout}
	var n uint64
	for i := range 560 { // past the default cap of 500 per unit and hour
		ev := event(i, "trap1")
		ev.ClientIP, ev.Kind = flood, kinds[i%len(kinds)]
		if i >= 540 {
			ev.Kind = store.KindChallenge // a kind first seen past the cap is stored
		}
		if _, err := admin.PublishEvent(ctx, ev, []byte("raw")); err != nil {
			t.Fatal(err)
		}
		n++
		if i%40 == 0 { // and some other senders in between
			if _, err := admin.PublishEvent(ctx, event(10000+i, "trap2"), nil); err != nil {
				t.Fatal(err)
			}
			n++
		}
	}
	if _, err := admin.PublishAction(ctx, store.Action{Prefix: netip.PrefixFrom(addr(10040), 32), Op: store.OpDelist, Who: "t", Reason: "r"}); err != nil {
		t.Fatal(err)
	}
	n++
	id1 := sameStoredEvents(ctx, t, r1, r2, n)
	if len(id1) >= int(n) {
		t.Errorf("%d events stored of %d: the per-unit cap summarised none", len(id1), n)
	}
	sum := func(r *replicaNode) string {
		s, err := r.st.Summaries(ctx, netip.PrefixFrom(flood, 32), 0)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(s)
		return string(b)
	}
	if a, b := sum(r1), sum(r2); a != b || a == "null" {
		t.Errorf("summaries differ:\n%s\n%s", a, b)
	}
	s1, s2 := r1.cur.Load(), r2.cur.Load()
	var e1, e2 bytes.Buffer
	zones.WriteRbldnsd(&e1, s1, zones.SOA{})
	zones.WriteRbldnsd(&e2, s2, zones.SOA{})
	if s1.Serial != 7000+uint32(n) || s1.Serial != s2.Serial || !bytes.Equal(e1.Bytes(), e2.Bytes()) {
		t.Errorf("serials %d %d (want %d), exports equal %v", s1.Serial, s2.Serial, 7000+n, bytes.Equal(e1.Bytes(), e2.Bytes()))
	}
	if s1.Lookup(flood) == 0 || s1.Lookup(addr(10040)) != 0 || s1.Lookup(addr(10080)) == 0 {
		t.Errorf("zone: flood %v, delisted %v, other %v", s1.Lookup(flood), s1.Lookup(addr(10040)), s1.Lookup(addr(10080)))
	}
}

// TestClusterNetCapDeterminism: the store's per-network caps share one
// summary among the units of a /24, so two replicas cutting the log into
// different batches must still commit a network's events in stream order:
// they store the same events and keep the same network summaries. (Applied
// unit by unit in parallel, the units of one network raced for its cap.)
func TestClusterNetCapDeterminism(t *testing.T) {
	_, cfg, admin := startLog(t, 1, 3*time.Second, 7000)
	ctx := context.Background()
	opts := store.DefaultOptions()
	opts.UnitMaxEvents, opts.NetMaxEvents, opts.NetMaxRawBytes = 6, 40, 2000
	r1 := runReplica(t, &replicaNode{name: "r1", cfg: cfg, batch: 3, storeOpts: &opts})
	r2 := runReplica(t, &replicaNode{name: "r2", cfg: cfg, batch: 1000, storeOpts: &opts})

	kinds := []store.Kind{store.KindBounce, store.KindBounce, store.KindAutoreply, store.KindBounce, store.KindCallout, store.KindBounce}
	var n uint64
	for i := range 600 {
		ev := event(i, "trap1")
		// 10 units of one /24, interleaved: which of them fill the network's
		// last slots depends on the order the store commits them in.
		ev.ClientIP = netip.AddrFrom4([4]byte{192, 0, 2, byte(i % 10)})
		ev.Kind = kinds[(i/100)%len(kinds)]
		if _, err := admin.PublishEvent(ctx, ev, []byte("raw message")); err != nil {
			t.Fatal(err)
		}
		n++
	}
	id1 := sameStoredEvents(ctx, t, r1, r2, n)
	if len(id1) >= int(n) || len(id1) <= opts.NetMaxEvents {
		t.Errorf("%d events stored of %d: want more than the network's cap %d (first events of each kind) and fewer than all",
			len(id1), n, opts.NetMaxEvents)
	}
	sums := func(r *replicaNode) string {
		s, err := r.st.NetSummaries(ctx, netip.MustParsePrefix("192.0.2.0/24"), 0)
		if err != nil {
			t.Fatal(err)
		}
		u, err := r.st.Summaries(ctx, netip.MustParsePrefix("192.0.2.0/24"), 0)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal([]any{s, u})
		return string(b)
	}
	if a, b := sums(r1), sums(r2); a != b {
		t.Errorf("summaries differ:\n%s\n%s", a, b)
	}
	t.Logf("%d of %d events stored alike on both replicas", len(id1), n)
}

// sameStoredEvents waits until both replicas applied n messages and
// checks they stored the same events; it returns their IDs, sorted.
func sameStoredEvents(ctx context.Context, t *testing.T, r1, r2 *replicaNode, n uint64) []store.EventID {
	t.Helper()
	waitFor(t, "both replicas applied everything", 120*time.Second, func() bool {
		return r1.rep.Applied() == n && r2.rep.Applied() == n
	})
	ids := func(r *replicaNode) []store.EventID {
		var out []store.EventID
		r.st.ScanRefs(ctx, func(ref store.Ref) error { out = append(out, ref.ID); return nil })
		slices.SortFunc(out, func(a, b store.EventID) int { return bytes.Compare(a[:], b[:]) })
		return out
	}
	id1, id2 := ids(r1), ids(r2)
	if !slices.Equal(id1, id2) {
		t.Errorf("stored events differ: %d and %d", len(id1), len(id2))
	}
	return id1
}
