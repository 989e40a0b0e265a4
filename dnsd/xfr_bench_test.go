package dnsd

import (
	"context"
	"math/rand/v2"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/blowback-dnsbl/blowback/zones"
)

// BenchmarkAXFR1M transfers a 1M-entry zone over TCP on loopback. The
// names are generated as they are sent: heap-MB is the heap in use at the
// end of the transfer (the zone itself included), not a copy of the zone.
func BenchmarkAXFR1M(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 1))
	bl := zones.NewBuilder(zones.Info{Zone: "bl.example", Serial: 1, TXT: "Backscatter from $ see https://bl.example/lookup?ip=$", TTL: 300 * time.Second})
	bl.Grow(1000000)
	for range 1000000 {
		bl.Add4(r.Uint32()|0x01000000, zones.CodeBounce, 0)
	}
	snap := bl.Snapshot()
	cur := serving(snap)
	j := zones.NewJournal(0)
	j.Record(snap)
	srv := New(Config{}, cur, nil, nil)
	if err := srv.Start("127.0.0.1:0"); err != nil {
		b.Fatal(err)
	}
	defer srv.Stop(context.Background())
	if err := srv.SetTransfer(TransferConfig{Journal: j, Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, MessageSize: 32 << 10}, nil); err != nil {
		b.Fatal(err)
	}
	defer srv.StopTransfer()
	var rrs, msgs int
	var heap uint64
	for b.Loop() {
		m := new(dns.Msg)
		m.SetAxfr("bl.example.")
		ch, err := (&dns.Transfer{}).In(m, srv.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		rrs, msgs = 0, 0
		for env := range ch {
			if env.Error != nil {
				b.Fatal(env.Error)
			}
			rrs += len(env.RR)
			msgs++
			if msgs == 1000 {
				var ms runtime.MemStats
				runtime.ReadMemStats(&ms)
				heap = ms.HeapInuse
			}
		}
	}
	b.ReportMetric(float64(rrs), "records")
	b.ReportMetric(float64(msgs), "messages")
	b.ReportMetric(float64(heap)/(1<<20), "heap-MB")
}
