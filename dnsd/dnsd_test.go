package dnsd

import (
	"net"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/blowback-dnsbl/blowback/internal/metric"
	"github.com/blowback-dnsbl/blowback/zones"
)

const zone = "bl.example"

func testSnapshot() *zones.Snapshot {
	p := netip.MustParsePrefix
	return zones.Build(zones.Info{Zone: zone, Serial: 7, TXT: "Listed: $ see https://x/lookup?ip=$ ($$5)"}, []zones.Entry{
		{Prefix: p("192.0.2.1/32"), Codes: zones.CodeBounce | zones.CodeCallout},
		{Prefix: p("192.0.2.9/32"), Codes: zones.CodeAutoreply, Value: &zones.Value{A: []netip.Addr{netip.MustParseAddr("127.0.0.10")}, TXT: "own $", OwnTXT: true}},
		{Prefix: p("192.0.2.10/32"), Codes: zones.CodeBounce, Value: &zones.Value{OwnTXT: true}}, // no TXT
		{Prefix: p("198.51.100.0/24"), Codes: zones.CodeChallenge},
		{Prefix: p("198.51.100.7/32"), Exclude: true},
		{Prefix: p("2001:db8:1:2::/64"), Codes: zones.CodeBounce},
		{Prefix: p("192.0.2.77/32"), Codes: zones.CodeBounce, Value: &zones.Value{TXT: strings.Repeat("long text $ ", 40), OwnTXT: true}},
	})
}

// serving is a Current serving s.
func serving(s *zones.Snapshot) *zones.Current {
	cur := &zones.Current{}
	cur.Store(s)
	return cur
}

func startServer(t *testing.T, cfg Config, snap *zones.Snapshot) (*Server, string, *prometheus.Registry) {
	t.Helper()
	cur := serving(snap)
	reg := prometheus.NewRegistry()
	s := New(cfg, cur, nil, reg)
	if err := s.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.Stop(t.Context())
		if n := metricValue(t, reg, "blowback_dns_panics_total"); n != 0 {
			t.Errorf("%v panics recovered", n)
		}
	})
	return s, s.Addr().String(), reg
}

// v4name and v6name are the DNSBL names of an address.
func v4name(ip string) string { return QueryName(netip.MustParseAddr(ip), zone) }

func query(name string, qt uint16, edit ...func(*dns.Msg)) *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(name, qt)
	for _, e := range edit {
		e(m)
	}
	return m
}

func edns(size uint16, do bool) func(*dns.Msg) {
	return func(m *dns.Msg) { m.SetEdns0(size, do) }
}

func exchange(t *testing.T, addr, net string, m *dns.Msg) *dns.Msg {
	t.Helper()
	c := &dns.Client{Net: net, Timeout: 5 * time.Second}
	r, _, err := c.Exchange(m, addr)
	if err != nil {
		t.Fatalf("%s %v: %v", net, m.Question, err)
	}
	return r
}

