package main

import (
	"net/netip"
	"testing"
	"time"

	"github.com/blowback-dnsbl/blowback/scoring"
	"github.com/blowback-dnsbl/blowback/store"
)

func TestPolicyConfig(t *testing.T) {
	c := mustParse(t, "")
	p, err := c.policy()
	if err != nil {
		t.Fatal(err)
	}
	def := scoring.DefaultPolicy()
	if p.HalfLife != def.HalfLife || p.MaxAge != def.MaxAge || p.ListThreshold != def.ListThreshold ||
		p.Weight(store.KindBounce) != 1 || p.Escalate.Enabled {
		t.Fatalf("defaults: %+v", p)
	}
	c = mustParse(t, `
[policy]
half_life = "3d"
max_age = "2w"
list_threshold = 2
delist_threshold = 0.5
allow = ["192.0.2.0/24", "2001:db8::1"]
[policy.weights]
callout = 0.5
[policy.escalate]
enabled = true
min = 8
[store]
memtable_mb = 16
`)
	p, err = c.policy()
	if err != nil {
		t.Fatal(err)
	}
	if p.HalfLife != 3*24*time.Hour || p.MaxAge != 14*24*time.Hour || p.ListThreshold != 2 || p.DelistThreshold != 0.5 ||
		p.Weight(store.KindCallout) != 0.5 || p.Weight(store.KindBounce) != 1 || !p.Escalate.Enabled || p.Escalate.Min != 8 ||
		p.Escalate.Bits4 != 24 || len(p.Allow) != 2 || p.Allow[1] != netip.MustParsePrefix("2001:db8::1/128") {
		t.Fatalf("parsed: %+v", p)
	}
	if o := c.storeOptions(); o.MemTableSize != 16<<20 || o.Retention != 400*24*time.Hour ||
		o.UnitWindow != time.Hour || o.UnitMaxEvents != 500 || o.UnitMaxRawBytes != 16<<20 || o.NetMaxEvents != 8000 || o.NetMaxRawBytes != 256<<20 {
		t.Fatalf("store options: %+v", o)
	}
	// Per-unit caps (issue 13): settable, 0 turns them off.
	c = mustParse(t, "[store]\nunit_window = \"10m\"\nunit_max_events = 0\nunit_max_raw_mb = 2\nnet_max_events = 0\nnet_max_raw_mb = 3\n")
	if o := c.storeOptions(); o.UnitWindow != 10*time.Minute || o.UnitMaxEvents != 0 || o.UnitMaxRawBytes != 2<<20 ||
		o.NetMaxEvents != 0 || o.NetMaxRawBytes != 3<<20 {
		t.Fatalf("store unit caps: %+v", o)
	}
	for _, bad := range []string{"unit_max_events = -1", "net_max_events = -1", "net_max_raw_mb = -1"} {
		if _, err := parseConfig([]byte("[store]\n" + bad + "\n")); err == nil {
			t.Errorf("[store] %s accepted", bad)
		}
	}
	refusedConfigs(t, "policy",
		"[policy]\ndelist_threshold = 3",
		"[policy.weights]\nbogus = 1",
		"[policy]\nallow = [\"not-an-ip\"]",
		"[policy]\nmax_age = \"0s\"\nhalf_life = \"0s\"",
		"[policy.escalate]\nenabled = true\nmin = 1",
	)
}
