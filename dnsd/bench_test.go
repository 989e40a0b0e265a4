package dnsd

import (
	"net/netip"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// BenchmarkHandle is one datagram through the UDP handler on a 1M-entry
// zone: listed and unlisted A queries on the fast path, and for comparison
// the slow path (miekg/dns) with the same queries.
func BenchmarkHandle(b *testing.B) {
	cur := serving(bigSnapshot(1_000_000, 1))
	s := New(Config{}, cur, nil, nil)
	listed := pack(b, query(QueryName(netip.MustParseAddr("10.0.0.3"), zone), dns.TypeA))
	unlisted := pack(b, query(QueryName(netip.MustParseAddr("10.0.0.4"), zone), dns.TypeA))
	txt := pack(b, query(QueryName(netip.MustParseAddr("10.0.0.3"), zone), dns.TypeTXT, edns(1232, false)))
	src := netip.MustParseAddr("192.0.2.1")
	now := time.Now()
	for _, c := range []struct {
		name string
		pkt  []byte
	}{{"listed", listed}, {"unlisted", unlisted}, {"txt", txt}} {
		b.Run("fast/"+c.name, func(b *testing.B) {
			h := newPacketHandler(s)
			out := make([]byte, 0, bufSize)
			b.ReportAllocs()
			for b.Loop() {
				if h.handle(c.pkt, src, out, now) == nil {
					b.Fatal("no answer")
				}
			}
		})
		b.Run("slow/"+c.name, func(b *testing.B) {
			out := make([]byte, 0, bufSize)
			b.ReportAllocs()
			for b.Loop() {
				if r, _, _ := s.slowUDP(c.pkt, src, out, allow); r == nil {
					b.Fatal("no answer")
				}
			}
		})
	}
}