func TestProtocol(t *testing.T) {
	_, addr, _ := startServer(t, Config{}, testSnapshot())
	type check func(t *testing.T, r *dns.Msg)
	rcode := func(want int) check {
		return func(t *testing.T, r *dns.Msg) {
			t.Helper()
			if r.Rcode != want {
				t.Errorf("rcode %s, want %s", dns.RcodeToString[r.Rcode], dns.RcodeToString[want])
			}
		}
	}
	answers := func(want ...string) check {
		return func(t *testing.T, r *dns.Msg) {
			t.Helper()
			var got []string
			for _, rr := range r.Answer {
				f := strings.SplitN(rr.String(), "\t", 5)
				got = append(got, f[3]+" "+f[4])
			}
			if !reflect.DeepEqual(got, want) && !(len(got) == 0 && len(want) == 0) {
				t.Errorf("answers %q, want %q", got, want)
			}
		}
	}
	negSOA := func(ttl uint32) check {
		return func(t *testing.T, r *dns.Msg) {
			t.Helper()
			if len(r.Ns) != 1 || r.Ns[0].Header().Rrtype != dns.TypeSOA || r.Ns[0].Header().Ttl != ttl || r.Ns[0].Header().Name != zone+"." {
				t.Errorf("authority %v, want the SOA with TTL %d", r.Ns, ttl)
			}
		}
	}
	flags := func(aa, tc bool) check {
		return func(t *testing.T, r *dns.Msg) {
			t.Helper()
			if r.Authoritative != aa || r.Truncated != tc {
				t.Errorf("AA %v TC %v, want %v %v", r.Authoritative, r.Truncated, aa, tc)
			}
		}
	}
	opt := func(present, do bool) check {
		return func(t *testing.T, r *dns.Msg) {
			t.Helper()
			o := r.IsEdns0()
			if (o != nil) != present || (o != nil && (o.Do() != do || o.Version() != 0 || o.UDPSize() != 1232)) {
				t.Errorf("OPT %v, want present=%v DO=%v", o, present, do)
			}
		}
	}
	question := func(name string) check {
		return func(t *testing.T, r *dns.Msg) {
			t.Helper()
			if len(r.Question) != 1 || r.Question[0].Name != name {
				t.Errorf("question %v, want %s with its case", r.Question, name)
			}
			for _, rr := range r.Answer {
				if rr.Header().Name != name {
					t.Errorf("answer owner %s, want %s", rr.Header().Name, name)
				}
			}
		}
	}
	partial := func(n int, name string) string { // the last n labels of name
		l := dns.SplitDomainName(name)
		return dns.Fqdn(strings.Join(l[len(l)-n:], "."))
	}
	cases := []struct {
		name  string
		net   string
		req   *dns.Msg
		check []check
	}{
		{"listed A", "udp", query(v4name("192.0.2.1"), dns.TypeA), []check{rcode(0), flags(true, false), answers("A 127.0.0.2", "A 127.0.0.4"), opt(false, false)}},
		{"listed TXT, $ and $$", "udp", query(v4name("192.0.2.1"), dns.TypeTXT), []check{rcode(0), answers(`TXT "Listed: 192.0.2.1 see https://x/lookup?ip=192.0.2.1 ($5)"`)}},
		{"per-entry value", "udp", query(v4name("192.0.2.9"), dns.TypeA), []check{answers("A 127.0.0.3", "A 127.0.0.10")}},
		{"per-entry TXT", "udp", query(v4name("192.0.2.9"), dns.TypeTXT), []check{answers(`TXT "own 192.0.2.9"`)}},
		{"entry without TXT: NODATA", "udp", query(v4name("192.0.2.10"), dns.TypeTXT), []check{rcode(0), answers(), negSOA(60)}},
		{"range", "udp", query(v4name("198.51.100.200"), dns.TypeA), []check{answers("A 127.0.0.5")}},
		{"exclusion", "udp", query(v4name("198.51.100.7"), dns.TypeA), []check{rcode(dns.RcodeNameError), negSOA(60)}},
		{"not listed: NXDOMAIN + SOA (RFC 2308 §3)", "udp", query(v4name("192.0.2.2"), dns.TypeA), []check{rcode(dns.RcodeNameError), flags(true, false), negSOA(60), answers()}},
		{"listed AAAA: NODATA", "udp", query(v4name("192.0.2.1"), dns.TypeAAAA), []check{rcode(0), answers(), negSOA(60)}},
		{"listed MX: NODATA", "udp", query(v4name("192.0.2.1"), dns.TypeMX), []check{rcode(0), answers(), negSOA(60)}},
		{"test point 127.0.0.2", "udp", query(v4name("127.0.0.2"), dns.TypeA), []check{answers("A 127.0.0.2", "A 127.0.0.3", "A 127.0.0.4", "A 127.0.0.5")}},
		{"test point 127.0.0.1", "udp", query(v4name("127.0.0.1"), dns.TypeA), []check{rcode(dns.RcodeNameError)}},
		{"IPv6 /64", "udp", query(QueryName(netip.MustParseAddr("2001:db8:1:2::99"), zone), dns.TypeA), []check{answers("A 127.0.0.2")}},
		{"IPv6 test point", "udp", query(QueryName(netip.MustParseAddr("::ffff:7f00:2"), zone), dns.TypeA), []check{answers("A 127.0.0.2", "A 127.0.0.3", "A 127.0.0.4", "A 127.0.0.5")}},
		{"IPv6 not listed", "udp", query(QueryName(netip.MustParseAddr("2001:db8:1:3::1"), zone), dns.TypeTXT), []check{rcode(dns.RcodeNameError)}},
		{"EDNS0 echoed", "udp", query(v4name("192.0.2.1"), dns.TypeA, edns(4096, false)), []check{rcode(0), opt(true, false)}},
		{"EDNS0 DO bit echoed", "udp", query(v4name("192.0.2.2"), dns.TypeA, edns(1400, true)), []check{rcode(dns.RcodeNameError), opt(true, true)}},
		{"BADVERS for EDNS version 1 (RFC 6891 §6.1.3)", "udp", query(v4name("192.0.2.1"), dns.TypeA, edns(1232, false), func(m *dns.Msg) { m.IsEdns0().SetVersion(1) }), []check{rcode(dns.RcodeBadVers), opt(true, false), answers()}},
		{"TC when it does not fit in 512", "udp", query(v4name("192.0.2.77"), dns.TypeTXT), []check{rcode(0), flags(true, true)}},
		{"fits with EDNS", "udp", query(v4name("192.0.2.77"), dns.TypeTXT, edns(1232, false)), []check{rcode(0), flags(true, false)}},
		{"TCP has no limit", "tcp", query(v4name("192.0.2.77"), dns.TypeTXT), []check{rcode(0), flags(true, false), func(t *testing.T, r *dns.Msg) {
			if len(r.Answer) != 1 || len(strings.Join(r.Answer[0].(*dns.TXT).Txt, "")) < 600 {
				t.Errorf("TXT over TCP: %v", r.Answer)
			}
		}}},
		{"TCP listed", "tcp", query(v4name("192.0.2.1"), dns.TypeA), []check{answers("A 127.0.0.2", "A 127.0.0.4")}},
		{"empty non-terminal IPv4 (RFC 8020)", "udp", query(partial(4, v4name("192.0.2.1")), dns.TypeA), []check{rcode(0), answers(), negSOA(60)}},
		{"empty non-terminal /8", "udp", query(partial(3, v4name("192.0.2.1")), dns.TypeA), []check{rcode(0), negSOA(60)}},
		{"nothing below", "udp", query(partial(4, v4name("203.0.113.1")), dns.TypeA), []check{rcode(dns.RcodeNameError), negSOA(60)}},
		{"empty non-terminal IPv6", "udp", query(partial(18, QueryName(netip.MustParseAddr("2001:db8:1:2::1"), zone)), dns.TypeA), []check{rcode(0)}},
		{"nothing below IPv6", "udp", query(partial(18, QueryName(netip.MustParseAddr("2001:db8:9::1"), zone)), dns.TypeA), []check{rcode(dns.RcodeNameError)}},
		{"junk below the zone", "udp", query("www."+zone+".", dns.TypeA), []check{rcode(dns.RcodeNameError), negSOA(60)}},
		{"signed labels are junk", "udp", query("+1.2.0.192."+zone+".", dns.TypeA), []check{rcode(dns.RcodeNameError)}},
		{"minimal ANY (RFC 8482)", "udp", query(v4name("192.0.2.1"), dns.TypeANY), []check{rcode(0), answers("A 127.0.0.2", "A 127.0.0.4")}},
		{"minimal ANY at the apex", "udp", query(zone+".", dns.TypeANY), []check{rcode(0), func(t *testing.T, r *dns.Msg) {
			if len(r.Answer) != 1 || r.Answer[0].Header().Rrtype != dns.TypeSOA {
				t.Errorf("ANY at apex: %v", r.Answer)
			}
		}}},
		{"apex SOA", "udp", query(zone+".", dns.TypeSOA), []check{rcode(0), func(t *testing.T, r *dns.Msg) {
			if len(r.Answer) != 1 || r.Answer[0].(*dns.SOA).Serial != 7 || r.Answer[0].(*dns.SOA).Minttl != 60 {
				t.Errorf("SOA %v", r.Answer)
			}
		}}},
		{"apex NS", "udp", query(zone+".", dns.TypeNS), []check{answers("NS ns1.bl.example.")}},
		{"apex A: NODATA", "udp", query(zone+".", dns.TypeA), []check{rcode(0), answers(), negSOA(60)}},
		{"case preserved", "udp", query("1.2.0.192.BL.Example.", dns.TypeA), []check{question("1.2.0.192.BL.Example."), answers("A 127.0.0.2", "A 127.0.0.4")}},
		{"case preserved, slow path", "udp", query("1.2.0.192.BL.Example.", dns.TypeANY), []check{question("1.2.0.192.BL.Example.")}},
		{"case preserved, negative", "udp", query("2.2.0.192.Bl.ExAmple.", dns.TypeA), []check{question("2.2.0.192.Bl.ExAmple."), rcode(dns.RcodeNameError), negSOA(60)}},
		{"out of zone: REFUSED", "udp", query("1.2.0.192.example.org.", dns.TypeA), []check{rcode(dns.RcodeRefused), flags(false, false)}},
		{"sibling zone: REFUSED", "udp", query("1.2.0.192.xbl.example.", dns.TypeA), []check{rcode(dns.RcodeRefused)}},
		{"class CH: REFUSED", "udp", query("version.bind.", dns.TypeTXT, func(m *dns.Msg) { m.Question[0].Qclass = dns.ClassCHAOS }), []check{rcode(dns.RcodeRefused)}},
		{"opcode STATUS: NOTIMP", "udp", query(v4name("192.0.2.1"), dns.TypeA, func(m *dns.Msg) { m.Opcode = dns.OpcodeStatus }), []check{rcode(dns.RcodeNotImplemented)}},
		{"opcode UPDATE: NOTIMP", "udp", query(zone+".", dns.TypeSOA, func(m *dns.Msg) { m.Opcode = dns.OpcodeUpdate }), []check{rcode(dns.RcodeNotImplemented)}},
		{"two questions: FORMERR", "udp", query(v4name("192.0.2.1"), dns.TypeA, func(m *dns.Msg) { m.Question = append(m.Question, m.Question[0]) }), []check{rcode(dns.RcodeFormatError)}},
		{"AXFR over UDP: TC, go to TCP", "udp", query(zone+".", dns.TypeAXFR), []check{flags(false, true)}},
		{"RD and CD copied", "udp", query(v4name("192.0.2.1"), dns.TypeA, func(m *dns.Msg) { m.CheckingDisabled = true }), []check{func(t *testing.T, r *dns.Msg) {
			if !r.RecursionDesired || !r.CheckingDisabled || r.RecursionAvailable {
				t.Errorf("RD %v CD %v RA %v", r.RecursionDesired, r.CheckingDisabled, r.RecursionAvailable)
			}
		}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := exchange(t, addr, c.net, c.req)
			if r.Id != c.req.Id || !r.Response {
				t.Fatalf("id %d response %v", r.Id, r.Response)
			}
			for _, ch := range c.check {
				ch(t, r)
			}
		})
	}
}

