package dnsd

// Real secondaries from Debian (Knot, NSD) transfer the zone from
// blowback: AXFR at start, then IXFR after a change announced by NOTIFY,
// and answer as blowback does.

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/blowback-dnsbl/blowback/internal/testenv"
	"github.com/blowback-dnsbl/blowback/zones"
)

// compareSecondary checks that the secondary answers the sample as
// blowback: the same A records everywhere; the same TXT for exact names
// (wildcards show their prefix, docs/mirrors.md).
func compareSecondary(t *testing.T, bb, sec string, snap *zones.Snapshot, sample []netip.Addr) {
	t.Helper()
	listed := 0
	for _, a := range sample {
		name := QueryName(a, snap.Zone)
		want, got := testenv.AskDNSBL(t, bb, name), testenv.AskDNSBL(t, sec, name)
		if !slices.Equal(want.A, got.A) {
			t.Errorf("%s: blowback A %v, secondary A %v", a, want.A, got.A)
			continue
		}
		if len(want.A) == 0 {
			continue
		}
		listed++
		// The secondary's TXT is the BIND export's: the address for an
		// exact name, the prefix for a wildcard.
		var cover zones.Name
		snap.Names(func(n zones.Name) bool {
			if n.Prefix.Contains(a) {
				cover = n
				return false
			}
			return true
		})
		if !cover.Prefix.IsValid() {
			t.Errorf("%s: listed, but no name covers it", a)
			continue
		}
		wantTXT := []string{strings.Join(splitTXT(cover.TXT(snap.TXT)), "")}
		if !cover.Wildcard() && !slices.Equal(want.TXT, wantTXT) {
			t.Errorf("%s: blowback TXT %q, export TXT %q", a, want.TXT, wantTXT)
		}
		if !slices.Equal(got.TXT, wantTXT) {
			t.Errorf("%s: secondary TXT %q, want %q", a, got.TXT, wantTXT)
		}
	}
	if listed < 20 {
		t.Errorf("only %d of %d sample addresses listed", listed, len(sample))
	}
}

func secondarySample(s *zones.Snapshot) []netip.Addr {
	out := []netip.Addr{zones.TestListed, zones.TestNotListed, netip.MustParseAddr("192.0.2.77"), netip.MustParseAddr("203.0.113.1"),
		netip.MustParseAddr("2001:db8:1:2::77"), netip.MustParseAddr("2001:db8:1:3::1")}
	i := 0
	s.Entries(func(e zones.Entry) bool {
		if i%7 == 0 {
			out = append(out, e.Prefix.Addr(), e.Prefix.Addr().Next())
		}
		i++
		return true
	})
	return out
}

type secondary struct {
	name   string
	tool   string
	tsig   bool
	config func(t *testing.T, dir string, port, primary int, tsig bool) (args []string)
}

var secondaries = []secondary{
	{"knot", "knotd", false, knotConfig},
	{"knot-tsig", "knotd", true, knotConfig},
	{"nsd", "nsd", false, nsdConfig},
	{"nsd-tsig", "nsd", true, nsdConfig},
}

// knotConfig writes a knotd configuration in dir: a secondary of
// bl.example on port, transferring from primary (with the TSIG key xfrKey
// on both transfer and NOTIFY when tsig is set).
func knotConfig(t *testing.T, dir string, port, primary int, tsig bool) []string {
	k := testenv.KnotSecondary{Dir: dir, Port: port, Primary: primary, Zone: "bl.example"}
	if tsig {
		k.TSIGKey, k.TSIGSecret = xfrKey, xfrSecret
	}
	return []string{"-c", k.Config(t)}
}

