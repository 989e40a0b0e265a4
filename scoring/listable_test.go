package scoring

import (
	"net/netip"
	"testing"
	"time"

	"github.com/blowback-dnsbl/blowback/store"
)

func TestListable(t *testing.T) {
	for _, c := range []struct {
		addr string
		want bool
	}{
		{"192.0.2.1", true},
		{"2001:db8::1", true},
		{"127.0.0.9", true}, // loopback stand-in sources of the tests (documented)
		{"127.0.0.2", true}, // the always-listed test point
		{"127.0.0.1", false},
		{"::ffff:127.0.0.1", false},
		{"::1", false},
		{"::", false},
		{"::2", false}, // same /64 as ::1
		{"0.0.0.0", false},
		{"0.1.2.3", false},
		{"255.255.255.255", false},
		{"240.0.0.1", false},
		{"224.0.0.251", false},
		{"239.255.255.250", false},
		{"169.254.1.1", false},
		{"fe80::1", false},
		{"febf::1", false},
		{"ff02::1", false},
		{"fec0::1", true},
	} {
		if got := Listable(netip.MustParseAddr(c.addr)); got != c.want {
			t.Errorf("Listable(%s) = %v, want %v", c.addr, got, c.want)
		}
	}
	if Listable(netip.Addr{}) {
		t.Error("zero address listable")
	}
}

// TestDecideNeverListable: whatever is stored, and even a manual list, a
// never-listable address is not listed.
func TestDecideNeverListable(t *testing.T) {
	p := DefaultPolicy()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, a := range []string{"127.0.0.1", "224.0.0.1", "::1", "fe80::5"} {
		u := Unit(netip.MustParseAddr(a))
		refs := []store.Ref{{Addr: u.Addr(), Time: now.Add(-time.Minute), Kind: store.KindBounce, Rcpt: 1, Domain: 2}}
		acts := []store.Action{{Prefix: u, Op: store.OpList, Time: now.Add(-time.Hour), Who: "admin", Reason: "x"}}
		if d := Decide(&p, u, refs, acts, now); d.Listed || d.Reason == "" {
			t.Errorf("%s: %+v", a, d)
		}
	}
}
