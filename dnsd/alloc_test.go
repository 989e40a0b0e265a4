package dnsd

import (
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// TestFastPathAllocs guards the claim of fast.go and udp.go: a plain UDP
// query is answered without allocating, listed or not, A or TXT, with EDNS
// or without, RRL on or off, and with keyed access on (a known key). The
// refused-query policy, when off, costs nothing either.
func TestFastPathAllocs(t *testing.T) {
	keys, _ := testKeys(t, KeyInfo{Key: "allockey99"})
	keyed := keyedName("192.0.2.1", "allockey99")
	src := netip.MustParseAddr("198.18.0.1")
	for _, cfg := range []struct {
		name string
		cfg  Config
	}{
		{"rrl off", Config{}},
		{"rrl on", Config{RRL: RRLConfig{Rate: 1 << 30}}},
		{"keys on", Config{Keys: keys}},
		{"policy on, client allowed", Config{Policy: Policy{Budget: 1 << 30, Refuse: []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")}}}},
	} {
		cur := serving(testSnapshot())
		s := New(cfg.cfg, cur, nil, nil)
		for _, q := range []struct {
			name string
			m    *dns.Msg
		}{
			{"listed A", query(v4name("192.0.2.1"), dns.TypeA)},
			{"unlisted A", query(v4name("192.0.2.2"), dns.TypeA)},
			{"listed TXT", query(v4name("192.0.2.1"), dns.TypeTXT)},
			{"unlisted TXT", query(v4name("192.0.2.2"), dns.TypeTXT)},
			{"listed A, EDNS", query(v4name("192.0.2.1"), dns.TypeA, edns(1232, true))},
			{"unlisted A, EDNS", query(v4name("192.0.2.2"), dns.TypeA, edns(1232, false))},
			{"listed TXT, EDNS", query(v4name("192.0.2.1"), dns.TypeTXT, edns(1232, false))},
			{"listed IPv6 A", query(QueryName(netip.MustParseAddr("2001:db8:1:2::1"), zone), dns.TypeA)},
			{"keyed A", query(keyed, dns.TypeA)},
		} {
			if q.name == "keyed A" && cfg.cfg.Keys == nil {
				continue
			}
			t.Run(cfg.name+"/"+q.name, func(t *testing.T) {
				h := newPacketHandler(s)
				pkt := pack(t, q.m)
				out := make([]byte, 0, bufSize)
				now := time.Now()
				fast := h.ctr.fast.Load()
				allocs := testing.AllocsPerRun(100, func() {
					if h.handle(pkt, src, out, now) == nil {
						t.Fatal("no answer")
					}
				})
				if h.ctr.fast.Load() == fast {
					t.Fatal("not answered on the fast path")
				}
				if allocs != 0 {
					t.Errorf("%v allocations per query", allocs)
				}
			})
		}
	}
}

// TestGOMAXPROCSLeftAlone: starting a server does not change the
// process's GOMAXPROCS unless asked to (issue 14: no global side effects in
// libraries).
func TestGOMAXPROCSLeftAlone(t *testing.T) {
	old := runtime.GOMAXPROCS(1)
	defer runtime.GOMAXPROCS(old)
	startServer(t, Config{UDPSockets: 2}, testSnapshot())
	if n := runtime.GOMAXPROCS(0); n != 1 {
		t.Errorf("GOMAXPROCS changed to %d", n)
	}
	startServer(t, Config{UDPSockets: 2, RaiseGOMAXPROCS: true}, testSnapshot())
	if n := runtime.GOMAXPROCS(0); blockingUDP && n != 3 {
		t.Errorf("asked to raise: GOMAXPROCS %d, want 3", n)
	}
}
