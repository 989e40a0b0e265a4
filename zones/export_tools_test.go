package zones_test

// Integration tests with the real consumers of the exports: rbldnsd loads
// the rbldnsd export and must answer as blowback's own server does;
// named-checkzone must accept the BIND export.

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/blowback-dnsbl/blowback/dnsd"
	"github.com/blowback-dnsbl/blowback/internal/testenv"
	"github.com/blowback-dnsbl/blowback/zones"
)

const testTXT = "Backscatter from $ see https://bl.example/lookup?ip=$#x;y"

// sampleZone is a zone with everything an export must get right: many
// singles with one or several codes, ranges not on octet boundaries, an
// exclusion, singles inside ranges, IPv6 /64s and a wider IPv6 range.
func sampleZone(seed uint64) *zones.Snapshot {
	r := rand.New(rand.NewPCG(seed, 9))
	var es []zones.Entry
	code := func() zones.Codes { return zones.Codes(r.IntN(int(zones.CodeAll)) + 1) }
	for range 300 {
		a := netip.AddrFrom4([4]byte{byte(r.IntN(223) + 1), byte(r.IntN(256)), byte(r.IntN(256)), byte(r.IntN(256))})
		es = append(es, zones.Entry{Prefix: netip.PrefixFrom(a, 32), Codes: code()})
	}
	for _, p := range []string{"198.51.100.0/26", "198.51.100.64/27", "203.0.112.0/22", "10.20.0.0/16"} {
		es = append(es, zones.Entry{Prefix: netip.MustParsePrefix(p), Codes: code()})
	}
	es = append(es,
		zones.Entry{Prefix: netip.MustParsePrefix("198.51.100.5/32"), Codes: zones.CodeCallout},
		zones.Entry{Prefix: netip.MustParsePrefix("203.0.113.9/32"), Exclude: true},
		zones.Entry{Prefix: netip.MustParsePrefix("10.20.30.0/24"), Exclude: true},
		zones.Entry{Prefix: netip.MustParsePrefix("2001:db8:77::/48"), Codes: zones.CodeAutoreply})
	for range 100 {
		var b [16]byte
		b[0], b[1], b[2], b[3] = 0x20, 0x01, 0x0d, 0xb8
		for i := 4; i < 8; i++ {
			b[i] = byte(r.IntN(256))
		}
		es = append(es, zones.Entry{Prefix: netip.PrefixFrom(netip.AddrFrom16(b), 64), Codes: code()})
	}
	return zones.Build(zones.Info{Zone: "bl.example", Serial: 2026010101, TXT: testTXT, TTL: 300 * time.Second}, es)
}

// sampleAddrs picks listed, unlisted and IPv6 addresses of s.
func sampleAddrs(s *zones.Snapshot, seed uint64) []netip.Addr {
	r := rand.New(rand.NewPCG(seed, 10))
	out := []netip.Addr{zones.TestListed, zones.TestNotListed,
		netip.MustParseAddr("::ffff:127.0.0.2"), netip.MustParseAddr("::ffff:127.0.0.1"),
		netip.MustParseAddr("198.51.100.5"), netip.MustParseAddr("198.51.100.6"), netip.MustParseAddr("198.51.100.96"),
		netip.MustParseAddr("203.0.113.9"), netip.MustParseAddr("203.0.113.10"), netip.MustParseAddr("10.20.30.40"),
		netip.MustParseAddr("10.20.31.40"), netip.MustParseAddr("2001:db8:77:5::1"), netip.MustParseAddr("2001:db8:78::1")}
	s.Entries(func(e zones.Entry) bool {
		if r.IntN(3) == 0 {
			a := e.Prefix.Addr()
			out = append(out, a, a.Next())
			if a.Is6() {
				b := a.As16()
				b[15], b[12] = byte(r.IntN(256)), byte(r.IntN(256))
				out = append(out, netip.AddrFrom16(b))
			}
		}
		return true
	})
	for range 50 {
		out = append(out, netip.AddrFrom4([4]byte{byte(r.IntN(223) + 1), byte(r.IntN(256)), byte(r.IntN(256)), byte(r.IntN(256))}))
	}
	return out
}

