package zones

import (
	"math/rand/v2"
	"net/netip"
	"testing"
)

func namesOf(s *Snapshot) map[netip.Prefix]Codes {
	m := map[netip.Prefix]Codes{}
	s.Names(func(n Name) bool { m[n.Prefix] = n.Codes; return true })
	return m
}

func TestJournalReplaysToLatest(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 5))
	s := randomSnapshot(r, 300)
	j := NewJournal(0)
	versions := []*Snapshot{s}
	j.Record(s)
	for v := range 20 {
		var ch []Entry
		for range 1 + r.IntN(20) {
			var p netip.Prefix
			if r.IntN(4) == 0 {
				b := [16]byte{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, byte(r.IntN(8))}
				p = netip.PrefixFrom(netip.AddrFrom16(b), 64)
			} else {
				p = netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 0, byte(r.IntN(3)), byte(r.IntN(256))}), 32)
			}
			ch = append(ch, Entry{Prefix: p, Codes: Codes(r.IntN(int(CodeAll) + 1))})
		}
		info := s.Info
		info.Serial += uint32(v + 1)
		s = s.With(info, ch)
		versions = append(versions, s)
		j.Record(s)
	}
	if j.Latest() != s {
		t.Fatal("latest is not the last recorded")
	}
	want := namesOf(s)
	for _, old := range versions {
		latest, changes, ok := j.Since(old.Serial)
		if !ok || latest != s {
			t.Fatalf("since %d: ok=%v", old.Serial, ok)
		}
		got := namesOf(old)
		for i, c := range changes {
			if i > 0 && (Name{Prefix: changes[i-1].Name}).Compare(Name{Prefix: c.Name}) >= 0 {
				t.Fatalf("since %d: changes out of order", old.Serial)
			}
			if got[c.Name] != c.Old {
				t.Fatalf("since %d: %s old %v, the version has %v", old.Serial, c.Name, c.Old, got[c.Name])
			}
			if c.New == 0 {
				delete(got, c.Name)
			} else {
				got[c.Name] = c.New
			}
		}
		if len(got) != len(want) {
			t.Fatalf("since %d: %d names after replay, want %d", old.Serial, len(got), len(want))
		}
		for p, c := range want {
			if got[p] != c {
				t.Fatalf("since %d: %s has %v after replay, want %v", old.Serial, p, got[p], c)
			}
		}
	}
	if _, _, ok := j.Since(versions[0].Serial - 1); ok {
		t.Error("a serial the journal never saw must fall back to a full transfer")
	}
}

func TestJournalLimits(t *testing.T) {
	pv := netip.MustParsePrefix
	info := Info{Zone: "z", Serial: 10, TXT: "t $"}
	a := Build(info, nil)
	j := NewJournal(3)
	j.Record(a)
	step := func(s *Snapshot, serial uint32, n int) *Snapshot {
		var ch []Entry
		for i := range n {
			ch = append(ch, Entry{Prefix: netip.PrefixFrom(addr4(0x0a000000+serial<<8+uint32(i)), 32), Codes: CodeBounce})
		}
		in := s.Info
		in.Serial = serial
		return s.With(in, ch)
	}
	b := step(a, 11, 2)
	j.Record(b)
	c := step(b, 12, 1)
	j.Record(c)
	if _, ch, ok := j.Since(10); !ok || len(ch) != 3 {
		t.Fatalf("since 10: %v %d", ok, len(ch))
	}
	d := step(c, 13, 1) // 4 changes kept > 3: the oldest difference goes
	j.Record(d)
	if _, _, ok := j.Since(10); ok {
		t.Error("since 10 should have fallen out of the journal")
	}
	if _, ch, ok := j.Since(11); !ok || len(ch) != 2 {
		t.Errorf("since 11: %v %d", ok, len(ch))
	}
	// A new TXT changes every record: the journal starts afresh.
	in := d.Info
	in.Serial, in.TXT = 14, "other $"
	e := d.With(in, []Entry{{Prefix: pv("192.0.2.1/32"), Codes: CodeBounce}})
	j.Record(e)
	if _, _, ok := j.Since(13); ok {
		t.Error("a TXT change must force a full transfer")
	}
	if _, ch, ok := j.Since(14); !ok || len(ch) != 0 {
		t.Errorf("since latest: %v %d", ok, len(ch))
	}
	// An older serial never replaces a newer one's journal.
	if SerialLess(14, 13) || !SerialLess(0xffffff00, 5) {
		t.Error("serial arithmetic (RFC 1982)")
	}
}

// The fast path for zones of singles agrees with the general one.
func TestDiffFastPath(t *testing.T) {
	r := rand.New(rand.NewPCG(8, 8))
	var es []Entry
	for range 2000 {
		if r.IntN(5) == 0 {
			b := [16]byte{0x20, 0x01, 0x0d, 0xb8, 0, 0, byte(r.IntN(4)), byte(r.IntN(256))}
			es = append(es, Entry{Prefix: netip.PrefixFrom(netip.AddrFrom16(b), 64), Codes: Codes(r.IntN(15) + 1)})
			continue
		}
		es = append(es, Entry{Prefix: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 0, byte(r.IntN(8)), byte(r.IntN(256))}), 32), Codes: Codes(r.IntN(15) + 1)})
	}
	es = append(es, Entry{Prefix: netip.MustParsePrefix("127.0.0.2/32"), Codes: CodeBounce}, Entry{Prefix: netip.MustParsePrefix("::/64"), Codes: CodeBounce})
	a := Build(Info{Zone: "z", Serial: 1}, es[:1500])
	b := Build(Info{Zone: "z", Serial: 2}, es[500:])
	if !singlesOnly(a) || !singlesOnly(b) {
		t.Fatal("test zones should take the fast path")
	}
	fast, slow := Diff(a, b), diffNames(a, b)
	if len(fast) != len(slow) || len(fast) == 0 {
		t.Fatalf("fast %d changes, slow %d", len(fast), len(slow))
	}
	for i := range fast {
		if fast[i] != slow[i] {
			t.Fatalf("change %d: fast %+v, slow %+v", i, fast[i], slow[i])
		}
	}
}