// The SOA of a zone file wins over the configuration; its negative TTL is
// min(SOA TTL, MINIMUM) (RFC 2308 §3), and $TTL sets the answers' TTL.
func TestApexFromZoneFile(t *testing.T) {
	snap, _, _, err := zones.ParseRbldnsd(strings.NewReader("$SOA 30 ns.x.test. hm.x.test. 99 1h 1h 1w 300\n$NS 1h a.x.test b.x.test\n$TTL 120\n192.0.2.1\n"), zone, zones.RbldnsdOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, addr, _ := startServer(t, Config{}, snap)
	r := exchange(t, addr, "udp", query(v4name("192.0.2.2"), dns.TypeA))
	if len(r.Ns) != 1 || r.Ns[0].Header().Ttl != 30 || r.Ns[0].(*dns.SOA).Serial != 99 || r.Ns[0].(*dns.SOA).Ns != "ns.x.test." {
		t.Errorf("negative SOA %v", r.Ns)
	}
	r = exchange(t, addr, "udp", query(v4name("192.0.2.1"), dns.TypeA))
	if len(r.Answer) != 1 || r.Answer[0].Header().Ttl != 120 {
		t.Errorf("answer %v, want TTL 120", r.Answer)
	}
	r = exchange(t, addr, "udp", query(zone+".", dns.TypeNS))
	if len(r.Answer) != 2 || r.Answer[0].Header().Ttl != 3600 {
		t.Errorf("NS %v", r.Answer)
	}
}

func TestACL(t *testing.T) {
	for _, c := range []struct {
		name string
		acl  ACL
		want int
	}{
		{"deny loopback", ACL{Deny: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}, dns.RcodeRefused},
		{"allow others only", ACL{Allow: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}, dns.RcodeRefused},
		{"allow loopback", ACL{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}, dns.RcodeSuccess},
		{"deny beats allow", ACL{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, Deny: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}, dns.RcodeRefused},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, addr, _ := startServer(t, Config{ACL: c.acl}, testSnapshot())
			for _, n := range []string{"udp", "tcp"} {
				if r := exchange(t, addr, n, query(v4name("192.0.2.1"), dns.TypeA)); r.Rcode != c.want {
					t.Errorf("%s: %s, want %s", n, dns.RcodeToString[r.Rcode], dns.RcodeToString[c.want])
				}
			}
		})
	}
}