// nibbleName is the DNSBL query name, keeping IPv4-mapped IPv6 addresses
// in their IPv6 form (dnsd.QueryName unmaps them).
func nibbleName(a netip.Addr, zone string) string {
	if !a.Is4In6() {
		return dnsd.QueryName(a, zone)
	}
	r, _ := dns.ReverseAddr(a.String())
	if !strings.HasSuffix(r, ".ip6.arpa.") {
		// ReverseAddr unmaps too: build the nibbles by hand.
		b := a.As16()
		var sb strings.Builder
		for i := 15; i >= 0; i-- {
			fmt.Fprintf(&sb, "%x.%x.", b[i]&0xf, b[i]>>4)
		}
		return sb.String() + zone + "."
	}
	return strings.TrimSuffix(r, "ip6.arpa.") + zone + "."
}

// listedView reduces an answer to what a DNSBL client sees: listed or not, the
// codes and the TXT (rbldnsd answers NOERROR/NODATA where blowback says
// NXDOMAIN for unlisted names in some cases; neither lists the address).
func listedView(x testenv.Answer) string {
	if len(x.A) == 0 {
		return "not listed"
	}
	return fmt.Sprintf("A=%v TXT=%q", x.A, x.TXT)
}

// startBlowback serves s with blowback's own DNS server.
func startBlowback(t *testing.T, s *zones.Snapshot) string {
	t.Helper()
	cur := &zones.Current{}
	cur.Store(s)
	srv := dnsd.New(dnsd.Config{}, cur, nil, nil)
	if err := srv.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Stop(context.Background()) })
	return srv.Addr().String()
}

func TestRbldnsdAnswersAsBlowback(t *testing.T) {
	s := sampleZone(1)
	file := filepath.Join(t.TempDir(), "bl.example.rbldnsd")
	if err := zones.WriteFileAtomic(file, func(w io.Writer) error { return zones.WriteRbldnsd(w, s, zones.SOA{}) }); err != nil {
		t.Fatal(err)
	}
	rbl, out := testenv.ServeRbldnsd(t, "bl.example", file)
	if strings.Contains(out.String(), "invalid") || strings.Contains(out.String(), "error") {
		t.Errorf("rbldnsd complains about the export:\n%s", out.String())
	}
	bb := startBlowback(t, s)
	n, listed := 0, 0
	for _, a := range sampleAddrs(s, 1) {
		name := nibbleName(a, "bl.example")
		want, got := testenv.AskDNSBL(t, bb, name), testenv.AskDNSBL(t, rbl, name)
		n++
		if len(want.A) > 0 {
			listed++
		}
		if listedView(want) != listedView(got) {
			t.Errorf("%s: blowback %s, rbldnsd %s", a, want, got)
		}
	}
	if listed < 50 || n-listed < 50 {
		t.Errorf("sample too thin: %d addresses, %d listed", n, listed)
	}
	t.Logf("%d addresses compared, %d listed", n, listed)
}

func TestNamedCheckzoneAcceptsBIND(t *testing.T) {
	checkzone := testenv.Tool(t, "named-checkzone")
	s := sampleZone(2)
	dir := t.TempDir()
	for _, c := range []struct {
		name string
		soa  zones.SOA
	}{
		{"out-of-zone NS", zones.SOA{NS: []string{"ns1.example.net", "ns2.example.org"}}},
		{"in-zone NS with glue", zones.SOA{NS: []string{"ns1.bl.example"}, Glue: map[string][]netip.Addr{"ns1.bl.example": {netip.MustParseAddr("192.0.2.53")}}}},
	} {
		file := filepath.Join(dir, "bl.example.zone")
		if err := zones.WriteFileAtomic(file, func(w io.Writer) error { return zones.WriteBIND(w, s, c.soa) }); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(checkzone, "-i", "full", "-k", "fail", "-n", "fail", "bl.example", file).CombinedOutput()
		if err != nil {
			t.Errorf("%s: named-checkzone: %v\n%s", c.name, err, out)
			continue
		}
		if !strings.Contains(string(out), fmt.Sprintf("loaded serial %d", s.Serial)) {
			t.Errorf("%s: named-checkzone: %s", c.name, out)
		}
	}
}
