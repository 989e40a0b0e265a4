package dnsd

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/blowback-dnsbl/blowback/internal/testenv"
	"github.com/blowback-dnsbl/blowback/zones"
)

// bigSnapshot lists n addresses 10.0.0.0 + 3*i (codes by serial parity, so
// the answer tells which snapshot gave it).
func bigSnapshot(n int, serial uint32) *zones.Snapshot {
	b := zones.NewBuilder(zones.Info{Zone: zone, Serial: serial, TXT: "s $"})
	b.Grow(n)
	c := zones.CodeBounce
	if serial%2 == 1 {
		c = zones.CodeCallout
	}
	for i := 0; i < n; i++ {
		b.Add4(0x0a000000+uint32(3*i), c, 0)
	}
	return b.Snapshot()
}

// Snapshots of a million entries are built aside and swapped while clients
// query: every query is answered, and by the old or the new snapshot.
func TestReloadUnderLoad(t *testing.T) {
	n := 1_000_000
	if testing.Short() {
		n = 100_000
	}
	s, addr, _ := startServer(t, Config{}, bigSnapshot(n, 1))
	var stop atomic.Bool
	var answered, lost, wrong atomic.Int64
	var wg sync.WaitGroup
	for c := 0; c < 4; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn, err := net.Dial("udp", addr)
			if err != nil {
				t.Error(err)
				return
			}
			defer conn.Close()
			dc := &dns.Conn{Conn: conn}
			for i := c; !stop.Load(); i += 4 {
				k := uint32(0x0a000000 + 3*(i*7919%n))
				if i%2 == 1 {
					k++ // not listed
				}
				q := query(QueryName(netip.AddrFrom4([4]byte{byte(k >> 24), byte(k >> 16), byte(k >> 8), byte(k)}), zone), dns.TypeA)
				conn.SetDeadline(time.Now().Add(3 * time.Second))
				if err := dc.WriteMsg(q); err != nil {
					t.Error(err)
					return
				}
				r, err := dc.ReadMsg()
				if err != nil {
					lost.Add(1)
					continue
				}
				answered.Add(1)
				switch {
				case r.Id != q.Id:
					wrong.Add(1)
				case i%2 == 1 && r.Rcode != dns.RcodeNameError:
					wrong.Add(1)
				case i%2 == 0 && (r.Rcode != 0 || len(r.Answer) != 1):
					wrong.Add(1)
				}
			}
		}()
	}
	for serial := uint32(2); serial <= 5; serial++ {
		next := bigSnapshot(n, serial) // built aside while serving
		before := answered.Load()
		s.cur.Store(next)
		// Wait until clients have been answered after the swap, not a
		// fixed time: on a loaded machine 100ms may see no query at all.
		testenv.Eventually(t, fmt.Sprintf("queries answered after the swap to serial %d", serial), func() bool {
			return answered.Load() >= before+200
		})
	}
	stop.Store(true)
	wg.Wait()
	t.Logf("%d answered during 4 swaps of %d entries", answered.Load(), n)
	if lost.Load() != 0 || wrong.Load() != 0 || answered.Load() == 0 {
		t.Errorf("%d lost, %d wrong of %d", lost.Load(), wrong.Load(), answered.Load())
	}
	if r := exchange(t, addr, "udp", query(zone+".", dns.TypeSOA)); r.Answer[0].(*dns.SOA).Serial != 5 {
		t.Errorf("serial %d after the swaps", r.Answer[0].(*dns.SOA).Serial)
	}
}

func TestZoneFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "z.rbldnsd")
	write := func(body string) {
		t.Helper()
		if err := os.WriteFile(path+".tmp", []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(path+".tmp", path); err != nil {
			t.Fatal(err)
		}
	}
	write("$SOA 0 a. b. 10 1 1 1 1\n192.0.2.1\n")
	cur := &zones.Current{}
	reg := prometheus.NewRegistry()
	z := NewZoneFile(path, zone, zones.RbldnsdOptions{}, cur, nil, reg)
	if err := z.Load(); err != nil {
		t.Fatal(err)
	}
	if cur.Load().Serial != 10 || cur.Load().Lookup(netip.MustParseAddr("192.0.2.1")) == 0 {
		t.Fatal("first load")
	}
	write("$SOA 0 a. b. 11 1 1 1 1\n192.0.2.1\n999.1.1.1\n")
	if err := z.Load(); err == nil {
		t.Error("bad file loaded")
	}
	if cur.Load().Serial != 10 {
		t.Error("bad file replaced the zone")
	}
	if v := metricValue(t, reg, "blowback_dns_zone_reloads_total", "result", "error"); v != 1 {
		t.Errorf("reload errors %v", v)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := z.Load(); err == nil || cur.Load().Serial != 10 {
		t.Error("missing file")
	}
	write("$SOA 0 a. b. 12 1 1 1 1\n192.0.2.2\n")
	if err := z.Load(); err != nil || cur.Load().Serial != 12 {
		t.Errorf("fixed file: %v", err)
	}
}

// The same file served by rbldnsd and by us gives the same answers (A
// records and TXT) for listed, excluded and unlisted addresses.
func TestAgainstRbldnsd(t *testing.T) {
	const file = `$SOA 300 ns1.example.net. hostmaster.example.net. 5 1h 15m 1w 60
$NS 300 ns1.example.net.
$TTL 300
$1 http://example.net/lookup?ip=$
$DATASET ip4set:spam @
:127.0.0.2:Listed $, see $1
192.0.2.1
192.0.2.2 :127.0.0.3:
192.0.2.3 Own text for $
198.51.100
!198.51.100.7
203.0.113.0/28 :4:Range $
10.1-2 :127.0.0.10:Ten $$
$DATASET ip4set:other @
:127.0.0.5:Other $
192.0.2.1
$DATASET ip6tset @
:127.0.0.2:Six $
2001:db8:1:2
!2001:db8:1:2::5
`
	path := filepath.Join(t.TempDir(), "z")
	if err := os.WriteFile(path, []byte(file), 0o644); err != nil {
		t.Fatal(err)
	}
	rb, _ := testenv.ServeRbldnsd(t, zone, path)
	snap, _, _, err := zones.ParseRbldnsd(strings.NewReader(file), zone, zones.RbldnsdOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, ours, _ := startServer(t, Config{}, snap)
	for _, ip := range []string{"192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4", "198.51.100.9", "198.51.100.7",
		"203.0.113.15", "203.0.113.16", "10.1.255.3", "10.2.0.1", "10.3.0.1", "2001:db8:1:2::1", "2001:db8:1:2::5", "2001:db8:1:3::1"} {
		for _, qt := range []uint16{dns.TypeA, dns.TypeTXT} {
			q := query(QueryName(netip.MustParseAddr(ip), zone), qt)
			want, got := testenv.AnswerOf(exchange(t, rb, "udp", q)), testenv.AnswerOf(exchange(t, ours, "udp", q))
			// rbldnsd returns a TXT per matching line; we return one of them.
			txtOK := len(got.TXT) == min(len(want.TXT), 1) && (len(got.TXT) == 0 || slices.Contains(want.TXT, got.TXT[0]))
			if want.Rcode != got.Rcode || !slices.Equal(want.A, got.A) || !txtOK {
				t.Errorf("%s %s: rbldnsd %+v, blowback %+v", ip, dns.TypeToString[qt], want, got)
			}
		}
	}
}
