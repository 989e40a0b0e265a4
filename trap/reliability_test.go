package trap

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/blowback-dnsbl/blowback/internal/tally"
	"github.com/blowback-dnsbl/blowback/store"
)

// storeSink commits to a real badger store, as the node does.
type storeSink struct{ st *store.Store }

func (s storeSink) Ingest(ctx context.Context, ev *store.Event, raw []byte) error {
	return s.st.Put(ctx, ev, raw)
}

// outcome is how a hostile session ended, as its client saw it: the code
// and enhanced code of the last reply line before the server closed, or
// "closed" (no reply), or "NOT CLOSED" when the client gave up first.
func outcome(last string, closed bool) string {
	if !closed {
		return "NOT CLOSED"
	}
	if len(last) >= 9 && last[3] == ' ' {
		return last[:9]
	}
	if len(last) >= 3 {
		return last[:3]
	}
	return "closed"
}

// hostile runs one session from local: write feeds the connection while the
// client reads replies until the server closes (at most a minute: a guard
// against a hung session, above every server timeout in TestReliability).
func hostile(addr, local string, write func(c net.Conn)) string {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return "dial error"
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Minute))
	if write != nil {
		go write(c)
	}
	r := bufio.NewReader(c)
	last := ""
	for {
		line, err := r.ReadString('\n')
		if s := strings.TrimRight(line, "\r\n"); len(s) >= 3 && s[0] >= '2' && s[0] <= '5' {
			last = s
		}
		if err != nil {
			var ne net.Error
			return outcome(last, !(errorsAs(err, &ne) && ne.Timeout()))
		}
	}
}

func errorsAs(err error, ne *net.Error) bool {
	e, ok := err.(net.Error)
	if ok {
		*ne = e
	}
	return ok
}

