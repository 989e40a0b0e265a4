package cluster_test

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/blowback-dnsbl/blowback/cluster"
	"github.com/blowback-dnsbl/blowback/dnsd"
	"github.com/blowback-dnsbl/blowback/internal/testenv"
	"github.com/blowback-dnsbl/blowback/zones"
)

// primary is a replica with its DNS server, journal and transfer server.
type primary struct {
	rep  *replicaNode
	srv  *dnsd.Server
	j    *zones.Journal
	reg  *prometheus.Registry
	cur  *zones.Current
	port int

	mu      sync.Mutex
	serials []uint32 // published, in order
}

// startPrimary starts replica name of cfg serving its zone with a transfer
// server that NOTIFYs secondary.
func startPrimary(t *testing.T, cfg cluster.Config, name, secondary string) *primary {
	t.Helper()
	p := &primary{j: zones.NewJournal(0), reg: prometheus.NewRegistry(), cur: &zones.Current{}}
	p.srv = dnsd.New(dnsd.Config{NS: []string{"ns1.bl.test"}}, p.cur, nil, p.reg)
	if err := p.srv.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.srv.StopTransfer(); p.srv.Stop(context.Background()) })
	p.port = p.srv.Addr().(*net.UDPAddr).Port
	err := p.srv.SetTransfer(dnsd.TransferConfig{Journal: p.j, Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
		Glue:   map[string][]netip.Addr{"ns1.bl.test": {netip.MustParseAddr("127.0.0.1")}},
		Notify: []string{secondary}, NotifyInterval: 100 * time.Millisecond}, p.reg)
	if err != nil {
		t.Fatal(err)
	}
	p.rep = runReplica(t, &replicaNode{name: name, cfg: cfg, cur: p.cur, onSnap: func(s *zones.Snapshot) {
		p.j.Record(s)
		p.mu.Lock()
		p.serials = append(p.serials, s.Serial)
		p.mu.Unlock()
		p.srv.ZoneChanged()
	}})
	return p
}

// xfrs counts the transfer server's requests of type typ with result res.
func (p *primary) xfrs(t *testing.T, typ, res string) float64 {
	t.Helper()
	mfs, err := p.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "blowback_xfr_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			l := map[string]string{}
			for _, lp := range m.GetLabel() {
				l[lp.GetName()] = lp.GetValue()
			}
			if l["type"] == typ && l["result"] == res {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func (p *primary) published() []uint32 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.serials)
}