func pack(t testing.TB, m *dns.Msg) []byte {
	t.Helper()
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRRL(t *testing.T) {
	cur := serving(testSnapshot())
	s := New(Config{RRL: RRLConfig{Rate: 5, Slip: 2, Exempt: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}}}, cur, nil, nil)
	h := newPacketHandler(s)
	now := time.Unix(1700000000, 0)
	run := func(src string, n int, at time.Time) (ok, slip, drop int) {
		for i := 0; i < n; i++ {
			r := h.handle(pack(t, query(v4name("192.0.2.1"), dns.TypeA)), netip.MustParseAddr(src), nil, at)
			switch {
			case r == nil:
				drop++
			case r[2]&0x02 != 0:
				slip++
				m := new(dns.Msg)
				if err := m.Unpack(r); err != nil || len(m.Answer) != 0 || len(m.Question) != 1 {
					t.Errorf("slipped response %v: %v", m, err)
				}
			default:
				ok++
			}
		}
		return
	}
	if ok, slip, drop := run("203.0.113.5", 20, now); ok != 5 || slip != 7 || drop != 8 {
		t.Errorf("over the limit: %d answered, %d slipped, %d dropped; want 5, 7, 8 (every 2nd slips)", ok, slip, drop)
	}
	if ok, _, _ := run("203.0.113.77", 3, now); ok != 0 {
		t.Errorf("same /24 shares the bucket: %d answered", ok)
	}
	if ok, _, _ := run("203.0.114.5", 5, now); ok != 5 {
		t.Errorf("another /24: %d answered, want 5", ok)
	}
	if ok, _, _ := run("203.0.113.5", 5, now.Add(time.Second)); ok != 5 {
		t.Errorf("a second later: %d answered, want 5", ok)
	}
	if ok, _, _ := run("192.0.2.200", 50, now); ok != 50 {
		t.Errorf("exempt: %d answered, want 50", ok)
	}
	if ok, _, _ := run("2001:db8:0:ff::1", 5, now); ok != 5 {
		t.Errorf("IPv6: %d answered", ok)
	}
	if ok, _, _ := run("2001:db8:0:aa::1", 2, now); ok != 0 {
		t.Errorf("IPv6 same /56: %d answered, want 0", ok)
	}
}

