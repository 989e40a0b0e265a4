package zones

import (
	"math/rand/v2"
	"net/netip"
	"sync"
	"testing"
)

type countW struct{ n int64 }

func (c *countW) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

var bigZone = sync.OnceValue(func() *Snapshot { return makeBig(true) })

var bigSingles = sync.OnceValue(func() *Snapshot { return makeBig(false) })

func makeBig(ranges bool) *Snapshot {
	// 1M entries: 950k IPv4 singles, 50k IPv6 /64s, a few ranges; codes
	// mostly one, some several.
	r := rand.New(rand.NewPCG(1, 1))
	b := NewBuilder(Info{Zone: "bl.example", Serial: 1, TXT: "Backscatter from $ see https://bl.example/lookup?ip=$"})
	b.Grow(950000)
	code := func() Codes {
		if r.IntN(10) == 0 {
			return Codes(r.IntN(int(CodeAll)) + 1)
		}
		return CodeBounce
	}
	for range 950000 {
		b.Add4(r.Uint32()|0x01000000, code(), 0)
	}
	for range 50000 {
		var a [16]byte
		a[0], a[1] = 0x20, 0x01
		for i := 2; i < 8; i++ {
			a[i] = byte(r.IntN(256))
		}
		b.Add(Entry{Prefix: netip.PrefixFrom(netip.AddrFrom16(a), 64), Codes: code()})
	}
	for _, p := range []string{"198.51.100.0/24", "203.0.112.0/22", "2001:db8:77::/48"} {
		if ranges {
			b.Add(Entry{Prefix: netip.MustParsePrefix(p), Codes: CodeAutoreply})
		}
	}
	return b.Snapshot()
}

// BenchmarkExport1M writes a 1M-entry zone in each format; bytes is the
// size of one export.
func BenchmarkExport1M(b *testing.B) {
	s := bigZone()
	for _, f := range []Format{FormatRbldnsd, FormatBIND, FormatPlain} {
		b.Run(string(f), func(b *testing.B) {
			var c countW
			for b.Loop() {
				c = countW{}
				if err := Write(&c, f, s, SOA{}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(c.n), "bytes")
			b.ReportMetric(float64(s.Len()), "entries")
		})
	}
}

// BenchmarkDiff1M is the journal's cost per recorded version of a 1M zone
// with 100 changes.
func BenchmarkDiff1M(b *testing.B) {
	b.Run("with-ranges", func(b *testing.B) { benchDiff(b, bigZone()) })
	b.Run("singles", func(b *testing.B) { benchDiff(b, bigSingles()) })
}

func benchDiff(b *testing.B, s *Snapshot) {
	var ch []Entry
	for i := range 100 {
		ch = append(ch, Entry{Prefix: netip.PrefixFrom(addr4(0x0a000000+uint32(i)), 32), Codes: CodeBounce})
	}
	in := s.Info
	in.Serial++
	t := s.With(in, ch)
	for b.Loop() {
		if d := Diff(s, t); len(d) != 100 {
			b.Fatalf("%d changes", len(d))
		}
	}
}
