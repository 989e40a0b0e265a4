package trap

import (
	"bufio"
	"context"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/blowback-dnsbl/blowback/store"
)

// countSink acknowledges at once: the benchmark measures the SMTP server
// and the classifier, not the store.
type countSink struct{ n atomic.Int64 }

func (c *countSink) Ingest(context.Context, *store.Event, []byte) error { c.n.Add(1); return nil }

// BenchmarkSession: one ~5 KB DSN per connection (like smtp-source without
// -d), from parallel clients over loopback. Reports messages/s.
func BenchmarkSession(b *testing.B) {
	sink := &countSink{}
	s := startTrap(b, Config{ConnRatePerIP: -1, MaxConnsPerIP: 1000}, sink)
	addr := s.Addr().String()
	body := testDSN[:len(testDSN)-len("--B--\r\n")] + "padding: " + strings.Repeat("x", 70) + "\r\n"
	for len(body) < 5000 {
		body += "X-Pad: " + strings.Repeat("y", 70) + "\r\n"
	}
	body += "\r\n--B--\r\n"
	script := "EHLO bench.example.net\r\nMAIL FROM:<>\r\nRCPT TO:<x@trap.blowback.test>\r\nDATA\r\n"
	b.SetBytes(int64(len(body)))
	b.SetParallelism(10) // × GOMAXPROCS clients
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				b.Error(err)
				return
			}
			r := bufio.NewReader(c)
			reply := func() string {
				for {
					l, err := r.ReadString('\n')
					if err != nil || len(l) < 4 || l[3] != '-' {
						return l
					}
				}
			}
			reply()
			_, _ = io.WriteString(c, script) // PIPELINING (RFC 2920): EHLO waits, the rest is one group
			reply()
			reply()
			reply()
			if got := reply(); !strings.HasPrefix(got, "354") {
				b.Errorf("DATA: %q", got)
			}
			_, _ = io.WriteString(c, body+".\r\nQUIT\r\n")
			if got := reply(); !strings.HasPrefix(got, "250") {
				b.Errorf("after DATA: %q", got)
			}
			reply()
			c.Close()
		}
	})
	b.ReportMetric(float64(sink.n.Load())/b.Elapsed().Seconds(), "msgs/s")
}
