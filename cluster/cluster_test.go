package cluster_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/blowback-dnsbl/blowback/cluster"
	"github.com/blowback-dnsbl/blowback/forward"
	"github.com/blowback-dnsbl/blowback/listing"
	"github.com/blowback-dnsbl/blowback/scoring"
	"github.com/blowback-dnsbl/blowback/store"
	"github.com/blowback-dnsbl/blowback/zones"
)

// replicaNode is one central replica: store, engine, replica.
type replicaNode struct {
	t     testing.TB
	batch int // 0: 64 in tests, the default in benchmarks
	name  string
	dir   string
	cfg   cluster.Config
	conn  *cluster.Conn
	st    *store.Store
	cur   *zones.Current
	eng   *listing.Engine
	rep   *cluster.Replica
	// onSnap, when set, gets every snapshot the replica publishes.
	onSnap func(*zones.Snapshot)
	// storeOpts, when set, are the store's options (default: store.DefaultOptions).
	storeOpts *store.Options
}

// startReplica starts replica name of cfg, stopped when the test ends.
func startReplica(t testing.TB, cfg cluster.Config, name string) *replicaNode {
	t.Helper()
	return runReplica(t, &replicaNode{name: name, cfg: cfg})
}

// runReplica starts r as a node of t (its data in a new temp dir unless
// r.dir is set) and stops it when the test ends.
func runReplica(t testing.TB, r *replicaNode) *replicaNode {
	t.Helper()
	r.t = t
	if r.dir == "" {
		r.dir = filepath.Join(t.TempDir(), r.name)
	}
	r.start()
	t.Cleanup(r.stop)
	return r
}

