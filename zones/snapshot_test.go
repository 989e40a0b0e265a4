package zones

import (
	"math/rand/v2"
	"net/netip"
	"testing"
)

func TestSnapshotLookup(t *testing.T) {
	pv := func(s string) netip.Prefix { return netip.MustParsePrefix(s) }
	own := &Value{TXT: "own $", OwnTXT: true}
	extra := &Value{A: []netip.Addr{netip.MustParseAddr("127.0.0.10")}}
	s := Build(Info{Zone: "Bl.Example.", TXT: "zone $"}, []Entry{
		{Prefix: pv("192.0.2.1/32"), Codes: CodeBounce},
		{Prefix: pv("192.0.2.1/32"), Codes: CodeCallout}, // duplicates merge codes
		{Prefix: pv("192.0.2.0/24"), Codes: CodeAutoreply},
		{Prefix: pv("192.0.2.128/25"), Codes: CodeChallenge, Value: own},
		{Prefix: pv("192.0.2.200/32"), Exclude: true},
		{Prefix: pv("10.0.0.0/8"), Codes: CodeBounce},
		{Prefix: pv("10.1.0.0/16"), Codes: CodeCallout},
		{Prefix: pv("10.1.2.0/24"), Exclude: true},
		{Prefix: pv("10.1.2.3/32"), Codes: CodeBounce}, // inside an exclusion: excluded (rbldnsd ip4set)
		{Prefix: pv("198.51.100.7/32"), Value: extra},
		{Prefix: pv("198.51.100.8/32"), Value: own}, // a TXT alone lists nothing
		{Prefix: pv("2001:db8:1:2::/64"), Codes: CodeBounce},
		{Prefix: pv("2001:db8:1:2::5/128"), Exclude: true},
		{Prefix: pv("2001:db8:a::/48"), Codes: CodeAutoreply},
		{Prefix: pv("2001:db8:a:1::/64"), Exclude: true},
		{Prefix: pv("2001:db8:b::1/128"), Codes: CodeCallout, Value: own},
		{Prefix: pv("::ffff:203.0.113.9/128"), Codes: CodeBounce}, // mapped: stored as IPv4
	})
	if s.Zone != "bl.example" {
		t.Fatalf("zone %q", s.Zone)
	}
	check := func(ip string, want Codes, wantVal *Value) {
		t.Helper()
		c, v := s.Find(netip.MustParseAddr(ip))
		if c != want {
			t.Errorf("%s: codes %v, want %v", ip, c.Names(), want.Names())
		}
		got := s.Value(v)
		if wantVal == nil {
			wantVal = &Value{}
		}
		if got.key() != wantVal.key() {
			t.Errorf("%s: value %+v, want %+v", ip, *got, *wantVal)
		}
		if l := s.Lookup(netip.MustParseAddr(ip)); l != want {
			t.Errorf("%s: Lookup %v, want %v", ip, l, want)
		}
	}
	check("192.0.2.1", CodeBounce|CodeCallout, nil) // single beats the ranges around it
	check("192.0.2.2", CodeAutoreply, nil)
	check("192.0.2.129", CodeChallenge, own) // narrowest range decides
	check("192.0.2.200", 0, nil)
	check("192.0.2.201", CodeChallenge, own)
	check("10.9.9.9", CodeBounce, nil)
	check("10.1.9.9", CodeCallout, nil)
	check("10.1.2.3", 0, nil)
	check("10.1.3.0", CodeCallout, nil)
	check("198.51.100.7", 0, extra)
	check("198.51.100.8", 0, nil)
	check("127.0.0.2", CodeAll, nil) // RFC 5782 §5
	check("127.0.0.1", 0, nil)
	check("::ffff:127.0.0.2", CodeAll, nil)
	check("2001:db8:1:2::1", CodeBounce, nil)
	check("2001:db8:1:2::5", 0, nil)
	check("2001:db8:1:3::1", 0, nil)
	check("2001:db8:a:7::1", CodeAutoreply, nil)
	check("2001:db8:a:1::1", 0, nil)
	check("2001:db8:b::1", CodeCallout, own)
	check("2001:db8:b::2", 0, nil)
	check("203.0.113.9", CodeBounce, nil)

	under4 := func(lo, hi string, want bool) {
		t.Helper()
		l, h := netip.MustParseAddr(lo).As4(), netip.MustParseAddr(hi).As4()
		if got := s.Under4(be32(l), be32(h)); got != want {
			t.Errorf("Under4(%s,%s) = %v", lo, hi, got)
		}
	}
	under4("192.0.0.0", "192.0.255.255", true)
	under4("10.1.2.0", "10.1.2.255", true) // the single inside counts as a name below
	under4("11.0.0.0", "11.255.255.255", false)
	under4("127.0.0.0", "127.255.255.255", true) // test point
	if !s.Under6(0x20010db8000b0000, 0x20010db8000bffff) || s.Under6(0x20010db8000c0000, 0x20010db8000cffff) {
		t.Error("Under6 wrong around the /128 entry")
	}
}