// TestClusterSecondarySwitchesPrimaries: a real secondary (Knot) transfers
// the zone from replica 1, follows it by IXFR, then is pointed at replica 2
// (restarted with its zone at replica 1's serial) and follows replica 2 by
// IXFR, with no whole-zone transfer: replicas at the tail publish every
// log position, so replica 2's journal holds the serial the secondary has,
// and both journals give the same differences for the same serials.
func TestClusterSecondarySwitchesPrimaries(t *testing.T) {
	knotd := testenv.Tool(t, "knotd")
	_, cfg, admin := startLog(t, 1, 3*time.Second, 7000)
	ctx := context.Background()
	secPort := testenv.FreePort(t)
	secAddr := fmt.Sprintf("127.0.0.1:%d", secPort)
	p1 := startPrimary(t, cfg, "r1", secAddr)
	p2 := startPrimary(t, cfg, "r2", secAddr)

	next := 0
	// burst publishes n events at once (several per batch at the replicas).
	burst := func(n int) uint64 {
		t.Helper()
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for i := next; i < next+n; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				if _, err := admin.PublishEvent(ctx, event(i, "trap1"), nil); err != nil {
					errs <- err
				}
			}(i)
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		next += n
		last, err := admin.StreamLastSeq(ctx)
		if err != nil {
			t.Fatal(err)
		}
		waitFor(t, "both replicas applied the burst", 60*time.Second, func() bool {
			return p1.rep.rep.Applied() == last && p2.rep.rep.Applied() == last
		})
		return last
	}
	burst(40)

	secDir := t.TempDir()
	var knot *exec.Cmd
	var out testenv.Output
	startKnot := func(primaryPort int) {
		// The zone stays in the journal, so that knotd restarts at the
		// serial it had.
		conf := testenv.KnotSecondary{Dir: secDir, Port: secPort, Primary: primaryPort, Zone: "bl.test", JournalAll: true}.Config(t)
		knot = exec.Command(knotd, "-c", conf)
		knot.Stdout, knot.Stderr = &out, &out
		if err := knot.Start(); err != nil {
			t.Fatal(err)
		}
	}
	stopKnot := func() {
		if knot != nil {
			knot.Process.Kill()
			knot.Wait()
			knot = nil
		}
	}
	t.Cleanup(func() {
		stopKnot()
		if t.Failed() {
			t.Logf("knotd output:\n%s", out.String())
		}
	})
	startKnot(p1.port)
	testenv.WaitForSOA(t, secAddr, "bl.test", p1.cur.Load().Serial) // the secondary has replica 1's zone

	// Changes: replica 1 NOTIFYs, the secondary asks it for IXFR.
	seq := burst(12)
	s1 := p1.cur.Load().Serial
	if s1 != 7000+uint32(seq) || p2.cur.Load().Serial != s1 {
		t.Fatalf("serials %d and %d, want %d", s1, p2.cur.Load().Serial, 7000+seq)
	}
	testenv.WaitForSOA(t, secAddr, "bl.test", s1) // the secondary follows replica 1
	if n := p1.xfrs(t, "ixfr", "incremental"); n < 1 {
		t.Errorf("replica 1 sent no incremental transfer (%v)", n)
	}

	// The same serials on both replicas give the same differences.
	pub1, pub2 := p1.published(), p2.published()
	common := 0
	for _, s := range pub1 {
		if !slices.Contains(pub2, s) {
			continue
		}
		_, c1, ok1 := p1.j.Since(s)
		_, c2, ok2 := p2.j.Since(s)
		if ok1 != ok2 || !slices.Equal(c1, c2) {
			t.Errorf("serial %d: replica 1's journal gives %d changes (%v), replica 2's %d (%v)", s, len(c1), ok1, len(c2), ok2)
		}
		common++
	}
	for q := seq - 11; q <= seq; q++ { // the burst's positions, applied at the tail
		if s := 7000 + uint32(q); !slices.Contains(pub1, s) || !slices.Contains(pub2, s) {
			t.Errorf("serial %d (position %d) not published by both replicas (replica 1: %v, replica 2: %v)", s, q, pub1, pub2)
		}
	}
	t.Logf("published: replica 1 %d serials, replica 2 %d, %d in common", len(pub1), len(pub2), common)

	// The secondary switches to replica 2 and keeps the zone it has.
	stopKnot()
	full2 := p2.xfrs(t, "axfr", "full") + p2.xfrs(t, "ixfr", "full")
	startKnot(p2.port)
	testenv.WaitForSOA(t, secAddr, "bl.test", s1) // the restarted secondary serves its zone
	seq = burst(12)
	s2 := p2.cur.Load().Serial
	if s2 != 7000+uint32(seq) {
		t.Fatalf("replica 2 serial %d, want %d", s2, 7000+seq)
	}
	testenv.WaitForSOA(t, secAddr, "bl.test", s2) // the secondary follows replica 2
	if n := p2.xfrs(t, "ixfr", "incremental"); n < 1 {
		t.Errorf("replica 2 sent no incremental transfer (%v)", n)
	}
	if n := p2.xfrs(t, "axfr", "full") + p2.xfrs(t, "ixfr", "full"); n != full2 {
		t.Errorf("replica 2 sent the whole zone %v times after the switch", n-full2)
	}
	for i := 0; i < next; i += 5 {
		a := addr(i)
		if got, want := len(testenv.AskDNSBL(t, secAddr, dnsd.QueryName(a, "bl.test")).A) > 0, p2.cur.Load().Lookup(a) != 0; got != want {
			t.Errorf("%v: secondary listed=%v, replica 2 %v", a, got, want)
		}
	}
}