func (r *replicaNode) start() {
	t := r.t
	t.Helper()
	var err error
	if r.conn, err = cluster.Connect(r.cfg, nil); err != nil {
		t.Fatal(err)
	}
	opts := store.DefaultOptions()
	if r.storeOpts != nil {
		opts = *r.storeOpts
	}
	if r.st, err = store.Open(r.dir, opts, nil); err != nil {
		t.Fatal(err)
	}
	batch := 64 // several batches in the test
	if _, bench := r.t.(*testing.B); bench {
		batch = 0 // the default
	}
	if r.batch > 0 {
		batch = r.batch
	}
	if r.rep, err = cluster.NewReplica(cluster.ReplicaConfig{Name: r.name, TickEvery: -1, Batch: batch}, r.conn, r.st, testLog(r.t, r.name), nil); err != nil {
		t.Fatal(err)
	}
	if r.cur == nil {
		r.cur = &zones.Current{}
	}
	lc := r.rep.ListingHooks(listing.Config{Zone: "bl.test", TXT: "see $", TTL: time.Minute, Policy: scoring.DefaultPolicy()})
	r.eng = listing.New(lc, r.st, r.cur, nil, nil)
	r.rep.Attach(r.eng)
	if r.onSnap != nil {
		r.eng.Subscribe(r.onSnap)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := r.rep.Start(ctx); err != nil {
		t.Fatal(err)
	}
}

func (r *replicaNode) stop() {
	if r.rep == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r.rep.Stop(ctx)
	r.eng.Stop(ctx)
	r.st.Close()
	r.conn.Close()
	r.rep = nil
}

// trapNode is a trap's spool and sender.
type trapNode struct {
	t    testing.TB
	node string
	dir  string
	cfg  cluster.Config
	conn *cluster.Conn
	sp   *forward.Spool
	snd  *cluster.Sender
}

// startTrap starts trap node of cfg with its spool in a new temp dir,
// stopped when the test ends.
func startTrap(t testing.TB, cfg cluster.Config, node string) *trapNode {
	tr := &trapNode{t: t, node: node, dir: filepath.Join(t.TempDir(), node), cfg: cfg}
	tr.start()
	t.Cleanup(tr.stop)
	return tr
}

func (tr *trapNode) start() {
	var err error
	if tr.conn, err = cluster.Connect(tr.cfg, nil); err != nil {
		tr.t.Fatal(err)
	}
	if tr.sp, err = forward.OpenSpool(tr.dir, forward.SpoolOptions{RawMax: 4096}, nil); err != nil {
		tr.t.Fatal(err)
	}
	batch := 50
	if _, bench := tr.t.(*testing.B); bench {
		batch = 0 // the default
	}
	tr.snd = cluster.NewSender(cluster.SenderConfig{Node: tr.node, Batch: batch, BackoffMax: time.Second}, tr.conn, tr.sp, testLog(tr.t, tr.node), nil)
	tr.snd.Start()
}

// stop ends the trap abruptly: the sender stops where it is (a batch
// published but not yet removed from the spool stays there).
func (tr *trapNode) stop() {
	if tr.snd == nil {
		return
	}
	tr.conn.Close() // cut the link first: acks in flight are lost
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tr.snd.Stop(ctx)
	tr.sp.Close()
	tr.snd = nil
}

func addr(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
}

func event(i int, node string) *store.Event {
	return &store.Event{ID: store.NewEventID(), Time: time.Now().UTC(), Node: node, ClientIP: addr(i),
		HELO: "mx.example", MailFrom: "", Rcpts: []string{fmt.Sprintf("t%d@trap.test", i%7)}, TrapDomain: "trap.test",
		Kind: store.KindBounce}
}

// waitFor polls cond (conditions, not sleeps decide the test).
func waitFor(t testing.TB, what string, d time.Duration, cond func() bool) {
	t.Helper()
	end := time.Now().Add(d)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestClusterKillAndConverge is bench/cluster/run.sh's scenario, smaller:
// 3 JetStream servers (R3), two replicas, two traps; one server, one
// replica and one trap go away partway and come back; every event handed
// to a trap is applied exactly once on both replicas, which end with the
// same serial and byte-identical exports.
func TestClusterKillAndConverge(t *testing.T) {
	nc, cfg, admin := startLog(t, 3, 3*time.Second, 2026120100)
	ctx := context.Background()
	r1 := startReplica(t, cfg, "r1")
	r2 := startReplica(t, cfg, "r2")
	t1 := startTrap(t, cfg, "trap1")
	t2 := startTrap(t, cfg, "trap2")

	const n = 900
	accepted := 0
	send := func(from, to int) {
		t.Helper()
		for i := from; i < to; i++ {
			tr := t1
			if i%2 == 1 || t1.snd == nil {
				tr = t2
			}
			if err := tr.snd.Ingest(ctx, event(i, tr.node), []byte("raw bounce")); err != nil {
				t.Fatalf("ingest %d: %v", i, err) // the trap would answer 4xx; a spool never refuses here
			}
			accepted++
		}
	}
	send(0, n/3)
	// One NATS server goes away under load; traps keep accepting.
	nc.Stop(1)
	send(n/3, n/2)
	// A replica and a trap go away; the trap comes back on its spool.
	r2.stop()
	t1.stop()
	send(n/2, n/2+50) // trap2 only: trap1 is down
	nc.Restart(1)
	t1.start()
	send(n/2+50, 2*n/3)
	r2.start()
	// A manual action through the log from replica 1 shows on both.
	delisted := addr(3)
	d, err := r1.eng.Act(ctx, store.Action{Prefix: netip.PrefixFrom(delisted, 32), Op: store.OpDelist, Who: "test", Reason: "fixed"})
	if err != nil {
		t.Fatal(err)
	}
	if d.Listed {
		t.Errorf("after the delist through the log, replica 1 still decides listed: %s", d.Reason)
	}
	send(2*n/3, n)

	stream := func() uint64 {
		s, err := admin.StreamLastSeq(ctx)
		if err != nil {
			return 0
		}
		return s
	}
	waitFor(t, "spools drained and replicas caught up", 120*time.Second, func() bool {
		last := stream()
		return t1.sp.Len() == 0 && t2.sp.Len() == 0 && last > 0 && r1.rep.Applied() == last && r2.rep.Applied() == last
	})

	for _, r := range []*replicaNode{r1, r2} {
		per := map[netip.Addr]int{}
		total := 0
		if err := r.st.ScanRefs(ctx, func(ref store.Ref) error { per[ref.Addr]++; total++; return nil }); err != nil {
			t.Fatal(err)
		}
		lost, dup := 0, 0
		for i := range n {
			switch c := per[addr(i)]; {
			case c == 0:
				lost++
			case c > 1:
				dup += c - 1
			}
		}
		if total != accepted || lost != 0 || dup != 0 {
			t.Errorf("%s: %d events stored for %d accepted: lost %d, duplicates %d", r.name, total, accepted, lost, dup)
		}
		if c := r.cur.Load().Lookup(delisted); c != 0 {
			t.Errorf("%s: %v still listed after the delist", r.name, delisted)
		}
		if c := r.cur.Load().Lookup(addr(4)); c == 0 {
			t.Errorf("%s: %v not listed", r.name, addr(4))
		}
	}
	s1, s2 := r1.cur.Load(), r2.cur.Load()
	if s1.Serial != s2.Serial || s1.Serial != 2026120100+uint32(stream()) {
		t.Errorf("serials: r1 %d, r2 %d, want %d", s1.Serial, s2.Serial, 2026120100+uint32(stream()))
	}
	var e1, e2 bytes.Buffer
	if err := zones.WriteRbldnsd(&e1, s1, zones.SOA{}); err != nil {
		t.Fatal(err)
	}
	if err := zones.WriteRbldnsd(&e2, s2, zones.SOA{}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(e1.Bytes(), e2.Bytes()) {
		t.Errorf("exports differ: %d and %d bytes", e1.Len(), e2.Len())
	}
	if s1.Len() < n-10 {
		t.Errorf("listed %d, want about %d", s1.Len(), n)
	}
}

func testLog(t testing.TB, name string) *slog.Logger {
	if _, bench := t.(*testing.B); bench {
		return nil
	}
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo})).With("node", name)
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(string(bytes.TrimSpace(p)))
	return len(p), nil
}
