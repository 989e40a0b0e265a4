package zones

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// randomSnapshot builds a zone with singles, overlapping ranges and
// exclusions in a few small neighbourhoods, so that samples hit every case.
func randomSnapshot(r *rand.Rand, n int) *Snapshot {
	var es []Entry
	code := func() Codes { return Codes(r.IntN(int(CodeAll)) + 1) }
	base4 := []string{"10.0.0.0", "192.0.2.0", "127.0.0.0", "198.51.100.0"}
	base6 := []string{"2001:db8::", "2001:db8:0:ff00::", "::"}
	for range n {
		switch r.IntN(10) {
		case 0, 1, 2, 3, 4:
			b := netip.MustParseAddr(base4[r.IntN(len(base4))]).As4()
			b[2], b[3] = byte(r.IntN(3)), byte(r.IntN(256))
			es = append(es, Entry{Prefix: netip.PrefixFrom(netip.AddrFrom4(b), 32), Codes: code()})
		case 5:
			b := netip.MustParseAddr(base4[r.IntN(len(base4))]).As4()
			b[2], b[3] = byte(r.IntN(3)), byte(r.IntN(256))
			p, _ := netip.AddrFrom4(b).Prefix(20 + r.IntN(13))
			es = append(es, Entry{Prefix: p, Codes: code(), Exclude: r.IntN(4) == 0})
		case 6, 7, 8:
			b := netip.MustParseAddr(base6[r.IntN(len(base6))]).As16()
			b[7] = byte(r.IntN(8))
			es = append(es, Entry{Prefix: netip.PrefixFrom(netip.AddrFrom16(b), 64), Codes: code()})
		case 9:
			b := netip.MustParseAddr(base6[r.IntN(len(base6))]).As16()
			b[7] = byte(r.IntN(8))
			p, _ := netip.AddrFrom16(b).Prefix(56 + r.IntN(9))
			es = append(es, Entry{Prefix: p, Codes: code(), Exclude: r.IntN(4) == 0})
		}
	}
	return Build(Info{Zone: "bl.example", Serial: 7, TXT: "listed $ see https://bl.example/l?ip=$"}, es)
}

// samples returns addresses around everything in the snapshot, plus the
// test points.
func samples(r *rand.Rand, s *Snapshot) []netip.Addr {
	out := []netip.Addr{TestListed, TestNotListed, netip.MustParseAddr("::ffff:127.0.0.2"), netip.MustParseAddr("::ffff:127.0.0.1"),
		netip.MustParseAddr("::1"), netip.MustParseAddr("8.8.8.8"), netip.MustParseAddr("2001:db8:ffff::1")}
	s.Entries(func(e Entry) bool {
		a := e.Prefix.Masked().Addr()
		out = append(out, a, a.Prev(), a.Next())
		last := a
		if a.Is4() {
			b := a.As4()
			k := be32(b) | uint32(uint64(1)<<(32-e.Prefix.Bits())-1)
			last = addr4(k)
		}
		out = append(out, last, last.Next())
		if !a.Is4() {
			b := a.As16()
			b[15] = byte(r.IntN(256))
			b[9] = byte(r.IntN(256))
			out = append(out, netip.AddrFrom16(b))
		}
		return true
	})
	valid := out[:0]
	for _, a := range out {
		if a.IsValid() {
			valid = append(valid, a)
		}
	}
	return valid
}

func TestSpansAnswerAsLookup(t *testing.T) {
	for seed := range uint64(30) {
		r := rand.New(rand.NewPCG(seed, 1))
		s := randomSnapshot(r, 40+r.IntN(200))
		var spans []Span
		s.Spans(func(sp Span) bool {
			if n := len(spans); n > 0 && spans[n-1].Compare(sp) >= 0 {
				t.Fatalf("seed %d: spans out of order: %v then %v", seed, spans[n-1].Prefix, sp.Prefix)
			}
			spans = append(spans, sp)
			return true
		})
		find := func(a netip.Addr) Codes {
			var c Codes
			n := 0
			for _, sp := range spans {
				if sp.Prefix.Contains(a) || (sp.Prefix.Addr().Is6() && sp.Prefix.Bits() <= 64 && sp.Prefix.Contains(a)) {
					c = sp.Codes
					n++
				}
			}
			if n > 1 {
				t.Fatalf("seed %d: %s in %d spans", seed, a, n)
			}
			return c
		}
		for _, a := range samples(r, s) {
			want := s.Lookup(a)
			if a.Is4In6() {
				// Spans hold the IPv4-mapped test point only (see testPoint6).
				switch a.Unmap() {
				case TestListed:
				case TestNotListed:
				default:
					continue
				}
				if find(a) != want {
					t.Errorf("seed %d: %s: span codes %v, Lookup %v", seed, a, find(a).Names(), want.Names())
				}
				continue
			}
			if a.Is6() && a.As16()[0] == 0 && a.As16()[7] == 0 && a.As16()[1] == 0 && a.As16()[3] == 0 && a.As16()[5] == 0 {
				continue // ::/64 is never exported as a unit
			}
			if got := find(a); got != want {
				t.Errorf("seed %d: %s: span codes %v, Lookup %v", seed, a, got.Names(), want.Names())
			}
		}
	}
}

