package listing

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/blowback-dnsbl/blowback/internal/testenv"
	"github.com/blowback-dnsbl/blowback/scoring"
	"github.com/blowback-dnsbl/blowback/store"
	"github.com/blowback-dnsbl/blowback/zones"
)

type fixture struct {
	eng *Engine
	st  *store.Store
	cur *zones.Current
	clk *testenv.ManualClock
}

func newFixture(t *testing.T, pol scoring.Policy) *fixture {
	t.Helper()
	st, err := store.Open("", store.Options{InMemory: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	clk := testenv.NewManualClock(time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC))
	cur := &zones.Current{}
	eng := New(Config{Zone: "bl.test", TXT: "see $", Policy: pol, Now: clk.Now, Coalesce: time.Millisecond}, st, cur, nil, nil)
	if err := eng.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Stop(context.Background()) })
	return &fixture{eng, st, cur, clk}
}

func (f *fixture) ingest(t *testing.T, ip string, k store.Kind, rcpt string) {
	t.Helper()
	ev := &store.Event{ID: store.NewEventID(), Time: f.clk.Now(), ClientIP: netip.MustParseAddr(ip), Kind: k,
		Rcpts: []string{rcpt}, TrapDomain: "trap.test", HELO: "mx"}
	if err := f.eng.Ingest(context.Background(), ev, nil); err != nil {
		t.Fatal(err)
	}
}

// served polls the published snapshot (publication is asynchronous, a few ms).
func (f *fixture) served(t *testing.T, ip string, want zones.Codes) {
	t.Helper()
	a := netip.MustParseAddr(ip)
	deadline := time.Now().Add(20 * time.Second) // generous for busy machines
	for {
		got := f.cur.Load().Lookup(a)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s served %v, want %v", ip, got, want)
		}
		time.Sleep(time.Millisecond)
	}
}