// TestReliability (issue 9, SMTP part): hostile load and faults against one
// trap while legitimate senders deliver. Every hostile session must be
// closed by the server with a clear reply, every acknowledged message must
// be in the store, goroutines must come back, nothing may panic, and a
// spoofed PROXY address must never reach the evidence. It logs the table
// (go test ./trap -run TestReliability -v).
func TestReliability(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	st, err := store.Open(t.TempDir(), store.DefaultOptions(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	baseGoroutines := runtime.NumGoroutine()
	var ms0 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms0)
	// The idle timeout (ReadTimeout) is what ends the idle, slowloris and
	// TLS-garbage sessions. DataTimeout and SessionTimeout end none of the
	// scenarios: they only bound whole transfers and sessions, and on a
	// loaded machine (or under -race) the oversize sessions' 2 MiB and the
	// legitimate senders' 20 messages must not depend on finishing within
	// a few seconds (TestLimits tests both limits).
	s := New(Config{Domains: []string{testDomain}, TLS: selfSignedConfig(t),
		ReadTimeout: 2 * time.Second, DataTimeout: 15 * time.Second, SessionTimeout: 30 * time.Second,
		MaxMessageBytes: 1 << 20, MaxConns: 600, MaxConnsPerIP: 20, ConnRatePerIP: 120, ConnBurst: 60,
		ProxyTrusted: []netip.Prefix{netip.MustParsePrefix("127.0.9.0/24")}}, storeSink{st}, nil, nil)
	if err := s.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	addr := s.Addr().String()

	// Peak heap while the load runs.
	var peakHeap atomic.Uint64
	stopSample := make(chan struct{})
	go func() {
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peakHeap.Load() {
				peakHeap.Store(ms.HeapInuse)
			}
			select {
			case <-stopSample:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()

	line := func(c net.Conn, s string) { _, _ = io.WriteString(c, s) }
	type scenario struct {
		name, load, from string
		n                int
		write            func(i int, c net.Conn)
		want             []string // acceptable outcomes
	}
	spoof := appendProxyV1(nil, proxyHeader{Src: netip.MustParseAddrPort("192.0.2.66:1"), Dst: netip.MustParseAddrPort("198.51.100.1:25")})
	scenarios := []scenario{
		{"idle flood", "300 idle connections from 10 addresses", "127.0.1.%d", 300, nil,
			[]string{"421 4.7.0", "421 4.4.2"}},
		{"slowloris", "20 clients, one byte per 300ms", "127.0.2.1", 20, func(_ int, c net.Conn) {
			for _, b := range []byte("EHLO slow.example.net\r\n") {
				if _, err := c.Write([]byte{b}); err != nil {
					return
				}
				time.Sleep(300 * time.Millisecond)
			}
		}, []string{"421 4.4.2"}},
		{"oversize", "10 messages of 2 MiB (limit 1 MiB)", "127.0.3.1", 10, func(_ int, c net.Conn) {
			line(c, "EHLO big.example.net\r\nMAIL FROM:<>\r\nRCPT TO:<x@trap.blowback.test>\r\nDATA\r\n")
			time.Sleep(100 * time.Millisecond)
			chunk := strings.Repeat("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\r\n", 1024)
			for range 32 {
				line(c, chunk)
			}
			line(c, ".\r\n")
			_ = c.(*net.TCPConn).CloseWrite()
		}, []string{"552 5.3.4"}},
		{"endless line", "10 clients, 100 KB without newline", "127.0.4.1", 10, func(_ int, c net.Conn) {
			line(c, "EHLO "+strings.Repeat("x", 100_000))
		}, []string{"500 5.4.0"}},
		{"binary junk", "10 clients, 64 KB random bytes", "127.0.5.1", 10, func(i int, c net.Conn) {
			r := rand.New(rand.NewPCG(uint64(i), 9))
			b := make([]byte, 64<<10)
			for j := range b {
				b[j] = byte(r.IntN(256))
			}
			_, _ = c.Write(b)
		}, []string{"500 5.4.0", "500 5.5.1"}},
		{"pipelining flood", "10 clients × 20000 pipelined RCPTs, replies unread", "127.0.6.1", 10, func(_ int, c net.Conn) {
			line(c, "EHLO pipe.example.net\r\nMAIL FROM:<x@example.com>\r\n")
			line(c, strings.Repeat("RCPT TO:<victim@example.com>\r\n", 20000))
		}, []string{"421 4.7.0"}},
		{"TLS garbage", "10 clients, STARTTLS then junk", "127.0.7.1", 10, func(_ int, c net.Conn) {
			line(c, "EHLO tls.example.net\r\nSTARTTLS\r\n")
			time.Sleep(100 * time.Millisecond)
			line(c, "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbagegarbage\r\n")
		}, []string{"421 4.4.2"}},
		{"PROXY spoof (untrusted)", "20 clients claiming 192.0.2.66", "127.0.8.1", 20, func(_ int, c net.Conn) {
			time.Sleep(50 * time.Millisecond)
			_, _ = c.Write(spoof)
			line(c, "EHLO spoof.example.net\r\nMAIL FROM:<>\r\nRCPT TO:<x@trap.blowback.test>\r\nDATA\r\n"+testDSN+".\r\n")
		}, []string{"421 4.7.0"}},
		{"connection churn", "200 connect-and-quit from one address", "127.0.10.1", 200, func(_ int, c net.Conn) {
			line(c, "QUIT\r\n")
		}, []string{"221 2.0.0", "421 4.7.0"}},
	}

	// Legitimate senders during all of it: direct, and through a trusted proxy.
	var acked, legitFail atomic.Int64
	var legitErrs tally.Counter
	legit := func(local string, proxy []byte, n int) {
		cl, err := (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}).Dial("tcp", addr)
		if err != nil {
			legitFail.Add(int64(n))
			legitErrs.Add("dial: " + err.Error())
			return
		}
		defer cl.Close()
		_ = cl.SetDeadline(time.Now().Add(30 * time.Second))
		r := bufio.NewReader(cl)
		reply := func() string {
			for {
				l, err := r.ReadString('\n')
				if err != nil || len(l) < 4 || l[3] != '-' {
					return strings.TrimRight(l, "\r\n")
				}
			}
		}
		if proxy != nil {
			_, _ = cl.Write(proxy)
		}
		reply()
		line(cl, "EHLO mx.legit.example\r\n")
		reply()
		for range n {
			line(cl, "MAIL FROM:<>\r\nRCPT TO:<x@trap.blowback.test>\r\nDATA\r\n")
			reply()
			reply()
			reply()
			line(cl, testDSN+".\r\n")
			if got := reply(); strings.HasPrefix(got, "250") {
				acked.Add(1)
			} else {
				legitFail.Add(1)
				legitErrs.Add(got)
			}
		}
		line(cl, "QUIT\r\n")
		reply()
	}

	var wg sync.WaitGroup
	results := make([]tally.Counter, len(scenarios))
	start := time.Now()
	for si, sc := range scenarios {
		for i := range sc.n {
			from := sc.from
			if strings.Contains(from, "%d") {
				from = fmt.Sprintf(from, 1+i%10)
			}
			wg.Go(func() {
				var w func(net.Conn)
				if sc.write != nil {
					w = func(c net.Conn) { sc.write(i, c) }
				}
				results[si].Add(hostile(addr, from, w))
			})
		}
	}
	time.Sleep(200 * time.Millisecond) // let the flood take its slots first
	const legitConns, legitEach = 10, 20
	for range legitConns {
		wg.Go(func() { legit("127.0.0.1", nil, legitEach) })
	}
	proxied := appendProxyV2(nil, proxyHeader{Src: netip.MustParseAddrPort("198.51.100.9:2525"), Dst: netip.MustParseAddrPort("198.51.100.1:25")}, nil)
	wg.Go(func() { legit("127.0.9.1", proxied, legitEach) })
	wg.Wait()
	elapsed := time.Since(start)
	close(stopSample)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Stop(ctx); err != nil {
		t.Errorf("stop: %v", err)
	}

	// Acknowledged vs stored.
	stored, spoofed, proxiedSeen := 0, 0, 0
	if err := st.ScanRefs(context.Background(), func(r store.Ref) error {
		stored++
		switch r.Addr {
		case netip.MustParseAddr("192.0.2.66"):
			spoofed++
		case netip.MustParseAddr("198.51.100.9"):
			proxiedSeen++
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	var table strings.Builder
	fmt.Fprintf(&table, "\n%-24s | %-50s | %s\n", "scenario", "load", "how the server ended each session")
	for si, sc := range scenarios {
		fmt.Fprintf(&table, "%-24s | %-50s | %s\n", sc.name, sc.load, results[si].String())
		for k, n := range results[si].Counts() {
			if !slices.Contains(sc.want, k) {
				t.Errorf("%s: %d sessions ended %q, want one of %q", sc.name, n, k, sc.want)
			}
		}
	}
	total := (legitConns + 1) * legitEach
	fmt.Fprintf(&table, "%-24s | %-50s | %d acknowledged (250), %d refused, %d stored; %s\n", "legitimate senders",
		fmt.Sprintf("%d bounces over %d sessions (1 via trusted PROXY)", total, legitConns+1), acked.Load(), legitFail.Load(), stored, legitErrs.String())
	fmt.Fprintf(&table, "%-24s | %s\n", "run", fmt.Sprintf("%v wall; peak heap in use %.1f MiB (%.1f MiB before the load); panics %v; limit hits: %s", elapsed.Round(10*time.Millisecond),
		float64(peakHeap.Load())/(1<<20), float64(ms0.HeapInuse)/(1<<20), panics(s, "trap")+panics(s, "go-smtp"), limitSummary(s)))
	t.Log(table.String())

	if int(acked.Load()) != total || legitFail.Load() != 0 {
		t.Errorf("legitimate senders: %d of %d acknowledged (%s)", acked.Load(), total, legitErrs.String())
	}
	if stored != int(acked.Load()) {
		t.Errorf("%d acknowledged, %d stored", acked.Load(), stored)
	}
	if spoofed != 0 || proxiedSeen != legitEach {
		t.Errorf("evidence: %d for the spoofed PROXY address (want 0), %d for the trusted proxy's client (want %d)", spoofed, proxiedSeen, legitEach)
	}
	noPanics(t, s)
	// Goroutines come back once everything is closed.
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > baseGoroutines+5 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > baseGoroutines+5 {
		buf := make([]byte, 1<<16)
		t.Errorf("%d goroutines after stop, %d before:\n%s", n, baseGoroutines, buf[:runtime.Stack(buf, true)])
	}
}

func limitSummary(s *Server) string {
	var parts []string
	for _, l := range allLimits {
		if n := limitHits(s, l); n > 0 {
			parts = append(parts, fmt.Sprintf("%s=%v", l, n))
		}
	}
	return strings.Join(parts, " ")
}