func (sp Span) Compare(o Span) int { return Name(sp).Compare(Name(o)) }

// zoneResolver answers address queries from a parsed master file the way an
// authoritative server does, wildcards included (RFC 4592 §3.3.1).
type zoneResolver struct {
	zone  string
	names map[string]bool // every name holding data
	ents  map[string]bool // every name that exists (data or empty non-terminal)
	a     map[string][]string
	txt   map[string][]string
}

func parseZone(t *testing.T, zone string, text []byte) *zoneResolver {
	t.Helper()
	z := &zoneResolver{zone: dns.Fqdn(zone), names: map[string]bool{}, ents: map[string]bool{}, a: map[string][]string{}, txt: map[string][]string{}}
	zp := dns.NewZoneParser(bytes.NewReader(text), z.zone, "")
	for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
		n := strings.ToLower(rr.Header().Name)
		z.names[n] = true
		for x := n; dns.IsSubDomain(z.zone, x); {
			z.ents[x] = true
			i, end := dns.NextLabel(x, 0)
			if end {
				break
			}
			x = x[i:]
		}
		switch v := rr.(type) {
		case *dns.A:
			z.a[n] = append(z.a[n], v.A.String())
		case *dns.TXT:
			z.txt[n] = append(z.txt[n], strings.Join(v.Txt, ""))
		}
	}
	if err := zp.Err(); err != nil {
		t.Fatalf("zone does not parse: %v", err)
	}
	return z
}

// resolve returns the owner whose records answer qname ("" for NXDOMAIN).
func (z *zoneResolver) resolve(qname string) string {
	if z.ents[qname] {
		return qname
	}
	// Closest encloser, then its wildcard.
	for x := qname; ; {
		i, end := dns.NextLabel(x, 0)
		if end {
			return ""
		}
		x = x[i:]
		if z.ents[x] {
			if w := "*." + x; z.names[w] {
				return w
			}
			return ""
		}
	}
}

func codesOf(t *testing.T, as []string) Codes {
	var c Codes
	for _, a := range as {
		x := CodeFromAddr(netip.MustParseAddr(a))
		if x == 0 {
			t.Fatalf("A %s is not a return code", a)
		}
		c |= x
	}
	return c
}

func qname(a netip.Addr, zone string) string {
	r, _ := dns.ReverseAddr(a.String())
	r = strings.TrimSuffix(strings.TrimSuffix(r, "in-addr.arpa."), "ip6.arpa.")
	return r + dns.Fqdn(zone)
}

func TestBINDAnswersAsLookup(t *testing.T) {
	for seed := range uint64(30) {
		r := rand.New(rand.NewPCG(seed, 2))
		s := randomSnapshot(r, 40+r.IntN(200))
		var buf bytes.Buffer
		if err := WriteBIND(&buf, s, SOA{NS: []string{"ns1.example.net"}}); err != nil {
			t.Fatal(err)
		}
		z := parseZone(t, s.Zone, buf.Bytes())
		for _, a := range samples(r, s) {
			want := s.Lookup(a)
			if a.Is4In6() && a.Unmap() != TestListed && a.Unmap() != TestNotListed {
				continue // not exported (docs/mirrors.md)
			}
			if a.Is6() && !a.Is4In6() && a.As16()[0] == 0 && a.As16()[1] == 0 && a.As16()[3] == 0 && a.As16()[7] == 0 {
				continue
			}
			owner := z.resolve(strings.ToLower(qname(a, s.Zone)))
			got := Codes(0)
			if owner != "" {
				got = codesOf(t, z.a[owner])
			}
			if got != want {
				t.Errorf("seed %d: %s: zone answers %v (%q), Lookup %v", seed, a, got.Names(), owner, want.Names())
				continue
			}
			if want == 0 {
				continue
			}
			shown := a.Unmap().String()
			if strings.HasPrefix(owner, "*.") {
				shown = "" // a wildcard shows its prefix
			}
			if len(z.txt[owner]) != 1 {
				t.Errorf("seed %d: %s: %d TXT", seed, a, len(z.txt[owner]))
			} else if shown != "" && z.txt[owner][0] != ExpandTXT(s.TXT, shown) {
				t.Errorf("seed %d: %s: TXT %q", seed, a, z.txt[owner][0])
			}
		}
	}
}

