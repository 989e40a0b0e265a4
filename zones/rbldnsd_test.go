package zones

import (
	"bytes"
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// answer is what a snapshot says about one address, spelled out.
func answer(s *Snapshot, ip string) string {
	c, v := s.Find(netip.MustParseAddr(ip))
	if c == 0 && v == 0 {
		return "-"
	}
	val := s.Value(v)
	var as []string
	for _, a := range c.Addrs() {
		as = append(as, a.String())
	}
	for _, a := range val.A {
		as = append(as, a.String())
	}
	slices.Sort(as)
	txt := s.TXT
	if val.OwnTXT {
		txt = val.TXT
	}
	if txt == "" {
		return strings.Join(as, ",")
	}
	return strings.Join(as, ",") + " " + txt
}

const parseRbldnsdTestFile = `# a comment
; another
$SOA 1h ns1.example.net. hostmaster.example.net. 42 2h 15m 1w 5m
$SOA 0 ignored. ignored. 1 1 1 1 1
$NS 1d ns1.example.net ns2.example.net -ns3.example.net
$TTL 10m
$1 see http://example.net/
$DATASET ip4set:main @
:127.0.0.2:Listed $, $1$
192.0.2.1
192.0.2.2 :3
192.0.2.3 :127.0.0.4:
192.0.2.4 own text for $ costs $$5
192.0.2.5:5:colon straight after the address
192.0.2.6 :127.0.0.10:other code
192.0.2.6 :127.0.0.3:
198.51.100 ; a /24 by prefix
!198.51.100.7
203.0.113.0-203.0.113.15
10.16-31
10.64.0.0/10 :4
10.64.1.1 :2
$DATASET ip4set:other subzone
1.1.1.1
$DATASET generic @
www A 127.0.0.1
$DATASET ip6tset @
:2:six $
2001:db8:1:2
!2001:db8:1:2::5
$DATASET ip6trie @
2001:db8:ff00::/40 :3:trie
2001:db8:ff00:1::1 :4:one
`

func TestParseRbldnsd(t *testing.T) {
	const file = parseRbldnsdTestFile
	s, apex, st, err := ParseRbldnsd(strings.NewReader(file), "Bl.Example.NET", RbldnsdOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if s.Zone != "bl.example.net" || s.Serial != 42 || s.TTL != 10*time.Minute {
		t.Errorf("info %q serial %d ttl %v", s.Zone, s.Serial, s.TTL)
	}
	want := Apex{SOATTL: 3600, MName: "ns1.example.net.", RName: "hostmaster.example.net.", Refresh: 7200, Retry: 900,
		Expire: 604800, Minimum: 300, HasSOA: true, NS: []string{"ns1.example.net.", "ns2.example.net."}, NSTTL: 86400}
	if apex == nil || apex.MName != want.MName || apex.Minimum != want.Minimum || !slices.Equal(apex.NS, want.NS) || apex.NSTTL != want.NSTTL || apex.Refresh != want.Refresh || apex.Retry != want.Retry {
		t.Errorf("apex %+v, want %+v", apex, want)
	}
	if st.Skipped != 2 {
		t.Errorf("skipped %d (%q), want 2 (the subzone and generic sections)", st.Skipped, st.Warnings)
	}
	for _, c := range []struct{ ip, want string }{
		{"192.0.2.1", "127.0.0.2 Listed $, see http://example.net/$"},
		{"192.0.2.2", "127.0.0.3 Listed $, see http://example.net/$"}, // ":A" keeps the default TXT
		{"192.0.2.3", "127.0.0.4"},                                    // ":A:" has no TXT
		{"192.0.2.4", "127.0.0.2 own text for $ costs $$5"},
		{"192.0.2.5", "127.0.0.5 colon straight after the address"},
		{"192.0.2.6", "127.0.0.10,127.0.0.3"}, // duplicates merge A values; one line's TXT (here: the earlier-seen "none")
		{"192.0.2.7", "-"},
		{"198.51.100.9", "127.0.0.2 Listed $, see http://example.net/$"},
		{"198.51.100.7", "-"},
		{"203.0.113.15", "127.0.0.2 Listed $, see http://example.net/$"},
		{"203.0.113.16", "-"},
		{"10.31.255.255", "127.0.0.2 Listed $, see http://example.net/$"},
		{"10.32.0.0", "-"},
		{"10.100.0.1", "127.0.0.4 Listed $, see http://example.net/$"},
		{"10.64.1.1", "127.0.0.2 Listed $, see http://example.net/$"},
		{"1.1.1.1", "-"}, // other subzone
		{"2001:db8:1:2::1", "127.0.0.2 six $"},
		{"2001:db8:1:2::5", "-"},
		{"2001:db8:ff00:7::1", "127.0.0.3 trie"},
		{"2001:db8:ff00:1::1", "127.0.0.4 one"},
	} {
		if got := answer(s, c.ip); got != c.want {
			t.Errorf("%s: %q, want %q", c.ip, got, c.want)
		}
	}

	bad := func(file string) {
		t.Helper()
		if _, _, _, err := ParseRbldnsd(strings.NewReader(file), "x", RbldnsdOptions{}); err == nil {
			t.Errorf("%q: no error", file)
		}
		if _, _, st, err := ParseRbldnsd(strings.NewReader(file), "x", RbldnsdOptions{Lenient: true}); err != nil || st.Skipped != 1 {
			t.Errorf("%q lenient: %v, skipped %d", file, err, st.Skipped)
		}
	}
	bad("1.2.3.256\n")
	bad("1.2.3.4.5\n")
	bad("1.2.3.4 :300:x\n")
	bad("1.2.3.9-1.2.3.1\n")
	bad("1.2.3.0/33\n")
	bad("2001:db8::g\n")
	bad("$SOA 1 2 3\n")
	bad("$BOGUS\n")
	bad("$DATASET ip4set @\n2001:db8::1\n")

	// Type of a plain file.
	if _, _, _, err := ParseRbldnsd(strings.NewReader("2001:db8::1\n"), "x", RbldnsdOptions{Type: "ip4set"}); err == nil {
		t.Error("IPv6 accepted in an ip4set file")
	}
	// Serial 0: the file's modification time.
	mt := time.Unix(1700000000, 0)
	s, _, _, err = ParseRbldnsd(strings.NewReader("$SOA 0 a. b. 0 1 1 1 1\n1.2.3.4\n"), "x", RbldnsdOptions{ModTime: mt})
	if err != nil || s.Serial != 1700000000 {
		t.Errorf("serial %d, %v", s.Serial, err)
	}
	// Base template.
	s, _, _, err = ParseRbldnsd(strings.NewReader("$= See http://x/?$= ($)\n127.0.0.9 r123\n127.0.0.10\n127.0.0.11 =plain $\n"), "x", RbldnsdOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for ip, want := range map[string]string{"127.0.0.9": "127.0.0.2 See http://x/?r123 ($)", "127.0.0.10": "127.0.0.2 See http://x/?$ ($)", "127.0.0.11": "127.0.0.2 plain $"} {
		if got := answer(s, ip); got != want {
			t.Errorf("base template %s: %q, want %q", ip, got, want)
		}
	}
}

// A zone written by WriteRbldnsd reads back to the same answers, with no
// per-entry values (the common TXT becomes the zone's).
func TestRbldnsdRoundTrip(t *testing.T) {
	var entries []Entry
	for i := 0; i < 3000; i++ {
		entries = append(entries, Entry{Prefix: netip.PrefixFrom(addr4(0xc0000000+uint32(i)*7919), 32), Codes: Codes(1 + i%15)})
	}
	entries = append(entries,
		Entry{Prefix: netip.MustParsePrefix("2001:db8:1:2::/64"), Codes: CodeBounce | CodeChallenge},
		Entry{Prefix: netip.MustParsePrefix("10.0.0.0/16"), Codes: CodeCallout},
		Entry{Prefix: netip.MustParsePrefix("10.0.1.0/24"), Exclude: true},
	)
	s := Build(Info{Zone: "bl.example", Serial: 77, TXT: "Backscatter from $, see http://x/lookup?ip=$"}, entries)
	var buf bytes.Buffer
	if err := WriteRbldnsd(&buf, s, SOA{}); err != nil {
		t.Fatal(err)
	}
	back, apex, st, err := ParseRbldnsd(&buf, "bl.example", RbldnsdOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if back.Serial != 77 || back.TXT != s.TXT || apex == nil || st.Skipped != 0 {
		t.Fatalf("serial %d TXT %q apex %v skipped %d", back.Serial, back.TXT, apex, st.Skipped)
	}
	if back.Values() != 1 || back.v4v != nil {
		t.Errorf("%d values, per-entry index %v: want the zone TXT only", back.Values(), back.v4v != nil)
	}
	check := func(a netip.Addr) {
		t.Helper()
		if answer(back, a.String()) != answer(s, a.String()) {
			t.Errorf("%s: %q after the round trip, want %q", a, answer(back, a.String()), answer(s, a.String()))
		}
	}
	for _, e := range entries {
		check(e.Prefix.Addr())
		check(e.Prefix.Addr().Next())
	}
	check(netip.MustParseAddr("10.0.1.5"))
	check(netip.MustParseAddr("10.0.2.5"))
}

func FuzzParseRbldnsd(f *testing.F) {
	f.Add("$DATASET ip4set @\n:2:x $\n1.2.3.4\n!1.2.3.0/24\n1.2-3 :3:y\n$DATASET ip6tset @\n2001:db8:1:2\n!2001:db8:1:2::1\n")
	f.Add("$SOA 0 a. b. 0 1 1 1 1\n$NS 0 a.\n$TTL 1h\n$1 v\n$= b $= $1\n10/8\n10.1.1.1 :10:z\n")
	f.Add("2001:db8::/32 :3:t\n::1\n!2001:db8::bead\n")
	f.Fuzz(func(t *testing.T, in string) {
		sameParse(t, in, RbldnsdOptions{Lenient: true})
		s, _, _, err := ParseRbldnsd(strings.NewReader(in), "x", RbldnsdOptions{Lenient: true})
		if err != nil {
			return
		}
		var back []Entry
		s.Entries(func(e Entry) bool { back = append(back, e); return len(back) < 10000 })
		if len(back) >= 10000 {
			return
		}
		s2 := Build(s.Info, back)
		for _, e := range back {
			for _, a := range []netip.Addr{e.Prefix.Addr(), e.Prefix.Addr().Prev(), e.Prefix.Addr().Next()} {
				if !a.IsValid() {
					continue
				}
				if x, y := answer(s, a.String()), answer(s2, a.String()); x != y {
					t.Fatalf("%s: %q, rebuilt from Entries %q", a, x, y)
				}
			}
		}
	})
}

// sameParse checks that the chunked parse with bare-address runs gives what
// a line-by-line parse gives (snapshot, apex, stats, error), also with
// chunks cut at every few bytes.
func sameParse(t *testing.T, in string, opts RbldnsdOptions) {
	t.Helper()
	type result struct {
		zone  string
		apex  *Apex
		stats RbldnsdStats
		err   string
	}
	run := func(chunk int, fast bool) result {
		s, apex, st, err := parseRbldnsd(strings.NewReader(in), "x", opts, chunk, fast)
		var res result
		if err != nil {
			res.err = err.Error()
		}
		res.apex, res.stats = apex, st
		if s != nil {
			var b strings.Builder
			info := s.Info
			info.Apex = nil // compared as res.apex
			fmt.Fprintf(&b, "%d %+v\n", s.Len(), info)
			s.Entries(func(e Entry) bool {
				fmt.Fprintf(&b, "%s %d %v", e.Prefix, e.Codes, e.Exclude)
				if e.Value != nil {
					fmt.Fprintf(&b, " %+v", *e.Value)
				}
				b.WriteByte('\n')
				return true
			})
			res.zone = b.String()
		}
		return res
	}
	want := run(rbChunkSize, false)
	for _, chunk := range []int{rbChunkSize, 1, 7, 4096} {
		if got := run(chunk, true); !reflect.DeepEqual(got, want) {
			t.Fatalf("chunk %d: chunked parse differs from line by line:\n%+v\nwant\n%+v", chunk, got, want)
		}
	}
}

func TestParseRbldnsdChunked(t *testing.T) {
	var b strings.Builder
	b.WriteString("$TTL 1h\n$DATASET ip4set:a @\n:127.0.0.3:a $\n")
	for i := range 3000 {
		fmt.Fprintf(&b, "10.%d.%d.%d\n", i>>16&255, i>>8&255, i&255)
		switch i % 500 {
		case 7:
			b.WriteString("  10.200.0.1\n10.200.0.2\r\n\n# comment\n10.9.9.9 :4:own\n")
		case 99:
			b.WriteString(":127.0.0.5:changed default\n")
		case 250:
			b.WriteString("$DATASET ip4set:b sub\n1.2.3.4\n1.2.3.5\n$DATASET ip6tset @\n1.2.3.6\n2001:db8::1\n$DATASET ip4trie @\n")
		case 300:
			b.WriteString("1.2.3.256\n01.2.3.4\n1.2.3\n1.2.3.4.5\n!10.0.0.5\n$MAXRANGE4 /30\n10.7.0.0/24\n")
		}
	}
	b.WriteString("192.0.2.9")
	big := b.String()
	for name, in := range map[string]string{
		"tests":          parseRbldnsdTestFile,
		"generated":      big,
		"no newline":     "1.2.3.4\n5.6.7.8",
		"empty":          "",
		"ip6 only":       "$DATASET ip6tset @\n1.2.3.4\n",
		"long line":      "1.2.3.4\n" + strings.Repeat("x", rbMaxLine) + "\n5.6.7.8\n",
		"longest line":   "1.2.3.4\n#" + strings.Repeat("x", rbMaxLine-1) + "\n5.6.7.8\n",
		"long last line": "1.2.3.4\n#" + strings.Repeat("x", rbMaxLine-1),
	} {
		t.Run(name, func(t *testing.T) {
			sameParse(t, in, RbldnsdOptions{Lenient: true})
			sameParse(t, in, RbldnsdOptions{})
			sameParse(t, in, RbldnsdOptions{Type: "ip4set"})
		})
	}
}

func TestPlain4(t *testing.T) {
	for _, s := range []string{"1.2.3.4", "1.2.3.4\n", "255.255.255.255\n", "01.2.3.4\n", "001.2.3.4", "0001.2.3.4\n", "1.2.3.256\n",
		"1.2.3\n", "1.2.3.4.5\n", "1..3.4\n", ".1.2.3\n", "1.2.3.4 \n", "1.2.3.4\r\n", "1.2.3.\n", "", "\n", "a.b.c.d\n", "1.2.3.4x"} {
		line := strings.TrimSuffix(s, "\n")
		want, wok := addr4Fast([]byte(line))
		got, next, ok := plain4([]byte(s), 0)
		if ok != wok || got != want || (ok && next != len(s)) {
			t.Errorf("plain4(%q) = %x, %d, %v; addr4Fast %x, %v", s, got, next, ok, want, wok)
		}
	}
}