func TestSipHash(t *testing.T) {
	// Reference vector from the SipHash paper (appendix A): key 00..0f, message 00..0e.
	var key, msg []byte
	for i := 0; i < 16; i++ {
		key = append(key, byte(i))
	}
	for i := 0; i < 15; i++ {
		msg = append(msg, byte(i))
	}
	j := newCookieJar(key, time.Now)
	if got := siphash24(j.k0, j.k1, msg); got != 0xa129ca6149be45e5 {
		t.Errorf("siphash %x", got)
	}
}

func TestCookies(t *testing.T) {
	_, addr, reg := startServer(t, Config{Cookies: true, CookieSecret: []byte("0123456789abcdef")}, testSnapshot())
	withCookie := func(c string) func(*dns.Msg) {
		return func(m *dns.Msg) {
			m.SetEdns0(1232, false)
			o := m.IsEdns0()
			o.Option = append(o.Option, &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: c})
		}
	}
	cookieOf := func(r *dns.Msg) string {
		if o := r.IsEdns0(); o != nil {
			for _, x := range o.Option {
				if c, ok := x.(*dns.EDNS0_COOKIE); ok {
					return c.Cookie
				}
			}
		}
		return ""
	}
	client := "0102030405060708"
	r := exchange(t, addr, "udp", query(v4name("192.0.2.1"), dns.TypeA, withCookie(client)))
	got := cookieOf(r)
	if r.Rcode != 0 || len(got) != 48 || !strings.HasPrefix(got, client) || got[16:18] != "01" {
		t.Fatalf("rcode %d cookie %q: want the client cookie and a version-1 server cookie", r.Rcode, got)
	}
	if len(r.Answer) != 2 {
		t.Errorf("answer %v", r.Answer)
	}
	r = exchange(t, addr, "udp", query(v4name("192.0.2.1"), dns.TypeA, withCookie(got)))
	if r.Rcode != 0 || !strings.HasPrefix(cookieOf(r), client) {
		t.Errorf("second query: %d %q", r.Rcode, cookieOf(r))
	}
	forged := got[:len(got)-2] + "00"
	if forged == got {
		forged = got[:len(got)-2] + "11"
	}
	r = exchange(t, addr, "tcp", query(v4name("192.0.2.1"), dns.TypeA, withCookie(forged)))
	if r.Rcode != 0 || cookieOf(r) == forged {
		t.Errorf("forged cookie: rcode %d, cookie %q", r.Rcode, cookieOf(r))
	}
	r = exchange(t, addr, "udp", query(v4name("192.0.2.1"), dns.TypeA, withCookie("010203040506070809")))
	if r.Rcode != dns.RcodeFormatError {
		t.Errorf("9-byte cookie: %s, want FORMERR (RFC 7873 §5.2.2)", dns.RcodeToString[r.Rcode])
	}
	if v := metricValue(t, reg, "blowback_dns_cookies_total", "result", "valid"); v != 1 {
		t.Errorf("valid cookies counted %v, want 1", v)
	}
	// Without cookies configured the option is ignored (RFC 7873 §5.2.1).
	_, addr2, _ := startServer(t, Config{}, testSnapshot())
	r = exchange(t, addr2, "udp", query(v4name("192.0.2.1"), dns.TypeA, withCookie(client)))
	if r.Rcode != 0 || cookieOf(r) != "" {
		t.Errorf("cookies off: rcode %d cookie %q", r.Rcode, cookieOf(r))
	}
}