func TestNames(t *testing.T) {
	pv := netip.MustParsePrefix
	for _, c := range []struct {
		p     string
		owner string
		txt   string
	}{
		{"192.0.2.1/32", "1.2.0.192", "x 192.0.2.1"},
		{"192.0.2.0/24", "*.2.0.192", "x 192.0.2.0/24"},
		{"10.0.0.0/8", "*.10", "x 10.0.0.0/8"},
		{"2001:db8:1:2::/64", "*.2.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2", "x 2001:db8:1:2::/64"},
		{"2001:db8::/32", "*.8.b.d.0.1.0.0.2", "x 2001:db8::/32"},
		{"::ffff:7f00:2/128", "2.0.0.0.0.0.f.7.f.f.f.f.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0", "x 127.0.0.2"},
	} {
		n := Name{Prefix: pv(c.p), Codes: CodeBounce}
		if got := n.Owner(); got != c.owner {
			t.Errorf("%s: owner %q, want %q", c.p, got, c.owner)
		}
		if got := n.TXT("x $"); got != c.txt {
			t.Errorf("%s: TXT %q, want %q", c.p, got, c.txt)
		}
	}
	// Non-aligned prefixes become aligned names.
	s := Build(Info{Zone: "z"}, []Entry{{Prefix: pv("10.0.0.0/23"), Codes: CodeBounce}, {Prefix: pv("192.0.2.0/31"), Codes: CodeBounce},
		{Prefix: pv("2001:db8::/63"), Codes: CodeBounce}})
	var got []string
	s.Names(func(n Name) bool { got = append(got, n.Owner()); return true })
	want := "*.0.0.10 *.1.0.10 2.0.0.127 0.2.0.192 1.2.0.192 " + Name{Prefix: pv("::ffff:7f00:2/128")}.Owner() +
		" *.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2 *.1.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2"
	if strings.Join(got, " ") != want {
		t.Errorf("names\n %s\nwant\n %s", strings.Join(got, " "), want)
	}
}

func TestTXTTemplates(t *testing.T) {
	for _, c := range []struct {
		tmpl, expanded string
		rbldnsdOK      bool
	}{
		{"listed $", "listed 192.0.2.1", true},
		{"see https://x/l?ip=$#a;b", "see https://x/l?ip=192.0.2.1#a;b", true},
		{"costs $$5", "costs $5", true},
		{"$", "192.0.2.1", true},
		{"", "", true},
		{"a $5 b", "a 192.0.2.15 b", false},
		{"a $= b", "a 192.0.2.1= b", false},
		{"line\nbreak", "line\nbreak", false},
		{" lead", " lead", false},
	} {
		if got := ExpandTXT(c.tmpl, "192.0.2.1"); got != c.expanded {
			t.Errorf("ExpandTXT(%q) = %q, want %q", c.tmpl, got, c.expanded)
		}
		_, err := RbldnsdTXT(c.tmpl)
		if (err == nil) != c.rbldnsdOK {
			t.Errorf("RbldnsdTXT(%q): %v", c.tmpl, err)
		}
		if err != nil && !errors.Is(err, ErrTemplate) {
			t.Errorf("RbldnsdTXT(%q): error %v is not ErrTemplate", c.tmpl, err)
		}
	}
}