func (f *fixture) act(t *testing.T, ip, op, who string, public bool) scoring.Decision {
	t.Helper()
	d, err := f.eng.Act(context.Background(), store.Action{Prefix: scoring.Unit(netip.MustParseAddr(ip)), Op: op, Who: who,
		Reason: "because " + op, Public: public})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestIngestDelistRelistAudit(t *testing.T) {
	f := newFixture(t, scoring.DefaultPolicy())
	f.ingest(t, "192.0.2.1", store.KindBounce, "a@trap.test")
	f.ingest(t, "2001:db8::1", store.KindAutoreply, "b@trap.test")
	f.served(t, "192.0.2.1", zones.CodeBounce)
	f.served(t, "2001:db8::ffff", zones.CodeAutoreply) // the /64
	f.served(t, "192.0.2.2", 0)

	// Public delist: immediate (Act returns once served), audited.
	f.clk.Add(time.Minute)
	if d := f.act(t, "192.0.2.1", store.OpDelist, "198.51.100.9", true); d.Listed {
		t.Fatalf("still listed after delist: %s", d.Reason)
	}
	if got := f.cur.Load().Lookup(netip.MustParseAddr("192.0.2.1")); got != 0 {
		t.Fatalf("served %v right after Act returned", got)
	}
	// A new hit relists.
	f.clk.Add(time.Minute)
	f.ingest(t, "192.0.2.1", store.KindBounce, "a@trap.test")
	f.served(t, "192.0.2.1", zones.CodeBounce)
	// Admin list and delist.
	f.clk.Add(time.Minute)
	f.act(t, "203.0.113.5", store.OpList, "admin:alice", false)
	f.served(t, "203.0.113.5", zones.CodeBounce)
	f.clk.Add(time.Minute)
	f.act(t, "203.0.113.5", store.OpDelist, "admin:bob", false)
	f.served(t, "203.0.113.5", 0)

	log, err := f.st.AuditLog(time.Time{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"delist public:198.51.100.9 192.0.2.1/32 because delist", "list admin:alice 203.0.113.5/32 because list",
		"delist admin:bob 203.0.113.5/32 because delist"}
	if len(log) != len(want) {
		t.Fatalf("audit log %+v", log)
	}
	for i, e := range log {
		if got := e.Action + " " + e.Who + " " + e.Target + " " + e.Reason; got != want[i] || e.Time.IsZero() {
			t.Errorf("audit[%d] = %q at %v, want %q", i, got, e.Time, want[i])
		}
	}
	x, err := f.eng.Explain(netip.MustParseAddr("192.0.2.1"))
	if err != nil {
		t.Fatal(err)
	}
	// Evidence newest first.
	if !x.Listed || len(x.Evidence) != 2 || x.Evidence[1].Counted || !x.Evidence[0].Counted || x.ListThreshold != 1 ||
		x.Since == nil || len(x.Actions) != 1 || !strings.Contains(x.Evidence[1].Why, "delist") {
		t.Fatalf("explanation: %+v", x)
	}
}

func TestSweepExpires(t *testing.T) {
	f := newFixture(t, scoring.DefaultPolicy())
	f.ingest(t, "192.0.2.1", store.KindBounce, "a@trap.test")
	f.served(t, "192.0.2.1", zones.CodeBounce)
	d, _, _, err := f.eng.Decide(netip.MustParseAddr("192.0.2.1"))
	if err != nil || !d.Listed {
		t.Fatal(d, err)
	}
	f.clk.Add(d.Expires.Sub(f.clk.Now()) - time.Second)
	f.eng.Sweep(context.Background())
	f.served(t, "192.0.2.1", zones.CodeBounce)
	f.clk.Add(2 * time.Second)
	f.eng.Sweep(context.Background())
	f.served(t, "192.0.2.1", 0)
	if n := f.eng.Listed(); n != 0 {
		t.Fatalf("listed = %d after expiry", n)
	}
}

// TestRebuildMatchesIncremental: after a random mix of evidence and actions,
// the incrementally maintained zone equals a full rebuild from the store.
func TestRebuildMatchesIncremental(t *testing.T) {
	f := newFixture(t, scoring.DefaultPolicy())
	kinds := []store.Kind{store.KindBounce, store.KindCallout, store.KindChallenge, store.KindSpam, store.KindMDN}
	for i := 0; i < 300; i++ {
		ip := fmt.Sprintf("10.0.%d.%d", i%3, i%17)
		if i%5 == 0 {
			ip = fmt.Sprintf("2001:db8:%x::%x", i%4, i)
		}
		switch i % 23 {
		case 7:
			f.act(t, ip, store.OpDelist, "x", true)
		case 11:
			f.act(t, ip, store.OpList, "admin", false)
		default:
			f.ingest(t, ip, kinds[i%len(kinds)], fmt.Sprintf("t%d@trap.test", i%4))
		}
		f.clk.Add(time.Duration(i%7) * time.Hour)
	}
	f.clk.Add(10 * 24 * time.Hour)
	f.eng.Sweep(context.Background())
	f.eng.Stop(context.Background()) // publishes what is pending
	inc := entries(f.cur.Load())
	if err := f.eng.Rebuild(context.Background()); err != nil {
		t.Fatal(err)
	}
	full := entries(f.cur.Load())
	if inc != full || full == "" {
		t.Fatalf("incremental:\n%s\nrebuild:\n%s", inc, full)
	}
}

func entries(s *zones.Snapshot) string {
	var b strings.Builder
	s.Entries(func(e zones.Entry) bool {
		fmt.Fprintf(&b, "%s %v %v\n", e.Prefix, e.Codes, e.Exclude)
		return true
	})
	return b.String()
}

func TestEscalation(t *testing.T) {
	pol := scoring.DefaultPolicy()
	pol.Escalate.Enabled = true
	pol.Escalate.Min = 3
	f := newFixture(t, pol)
	f.ingest(t, "192.0.2.1", store.KindBounce, "a@trap.test")
	f.ingest(t, "192.0.2.2", store.KindCallout, "a@trap.test")
	f.served(t, "192.0.2.2", zones.CodeCallout)
	f.served(t, "192.0.2.99", 0) // two are not enough
	f.ingest(t, "192.0.2.3", store.KindBounce, "a@trap.test")
	f.served(t, "192.0.2.99", zones.CodeBounce|zones.CodeCallout)
	if esc := f.eng.Escalations(); len(esc) != 1 || esc[0].Prefix != netip.MustParsePrefix("192.0.2.0/24") || esc[0].Members != 3 {
		t.Fatalf("escalations %+v", esc)
	}
	snap := f.cur.Load()
	_, vi := snap.Find(netip.MustParseAddr("192.0.2.99"))
	if v := snap.Value(vi); v == nil || !strings.Contains(v.TXT, "192.0.2.0/24") {
		t.Fatalf("escalated TXT does not name its scope: %+v", v)
	}
	x, _ := f.eng.Explain(netip.MustParseAddr("192.0.2.99"))
	if x.Escalated == nil || x.Listed {
		t.Fatalf("explain of a neighbour: %+v", x)
	}
	// A fourth member, then a delist of one: the range stays (3 left) but
	// the delisted address is excluded at once.
	f.ingest(t, "192.0.2.4", store.KindBounce, "a@trap.test")
	f.clk.Add(time.Minute)
	f.act(t, "192.0.2.4", store.OpDelist, "someone", true)
	f.served(t, "192.0.2.4", 0)
	f.served(t, "192.0.2.99", zones.CodeBounce|zones.CodeCallout)
	// Below the threshold the escalation is lifted.
	f.act(t, "192.0.2.3", store.OpDelist, "someone", true)
	f.served(t, "192.0.2.99", 0)
	f.served(t, "192.0.2.1", zones.CodeBounce)
	// A new hit relists (after the delist instant); a rebuild gives the same.
	f.clk.Add(time.Minute)
	f.ingest(t, "192.0.2.3", store.KindBounce, "a@trap.test")
	f.served(t, "192.0.2.99", zones.CodeBounce|zones.CodeCallout)
	before := entries(f.cur.Load())
	if err := f.eng.Rebuild(context.Background()); err != nil {
		t.Fatal(err)
	}
	if after := entries(f.cur.Load()); after != before {
		t.Fatalf("rebuild differs:\n%s\n%s", before, after)
	}
}

func TestAllowlistKeepsEvidence(t *testing.T) {
	pol := scoring.DefaultPolicy()
	pol.Allow = []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}
	f := newFixture(t, pol)
	f.ingest(t, "192.0.2.1", store.KindBounce, "a@trap.test")
	f.act(t, "192.0.2.1", store.OpList, "admin", false)
	f.ingest(t, "198.51.100.1", store.KindBounce, "a@trap.test")
	f.served(t, "198.51.100.1", zones.CodeBounce)
	f.served(t, "192.0.2.1", 0)
	refs, err := f.st.Refs(netip.MustParsePrefix("192.0.2.1/32"))
	if err != nil || len(refs) != 1 {
		t.Fatalf("evidence of an allowlisted address: %v %v", refs, err)
	}
}

func TestSerialsIncreaseAcrossRestarts(t *testing.T) {
	dir := t.TempDir()
	var last uint32
	for run := 0; run < 3; run++ {
		st, err := store.Open(dir, store.DefaultOptions(), nil)
		if err != nil {
			t.Fatal(err)
		}
		// A clock far in the past: serials come from the store, not the time.
		eng := New(Config{Zone: "bl.test", Now: func() time.Time { return time.Unix(1000, 0) }}, st, &zones.Current{}, nil, nil)
		for i := 0; i < 5; i++ {
			s := eng.nextSerial()
			if s <= last {
				t.Fatalf("run %d: serial %d after %d", run, s, last)
			}
			last = s
		}
		st.Close()
	}
}