// metricValue is the value of a counter in reg whose labels include the
// given name/value pairs; 0 when absent (a vector value not yet counted).
func metricValue(t testing.TB, reg *prometheus.Registry, name string, labelPairs ...string) float64 {
	t.Helper()
	v, _ := metric.Value(reg, name, labelPairs...)
	return v
}

func TestTCPLimits(t *testing.T) {
	_, addr, reg := startServer(t, Config{MaxTCPConns: 1, TCPIdle: 300 * time.Millisecond}, testSnapshot())
	c1, err := dns.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c1.Close()
	if err := c1.WriteMsg(query(v4name("192.0.2.1"), dns.TypeA)); err != nil {
		t.Fatal(err)
	}
	if r, err := c1.ReadMsg(); err != nil || len(r.Answer) != 2 {
		t.Fatalf("first connection: %v %v", r, err)
	}
	// A second connection over the limit is closed at accept.
	c2, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c2.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := c2.Read(make([]byte, 1)); err == nil {
		t.Error("second connection not closed")
	}
	c2.Close()
	if v := metricValue(t, reg, "blowback_dns_tcp_rejected_total", "reason", rejectFull); v != 1 {
		t.Errorf("rejected connections counted %v, want 1", v)
	}
	// The idle connection is closed by the server.
	c1.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := c1.ReadMsg(); err == nil {
		t.Error("idle connection not closed")
	}
	// Then a new one is accepted.
	r := exchange(t, addr, "tcp", query(v4name("192.0.2.1"), dns.TypeA))
	if len(r.Answer) != 2 {
		t.Errorf("after the idle close: %v", r)
	}
}