// nsdConfig is knotConfig for nsd.
func nsdConfig(t *testing.T, dir string, port, primary int, tsig bool) []string {
	keys, key := "", "NOKEY"
	if tsig {
		keys = fmt.Sprintf("key:\n    name: \"%s\"\n    algorithm: hmac-sha256\n    secret: \"%s\"\n", xfrKey, xfrSecret)
		key = xfrKey
	}
	conf := fmt.Sprintf(`server:
    ip-address: 127.0.0.1@%[2]d
    port: %[2]d
    username: ""
    chroot: ""
    zonesdir: "%[1]s"
    database: ""
    pidfile: "%[1]s/nsd.pid"
    xfrdfile: "%[1]s/xfrd.state"
    xfrdir: "%[1]s"
    zonelistfile: "%[1]s/zone.list"
    logfile: "%[1]s/nsd.log"
    server-count: 1
    verbosity: 2
remote-control:
    control-enable: no
%[4]szone:
    name: bl.example
    zonefile: bl.example.zone
    request-xfr: 127.0.0.1@%[3]d %[5]s
    allow-notify: 127.0.0.1 %[5]s
`, dir, port, primary, keys, key)
	path := filepath.Join(dir, "nsd.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	return []string{"-d", "-c", path}
}

func TestSecondaryTransfers(t *testing.T) {
	for _, sec := range secondaries {
		t.Run(sec.name, func(t *testing.T) {
			tool := testenv.Tool(t, sec.tool)
			v1 := xfrZone(1000, 400, 7)
			port := testenv.FreePort(t)
			secAddr := fmt.Sprintf("127.0.0.1:%d", port)
			tc := TransferConfig{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
				Glue:   map[string][]netip.Addr{"ns1.bl.example": {netip.MustParseAddr("127.0.0.1")}},
				Notify: []string{secAddr}, NotifyInterval: 100 * time.Millisecond}
			if sec.tsig {
				tc.Keys, tc.RequireTSIG, tc.NotifyKey = []TSIGKey{{Name: xfrKey, Secret: xfrSecret}}, true, xfrKey
			}
			e := serveXFR(t, v1, tc)
			srv, bb := e.srv, e.addr
			dir := t.TempDir()
			testenv.Daemon(t, tool, sec.config(t, dir, port, srv.Addr().(*net.UDPAddr).Port, sec.tsig)...)
			testenv.WaitForSOA(t, secAddr, "bl.example", v1.Serial)
			m := srv.xfr.p.Load().m
			// Transfers are counted after their last message is sent: the
			// secondary may serve the zone first.
			testenv.Eventually(t, "a full transfer counted", func() bool {
				return counterValue(m.requests.WithLabelValues("axfr", "full"))+counterValue(m.requests.WithLabelValues("ixfr", "full")) >= 1
			})
			compareSecondary(t, bb, secAddr, v1, secondarySample(v1))

			// A change: NOTIFY, then the secondary asks for IXFR.
			var ch []zones.Entry
			n := 0
			v1.Entries(func(e zones.Entry) bool {
				if e.Prefix.Addr().Is4() && e.Prefix.Bits() == 32 && n < 10 {
					ch = append(ch, zones.Entry{Prefix: e.Prefix, Codes: 0})
					n++
				}
				return true
			})
			ch = append(ch, zones.Entry{Prefix: netip.MustParsePrefix("203.0.113.1/32"), Codes: zones.CodeBounce | zones.CodeCallout},
				zones.Entry{Prefix: netip.MustParsePrefix("2001:db8:1:3::/64"), Codes: zones.CodeAutoreply})
			v2 := v1.With(zones.Info{Zone: v1.Zone, Serial: 1001, TXT: v1.TXT, TTL: v1.TTL}, ch)
			e.j.Record(v2)
			srv.cur.Store(v2)
			srv.ZoneChanged()
			testenv.WaitForSOA(t, secAddr, "bl.example", v2.Serial)
			if v := waitCounter(m.requests.WithLabelValues("ixfr", "incremental"), 1); v != 1 {
				t.Errorf("the change did not go by IXFR: ixfr/incremental = %v", v)
			}
			// The NOTIFY answer is counted when it arrives, which can be
			// after the secondary has already fetched the change.
			if v := waitCounter(m.notify.WithLabelValues("ok"), 1); v < 1 {
				t.Errorf("NOTIFY not acknowledged: %v", v)
			}
			compareSecondary(t, bb, secAddr, v2, append(secondarySample(v2), secondarySample(v1)...))
		})
	}
}
