package dnsd

// Real secondaries from Debian (Knot, NSD) transfer the zone from
// blowback: AXFR at start, then IXFR after a change announced by NOTIFY,
// and answer as blowback does.

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/blowback-dnsbl/blowback/internal/testenv"
	"github.com/blowback-dnsbl/blowback/zones"
)

// waitSerial polls server until it serves zone with serial.
func waitSerial(t *testing.T, server, zone string, serial uint32) {
	t.Helper()
	c := &dns.Client{Timeout: 300 * time.Millisecond}
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(zone), dns.TypeSOA)
	var last string
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		r, _, err := c.Exchange(m, server)
		if err == nil && len(r.Answer) == 1 {
			if soa, ok := r.Answer[0].(*dns.SOA); ok && soa.Serial == serial {
				return
			}
			last = r.Answer[0].String()
		} else if err != nil {
			last = err.Error()
		} else {
			last = dns.RcodeToString[r.Rcode]
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s never served %s serial %d (last: %s)", server, zone, serial, last)
}

// queryAT is the A and TXT answers for name at server, over TCP.
func queryAT(t *testing.T, server, name string) testenv.Answer {
	t.Helper()
	var rs []*dns.Msg
	for _, qt := range []uint16{dns.TypeA, dns.TypeTXT} {
		m := new(dns.Msg)
		m.SetQuestion(name, qt)
		m.SetEdns0(4096, false)
		r, _, err := (&dns.Client{Net: "tcp", Timeout: 5 * time.Second}).Exchange(m, server)
		if err != nil {
			t.Fatalf("query %s at %s: %v", name, server, err)
		}
		rs = append(rs, r)
	}
	return testenv.AnswerOf(rs...)
}

// compareSecondary checks that the secondary answers the sample as
// blowback: the same A records everywhere; the same TXT for exact names
// (wildcards show their prefix, docs/mirrors.md).
func compareSecondary(t *testing.T, bb, sec string, snap *zones.Snapshot, sample []netip.Addr) {
	t.Helper()
	listed := 0
	for _, a := range sample {
		name := QueryName(a, snap.Zone)
		want, got := queryAT(t, bb, name), queryAT(t, sec, name)
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
	config func(dir string, port, primary int, tsig bool) (args []string)
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
func knotConfig(dir string, port, primary int, tsig bool) []string {
	var keys, remoteKey, aclKey string
	if tsig {
		keys = fmt.Sprintf("key:\n  - id: %s\n    algorithm: hmac-sha256\n    secret: %s\n", xfrKey, xfrSecret)
		remoteKey = "    key: " + xfrKey + "\n"
		aclKey = remoteKey
	}
	conf := fmt.Sprintf(`server:
    rundir: "%[1]s"
    pidfile: "%[1]s/knot.pid"
    listen: 127.0.0.1@%[2]d
log:
  - target: stderr
    any: info
database:
    storage: "%[1]s"
%[4]sremote:
  - id: blowback
    address: 127.0.0.1@%[3]d
%[5]sacl:
  - id: notify_from_blowback
    address: 127.0.0.1
%[6]s    action: notify
template:
  - id: default
    storage: "%[1]s"
    file: "%%s.zone"
    zonefile-sync: -1
    zonefile-load: none
    journal-content: changes
zone:
  - domain: bl.example
    master: blowback
    acl: notify_from_blowback
`, dir, port, primary, keys, remoteKey, aclKey)
	path := filepath.Join(dir, "knot.conf")
	os.WriteFile(path, []byte(conf), 0o644)
	return []string{"-c", path}
}

// nsdConfig is knotConfig for nsd.
func nsdConfig(dir string, port, primary int, tsig bool) []string {
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
	os.WriteFile(path, []byte(conf), 0o644)
	return []string{"-d", "-c", path}
}

func TestSecondaryTransfers(t *testing.T) {
	for _, sec := range secondaries {
		t.Run(sec.name, func(t *testing.T) {
			tool := testenv.Tool(t, sec.tool)
			cur := &zones.Current{}
			j := zones.NewJournal(0)
			v1 := xfrZone(1000, 400, 7)
			cur.Store(v1)
			j.Record(v1)
			reg := prometheus.NewRegistry()
			var srv *Server
			for try := 0; ; try++ {
				srv = New(Config{NS: []string{"ns1.bl.example"}}, cur, nil, reg)
				err := srv.Start("127.0.0.1:0")
				if err == nil {
					break
				}
				srv.Stop(context.Background())
				reg = prometheus.NewRegistry()
				if try == 10 {
					t.Fatal(err)
				}
			}
			t.Cleanup(func() { srv.StopTransfer(); srv.Stop(context.Background()) })
			bb := srv.Addr().String()
			port := testenv.FreePort(t)
			secAddr := fmt.Sprintf("127.0.0.1:%d", port)
			tc := TransferConfig{Journal: j, Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
				Glue:   map[string][]netip.Addr{"ns1.bl.example": {netip.MustParseAddr("127.0.0.1")}},
				Notify: []string{secAddr}, NotifyInterval: 100 * time.Millisecond}
			if sec.tsig {
				tc.Keys, tc.RequireTSIG, tc.NotifyKey = []TSIGKey{{Name: xfrKey, Secret: xfrSecret}}, true, xfrKey
			}
			err := srv.SetTransfer(tc, reg)
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			testenv.Daemon(t, tool, sec.config(dir, port, srv.Addr().(*net.UDPAddr).Port, sec.tsig)...)
			waitSerial(t, secAddr, "bl.example", v1.Serial)
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
			j.Record(v2)
			cur.Store(v2)
			srv.ZoneChanged()
			waitSerial(t, secAddr, "bl.example", v2.Serial)
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