// fastEqualsSlow checks one packet: when the fast path takes it, the slow
// path must give the same message.
func fastEqualsSlow(t testing.TB, s *Server, pkt []byte) (took bool) {
	t.Helper()
	var fz fastZone
	s.fastZoneFor(&fz, s.cur.Load())
	var scratch []byte
	fast, _, ok := s.fastAnswer(pkt, make([]byte, 0, bufSize), &fz, &scratch, time.Now())
	if !ok {
		return false
	}
	slow, _, _ := s.slowUDP(pkt, netip.MustParseAddr("192.0.2.200"), make([]byte, 0, bufSize), allow)
	var fm, sm dns.Msg
	if err := fm.Unpack(fast); err != nil {
		t.Fatalf("fast answer does not parse: %v\n%x", err, fast)
	}
	if err := sm.Unpack(slow); err != nil {
		t.Fatalf("slow answer does not parse: %v", err)
	}
	fm.Compress, sm.Compress = false, false
	if !reflect.DeepEqual(fm, sm) {
		t.Fatalf("fast and slow differ for %x\nfast:\n%v\nslow:\n%v", pkt, &fm, &sm)
	}
	return true
}

func TestFastEqualsSlow(t *testing.T) {
	cur := serving(testSnapshot())
	s := New(Config{}, cur, nil, nil)
	v6 := QueryName(netip.MustParseAddr("2001:db8:1:2::99"), zone)
	for _, c := range []struct {
		m    *dns.Msg
		fast bool
	}{
		{query(v4name("192.0.2.1"), dns.TypeA), true},
		{query(v4name("192.0.2.1"), dns.TypeTXT), true},
		{query(v4name("192.0.2.1"), dns.TypeAAAA), true},
		{query(v4name("192.0.2.9"), dns.TypeA), true},
		{query(v4name("192.0.2.9"), dns.TypeTXT), true},
		{query(v4name("192.0.2.10"), dns.TypeTXT), true},
		{query(v4name("192.0.2.2"), dns.TypeA), true},
		{query(v4name("192.0.2.2"), dns.TypeTXT, edns(4096, true)), true},
		{query(v4name("198.51.100.3"), dns.TypeA, edns(100, false)), true},
		{query(v4name("198.51.100.7"), dns.TypeA), true},
		{query(v4name("127.0.0.2"), dns.TypeTXT), true},
		{query(v4name("127.0.0.1"), dns.TypeA), true},
		{query(v6, dns.TypeA), true},
		{query(v6, dns.TypeTXT), true},
		{query(strings.ToUpper(v6), dns.TypeTXT), true},
		{query(QueryName(netip.MustParseAddr("::ffff:192.0.2.1"), zone), dns.TypeTXT), true},
		{query("1.2.0.192.BL.EXAMPLE.", dns.TypeA), true},
		{query("2.2.0.192.Bl.Example.", dns.TypeA), true},
		{query(v4name("192.0.2.1"), dns.TypeA, func(m *dns.Msg) { m.RecursionDesired = false; m.CheckingDisabled = true }), true},
		{query(v4name("192.0.2.77"), dns.TypeTXT, edns(4096, false)), true},
		{query(v4name("192.0.2.77"), dns.TypeTXT), false}, // does not fit: the slow path truncates
		{query(v4name("192.0.2.1"), dns.TypeANY), false},
		{query(zone+".", dns.TypeSOA), false},
		{query("2.0.192."+zone+".", dns.TypeA), false},
		{query("01.2.0.192."+zone+".", dns.TypeA), false},
		{query(v4name("192.0.2.1"), dns.TypeA, edns(1232, false), func(m *dns.Msg) { m.IsEdns0().SetVersion(1) }), false},
	} {
		if got := fastEqualsSlow(t, s, pack(t, c.m)); got != c.fast {
			t.Errorf("%v: fast path took it: %v, want %v", c.m.Question, got, c.fast)
		}
	}
}