func be32(b [4]byte) uint32 {
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

// naive is the reference: an exclusion covering the address wins, else the
// most specific prefix, identical prefixes merging codes.
func naive(entries []Entry, a netip.Addr) Codes {
	best, bits := Codes(0), -1
	for _, e := range entries {
		p := e.Prefix.Masked()
		if !p.Contains(a) {
			continue
		}
		if e.Exclude {
			return 0
		}
		switch {
		case p.Bits() > bits:
			best, bits = e.Codes, p.Bits()
		case p.Bits() == bits:
			best |= e.Codes
		}
	}
	return best
}

func TestSnapshotAgainstReference(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for round := 0; round < 50; round++ {
		var entries []Entry
		base := uint32(0x0a000000)
		for i := 0; i < 60; i++ {
			bits := []int{32, 32, 32, 30, 28, 24, 20, 16}[r.IntN(8)]
			a := addr4(base | r.Uint32N(1<<16))
			e := Entry{Prefix: netip.PrefixFrom(a, bits).Masked(), Codes: Codes(1 << r.IntN(4))}
			if r.IntN(6) == 0 {
				e.Exclude, e.Codes = true, 0
			}
			entries = append(entries, e)
			b6 := [16]byte{0x20, 0x01, 0x0d, 0xb8, 0, byte(r.IntN(4)), 0, byte(r.IntN(4)), 0, 0, 0, 0, 0, 0, 0, byte(r.IntN(4))}
			bits6 := []int{64, 64, 62, 60, 48, 128, 126}[r.IntN(7)]
			e6 := Entry{Prefix: netip.PrefixFrom(netip.AddrFrom16(b6), bits6).Masked(), Codes: Codes(1 << r.IntN(4))}
			if r.IntN(6) == 0 {
				e6.Exclude, e6.Codes = true, 0
			}
			entries = append(entries, e6)
		}
		s := Build(Info{Zone: "x"}, entries)
		for i := 0; i < 2000; i++ {
			a := addr4(base | r.Uint32N(1<<16))
			if got, want := s.Lookup(a), naive(entries, a); got != want {
				t.Fatalf("round %d %s: got %v want %v", round, a, got, want)
			}
			b6 := [16]byte{0x20, 0x01, 0x0d, 0xb8, 0, byte(r.IntN(4)), 0, byte(r.IntN(4)), 0, 0, 0, 0, 0, 0, 0, byte(r.IntN(4))}
			a6 := netip.AddrFrom16(b6)
			if got, want := s.Lookup(a6), naive(entries, a6); got != want {
				t.Fatalf("round %d %s: got %v want %v", round, a6, got, want)
			}
		}
		// Entries round-trips to the same answers.
		var back []Entry
		s.Entries(func(e Entry) bool { back = append(back, e); return true })
		s2 := Build(Info{Zone: "x"}, back)
		for i := 0; i < 500; i++ {
			a := addr4(base | r.Uint32N(1<<16))
			if s2.Lookup(a) != s.Lookup(a) {
				t.Fatalf("round %d %s: Entries round trip differs", round, a)
			}
		}
	}
}

func TestSnapshotWith(t *testing.T) {
	var entries []Entry
	for i := 0; i < 8192; i++ { // spread over several /16 buckets
		entries = append(entries, Entry{Prefix: netip.PrefixFrom(addr4(0x0a000000+uint32(i)*97), 32), Codes: CodeBounce})
	}
	s := Build(Info{Zone: "x", Serial: 1}, entries)
	own := &Value{TXT: "t", OwnTXT: true}
	n := s.With(Info{Zone: "x", Serial: 2}, []Entry{
		{Prefix: netip.MustParsePrefix("10.0.0.0/32")},                      // removed
		{Prefix: netip.MustParsePrefix("10.0.0.97/32"), Codes: CodeCallout}, // replaced
		{Prefix: netip.MustParsePrefix("11.0.0.1/32"), Codes: CodeBounce, Value: own},
		{Prefix: netip.MustParsePrefix("11.0.0.2/32"), Codes: CodeBounce},
		{Prefix: netip.MustParsePrefix("11.0.0.2/32"), Codes: CodeAutoreply}, // last change wins
		{Prefix: netip.MustParsePrefix("2001:db8::/64"), Codes: CodeBounce},
	})
	for _, c := range []struct {
		ip   string
		old  Codes
		want Codes
	}{
		{"10.0.0.0", CodeBounce, 0},
		{"10.0.0.97", CodeBounce, CodeCallout},
		{"10.0.0.194", CodeBounce, CodeBounce},
		{"11.0.0.1", 0, CodeBounce},
		{"11.0.0.2", 0, CodeAutoreply},
		{"2001:db8::1", 0, CodeBounce},
	} {
		a := netip.MustParseAddr(c.ip)
		if got := s.Lookup(a); got != c.old {
			t.Errorf("old %s = %v", c.ip, got)
		}
		if got := n.Lookup(a); got != c.want {
			t.Errorf("new %s = %v, want %v", c.ip, got, c.want)
		}
	}
	if _, v := n.Find(netip.MustParseAddr("11.0.0.1")); n.Value(v).TXT != "t" {
		t.Errorf("value lost in With")
	}
	if _, v := n.Find(netip.MustParseAddr("10.0.0.194")); v != 0 {
		t.Errorf("value %d for an entry without one", v)
	}
	if s.Serial != 1 || n.Serial != 2 || n.Len() != s.Len()+2 {
		t.Errorf("serials %d %d, len %d -> %d", s.Serial, n.Serial, s.Len(), n.Len())
	}
}

// With on random changes agrees with a Build of the resulting set, on
// lookups, Entries, Under4 and the journal diff.
func TestWithAgainstBuild(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	set := map[uint32]Codes{}
	s := Build(Info{Zone: "x"}, nil)
	for round := 0; round < 30; round++ {
		var ch []Entry
		for i := 0; i < 1+r.IntN(300); i++ {
			k := 0x0a000000 | r.Uint32N(1<<18) // a few /16 buckets
			c := Codes(r.IntN(16))
			set[k] = c
			ch = append(ch, Entry{Prefix: netip.PrefixFrom(addr4(k), 32), Codes: c})
		}
		next := s.With(Info{Zone: "x"}, ch)
		var es []Entry
		for k, c := range set {
			if c != 0 {
				es = append(es, Entry{Prefix: netip.PrefixFrom(addr4(k), 32), Codes: c})
			}
		}
		want := Build(Info{Zone: "x"}, es)
		if next.Len() != want.Len() {
			t.Fatalf("round %d: len %d, want %d", round, next.Len(), want.Len())
		}
		for i := 0; i < 2000; i++ {
			k := 0x0a000000 | r.Uint32N(1<<18)
			if next.Lookup4(k) != want.Lookup4(k) {
				t.Fatalf("round %d: %s differs", round, addr4(k))
			}
			lo := k &^ 0xff
			if next.Under4(lo, lo|0xff) != want.Under4(lo, lo|0xff) {
				t.Fatalf("round %d: Under4 %s/24 differs", round, addr4(lo))
			}
		}
		var a, b []Entry
		next.Entries(func(e Entry) bool { a = append(a, e); return true })
		want.Entries(func(e Entry) bool { b = append(b, e); return true })
		if len(a) != len(b) {
			t.Fatalf("round %d: Entries %d vs %d", round, len(a), len(b))
		}
		for i := range a {
			if a[i].Prefix != b[i].Prefix || a[i].Codes != b[i].Codes {
				t.Fatalf("round %d: entry %d: %v vs %v", round, i, a[i], b[i])
			}
		}
		n := 0
		s.diff4(next, func(k uint32, o, c Codes) {
			n++
			if s.Lookup4(k) != o || next.Lookup4(k) != c || o == c {
				t.Fatalf("diff4 %s: %v -> %v", addr4(k), o, c)
			}
		})
		s = next
	}
}