func TestHeaderAndPlain(t *testing.T) {
	pv := netip.MustParsePrefix
	s := Build(Info{Zone: "bl.example", Serial: 42, TXT: "t $"}, []Entry{
		{Prefix: pv("192.0.2.1/32"), Codes: CodeBounce | CodeCallout},
		{Prefix: pv("198.51.100.0/24"), Codes: CodeAutoreply},
		{Prefix: pv("198.51.100.7/32"), Exclude: true},
		{Prefix: pv("2001:db8:1:2::/64"), Codes: CodeChallenge},
	})
	for _, f := range []Format{FormatRbldnsd, FormatBIND} {
		var buf bytes.Buffer
		if err := Write(&buf, f, s, SOA{}); err != nil {
			t.Fatal(err)
		}
		h, err := ReadHeader(&buf)
		if err != nil || h != (Header{Zone: "bl.example", Serial: 42, Entries: s.Len()}) {
			t.Errorf("%s header: %+v %v", f, h, err)
		}
	}
	if _, err := ReadHeader(strings.NewReader("1.2.3.4\n")); !errors.Is(err, ErrExport) {
		t.Errorf("ReadHeader of a foreign file: %v", err)
	}
	var buf bytes.Buffer
	if err := WritePlain(&buf, s); err != nil {
		t.Fatal(err)
	}
	want := `127.0.0.2 bounce,autoreply,callout,challenge
192.0.2.1 bounce,callout
198.51.100.0/30 autoreply
198.51.100.4/31 autoreply
198.51.100.6 autoreply
198.51.100.8/29 autoreply
198.51.100.16/28 autoreply
198.51.100.32/27 autoreply
198.51.100.64/26 autoreply
198.51.100.128/25 autoreply
2001:db8:1:2::/64 challenge
`
	if buf.String() != want {
		t.Errorf("plain:\n%s\nwant\n%s", buf.String(), want)
	}
}

func TestInZoneNSGetsGlue(t *testing.T) {
	s := Build(Info{Zone: "bl.example", Serial: 1}, nil)
	var buf bytes.Buffer
	soa := SOA{NS: []string{"ns1.bl.example", "ns.example.net"}, Glue: map[string][]netip.Addr{"ns1.bl.example": {netip.MustParseAddr("192.0.2.53"), netip.MustParseAddr("2001:db8::53")}}}
	if err := WriteBIND(&buf, s, soa); err != nil {
		t.Fatal(err)
	}
	z := parseZone(t, "bl.example", buf.Bytes())
	if got := z.a["ns1.bl.example."]; len(got) != 1 || got[0] != "192.0.2.53" {
		t.Errorf("glue A: %v\n%s", got, buf.String())
	}
	if !strings.Contains(buf.String(), "ns1 IN AAAA 2001:db8::53\n") {
		t.Errorf("no AAAA glue:\n%s", buf.String())
	}
}

func TestExportRefusesValues(t *testing.T) {
	s := Build(Info{Zone: "z"}, []Entry{{Prefix: netip.MustParsePrefix("192.0.2.1/32"), Value: &Value{A: []netip.Addr{netip.MustParseAddr("127.0.0.9")}}, Codes: CodeBounce}})
	for _, f := range []Format{FormatRbldnsd, FormatBIND, FormatPlain} {
		if err := Write(&bytes.Buffer{}, f, s, SOA{}); !errors.Is(err, ErrExport) {
			t.Errorf("%s: %v, want ErrExport", f, err)
		}
	}
}

// An escalated range carries its own TXT (naming its scope); the exports
// write it with the zone's TXT and exact codes instead of failing, so mirrors
// keep getting updates when escalation is on.
func TestExportOwnTXTRange(t *testing.T) {
	s := Build(Info{Zone: "z", TXT: "see $"}, []Entry{
		{Prefix: netip.MustParsePrefix("192.0.2.0/24"), Value: &Value{TXT: "see $ (part of 192.0.2.0/24)", OwnTXT: true}, Codes: CodeBounce},
		{Prefix: netip.MustParsePrefix("198.51.100.7/32"), Codes: CodeCallout},
	})
	for _, f := range []Format{FormatRbldnsd, FormatBIND, FormatPlain} {
		var buf bytes.Buffer
		if err := Write(&buf, f, s, SOA{}); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if !strings.Contains(buf.String(), "192.0.2") || !strings.Contains(buf.String(), "198.51.100.7") && !strings.Contains(buf.String(), "7.100.51.198") {
			t.Errorf("%s export misses an entry:\n%s", f, buf.String())
		}
	}
}
