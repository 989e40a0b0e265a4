package listing

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/blowback-dnsbl/blowback/scoring"
	"github.com/blowback-dnsbl/blowback/store"
	"github.com/blowback-dnsbl/blowback/zones"
)

// TestChangeAllow: an admin allowlist add unlists the network's addresses
// when it returns, a remove lists them again; the change is kept in the
// store (a rebuild applies it), audited, applied once by id, and a
// configured network cannot be removed this way.
func TestChangeAllow(t *testing.T) {
	ctx := context.Background()
	pol := scoring.DefaultPolicy()
	pol.Allow = []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}
	f := newFixture(t, pol)
	f.ingest(t, "198.51.100.1", store.KindBounce, "a@trap.test")
	f.ingest(t, "198.51.100.2", store.KindBounce, "a@trap.test")
	f.ingest(t, "203.0.113.9", store.KindBounce, "a@trap.test")
	for _, ip := range []string{"198.51.100.1", "198.51.100.2", "203.0.113.9"} {
		f.served(t, ip, zones.CodeBounce)
	}
	net := netip.MustParsePrefix("198.51.100.0/24")
	for _, bad := range []AllowChange{
		{Op: AllowAdd, Prefix: net},                          // no reason
		{Op: "drop", Prefix: net, Reason: "x"},               // no such op
		{Op: AllowRemove, Prefix: pol.Allow[0], Reason: "x"}, // configured
	} {
		if err := f.eng.ChangeAllow(ctx, bad); !errors.Is(err, ErrAllow) {
			t.Errorf("%+v: %v, want ErrAllow", bad, err)
		}
	}
	if err := f.eng.ChangeAllow(ctx, AllowChange{Op: AllowAdd, Prefix: net, Who: "admin:ops", Reason: "customer"}); err != nil {
		t.Fatal(err)
	}
	for ip, want := range map[string]zones.Codes{"198.51.100.1": 0, "198.51.100.2": 0, "203.0.113.9": zones.CodeBounce} {
		if got := f.cur.Load().Lookup(netip.MustParseAddr(ip)); got != want {
			t.Errorf("after the add, %s served %v, want %v", ip, got, want)
		}
	}
	list, err := f.eng.Allowlist()
	if err != nil || len(list) != 2 || list[0].Source != "config" || list[1].Prefix != net || list[1].Source != "admin" || list[1].Reason != "customer" {
		t.Errorf("allowlist %+v %v", list, err)
	}
	audit, err := f.st.AuditLog(time.Time{}, 100)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, a := range audit {
		found = found || (a.Action == "allow-add" && a.Target == net.String() && a.Who == "admin:ops")
	}
	if !found {
		t.Errorf("no audit entry for the add: %+v", audit)
	}

	// The same change applied again (a replica re-applying a batch) is kept once.
	changes, _ := f.eng.allowChanges()
	if units, err := f.eng.ApplyAllow(ctx, changes[0]); err != nil || len(units) != 2 {
		t.Errorf("applied twice: units to re-score %v, %v", units, err)
	}
	if again, _ := f.eng.allowChanges(); len(again) != 1 {
		t.Errorf("%d changes kept, want 1", len(again))
	}

	// A new engine on the same store (a restart) allows the network too.
	e2 := New(Config{Zone: "bl.test", Policy: pol, Now: f.clk.Now}, f.st, &zones.Current{}, nil, nil)
	if err := e2.Rebuild(ctx); err != nil {
		t.Fatal(err)
	}
	if d, _, _, err := e2.Decide(netip.MustParseAddr("198.51.100.1")); err != nil || d.Listed || d.Allowed != net {
		t.Errorf("after a rebuild: %+v %v", d, err)
	}

	if err := f.eng.ChangeAllow(ctx, AllowChange{Op: AllowRemove, Prefix: net, Reason: "contract ended"}); err != nil {
		t.Fatal(err)
	}
	f.served(t, "198.51.100.1", zones.CodeBounce)
	f.served(t, "198.51.100.2", zones.CodeBounce)
	if list, _ := f.eng.Allowlist(); len(list) != 1 {
		t.Errorf("after the remove: %+v", list)
	}
}

// TestChangeAllowLiftsEscalation: an allowlisted network inside an
// escalated prefix lifts the escalation (Policy.Escalates), even when no
// unit inside it has evidence.
func TestChangeAllowLiftsEscalation(t *testing.T) {
	pol := scoring.DefaultPolicy()
	pol.Escalate.Enabled, pol.Escalate.Min = true, 3
	f := newFixture(t, pol)
	for _, ip := range []string{"192.0.2.1", "192.0.2.2", "192.0.2.3"} {
		f.ingest(t, ip, store.KindBounce, "a@trap.test")
	}
	f.served(t, "192.0.2.99", zones.CodeBounce)
	if err := f.eng.ChangeAllow(context.Background(), AllowChange{Op: AllowAdd, Prefix: netip.MustParsePrefix("192.0.2.200/32"), Reason: "our server"}); err != nil {
		t.Fatal(err)
	}
	if c := f.cur.Load().Lookup(netip.MustParseAddr("192.0.2.99")); c != 0 {
		t.Errorf("the /24 is still escalated with an allowlisted address inside: %v", c)
	}
	f.served(t, "192.0.2.1", zones.CodeBounce)
}