// FuzzPacket feeds arbitrary datagrams to the UDP handler: it never panics,
// every answer parses and matches the query's id, and the fast path agrees
// with the slow one.
func FuzzPacket(f *testing.F) {
	for _, m := range []*dns.Msg{
		query(v4name("192.0.2.1"), dns.TypeA), query(v4name("192.0.2.9"), dns.TypeTXT, edns(1232, true)),
		query(QueryName(netip.MustParseAddr("2001:db8:1:2::1"), zone), dns.TypeTXT), query(zone+".", dns.TypeANY),
		query("2.0.192."+zone+".", dns.TypeA), query(v4name("192.0.2.77"), dns.TypeTXT),
		query("1.2.0.192.fuzzkey12."+zone+".", dns.TypeA, edns(1232, false)),
	} {
		b, _ := m.Pack()
		f.Add(b)
	}
	cur := serving(testSnapshot())
	reg := prometheus.NewRegistry()
	s := New(Config{Cookies: true, CookieSecret: []byte("0123456789abcdef")}, cur, nil, reg)
	h := newPacketHandler(s)
	out := make([]byte, 0, bufSize)
	// A second server with keyed access required and the policy on.
	keys, _ := NewKeys("", time.Hour)
	keys.Put(KeyInfo{Key: "fuzzkey12", Budget: 1000})
	kreg := prometheus.NewRegistry()
	ks := New(Config{Keys: keys, RequireKey: true, Policy: Policy{Budget: 1 << 30, Answer: AnswerCode,
		Refuse: []netip.Prefix{netip.MustParsePrefix("192.0.2.201/32")}}}, cur, nil, kreg)
	kh := newPacketHandler(ks)
	f.Fuzz(func(t *testing.T, pkt []byte) {
		for _, src := range []string{"192.0.2.200", "192.0.2.201"} {
			if kh.handle(pkt, netip.MustParseAddr(src), out, time.Unix(1700000000, 0)) != nil {
				fastEqualsSlow(t, ks, pkt)
			}
		}
		if n := metricValue(t, kreg, "blowback_dns_panics_total"); n != 0 {
			t.Fatalf("panic recovered for %x (keys, policy)", pkt)
		}
		resp := h.handle(pkt, netip.MustParseAddr("192.0.2.200"), out, time.Unix(1700000000, 0))
		if n := metricValue(t, reg, "blowback_dns_panics_total"); n != 0 {
			t.Fatalf("panic recovered for %x", pkt)
		}
		if resp == nil {
			return
		}
		var m dns.Msg
		if err := m.Unpack(resp); err != nil {
			t.Fatalf("junk answer %x to %x: %v", resp, pkt, err)
		}
		if m.Id != uint16(pkt[0])<<8|uint16(pkt[1]) || !m.Response {
			t.Fatalf("answer id %d response %v for %x", m.Id, m.Response, pkt)
		}
		if len(resp) > 512 && !hasOPT(pkt) {
			t.Fatalf("%d-byte UDP answer without EDNS", len(resp))
		}
		fastEqualsSlow(t, s, pkt)
	})
}

func hasOPT(pkt []byte) bool {
	var m dns.Msg
	return m.Unpack(pkt) == nil && m.IsEdns0() != nil
}
