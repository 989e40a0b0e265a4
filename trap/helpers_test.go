package trap

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/blowback-dnsbl/blowback/internal/testenv"
	"github.com/blowback-dnsbl/blowback/store"
)

const testDomain = "trap.blowback.test"

// testDSN is a minimal RFC 3464 bounce to a trap address.
const testDSN = "From: MAILER-DAEMON@mx.example.net\r\n" +
	"To: x@trap.blowback.test\r\n" +
	"Subject: Undelivered Mail Returned to Sender\r\n" +
	"Message-ID: <dsn1@mx.example.net>\r\n" +
	"MIME-Version: 1.0\r\n" +
	"Content-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\r\n" +
	"\r\n--B\r\nContent-Type: text/plain\r\n\r\nundeliverable\r\n" +
	"--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.net\r\n\r\n" +
	"Final-Recipient: rfc822; nobody@example.net\r\nAction: failed\r\nStatus: 5.1.1\r\n" +
	"\r\n--B\r\nContent-Type: message/rfc822\r\n\r\nFrom: x@trap.blowback.test\r\nTo: nobody@example.net\r\n" +
	"Subject: hi\r\nMessage-ID: <orig@trap.blowback.test>\r\n\r\nspam\r\n--B--\r\n"

// startTrap runs a trap on 127.0.0.1:0 with cfg (Domains defaulted) and
// stops it at cleanup; it fails the test if any panic was recovered unless
// the test expects panics.
func startTrap(t testing.TB, cfg Config, sink Sink) *Server {
	t.Helper()
	return startTrapLog(t, cfg, sink, nil)
}

func startTrapLog(t testing.TB, cfg Config, sink Sink, log *slog.Logger) *Server {
	t.Helper()
	if cfg.Domains == nil {
		cfg.Domains = []string{testDomain}
	}
	if sink == nil {
		sink = &FakeSink{}
	}
	s := New(cfg, sink, log, prometheus.NewRegistry())
	if err := s.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.Stop(ctx)
	})
	return s
}

// value reads a counter or gauge.
func value(m prometheus.Metric) float64 {
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		panic(err)
	}
	if d.Counter != nil {
		return d.Counter.GetValue()
	}
	return d.Gauge.GetValue()
}

func panics(s *Server, source string) float64 {
	return value(s.metrics.panics.WithLabelValues(source))
}

func noPanics(t *testing.T, s *Server) {
	t.Helper()
	for _, src := range []string{"trap", "go-smtp", panicClassify} {
		if n := panics(s, src); n != 0 {
			t.Errorf("%v panics recovered (%s)", n, src)
		}
	}
}

// prefixCount returns the open connections in unit's /24 or /48.
func (l *limiter) prefixCount(unit netip.Addr) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	pfx, _ := clientPrefix(unit)
	return l.perPrefix[pfx]
}

func limitHits(s *Server, limit string) float64 {
	return value(s.metrics.limitHits.WithLabelValues(limit))
}

// waitIdle waits until every connection of s is closed (and so every
// session's Logout has run).
func waitIdle(t *testing.T, s *Server) {
	t.Helper()
	testenv.Eventually(t, "every connection closed", func() bool { total, _ := s.lim.counts(netip.Addr{}); return total == 0 })
}

// waitEvents waits until sink holds n events and returns them.
func waitEvents(t *testing.T, sink *FakeSink, n int) []*store.Event {
	t.Helper()
	var evs []*store.Event
	testenv.Eventually(t, fmt.Sprintf("%d events", n), func() bool { evs = sink.Snapshot(); return len(evs) >= n })
	return evs
}

// client is a line-level SMTP client for driving the trap by hand.
type client struct {
	t  *testing.T
	c  net.Conn
	r  *bufio.Reader
	gr string // greeting
}

func dialFrom(t *testing.T, addr, local string) *client {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second}
	if local != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(local)}
	}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	return &client{t: t, c: c, r: bufio.NewReader(c)}
}

// dial connects and reads the greeting (or the refusal).
func dial(t *testing.T, s *Server) *client {
	t.Helper()
	cl := dialFrom(t, s.Addr().String(), "")
	cl.gr = cl.reply()
	return cl
}

// reply reads one (possibly multi-line) reply and returns its last line, or
// "EOF" when the server closed.
func (cl *client) reply() string {
	cl.t.Helper()
	for {
		line, err := cl.r.ReadString('\n')
		if err != nil {
			if line != "" {
				return strings.TrimRight(line, "\r\n")
			}
			return "EOF"
		}
		line = strings.TrimRight(line, "\r\n")
		if len(line) < 4 || line[3] != '-' {
			return line
		}
	}
}

func (cl *client) send(s string) {
	cl.t.Helper()
	if _, err := io.WriteString(cl.c, s); err != nil {
		cl.t.Logf("write: %v", err)
	}
}

// cmd sends one command line and returns the reply's last line.
func (cl *client) cmd(line string) string {
	cl.t.Helper()
	cl.send(line + "\r\n")
	return cl.reply()
}

// want sends a command and fails unless the reply starts with prefix.
func (cl *client) want(line, prefix string) string {
	cl.t.Helper()
	got := cl.cmd(line)
	if !strings.HasPrefix(got, prefix) {
		cl.t.Fatalf("%q: got %q, want %q...", line, got, prefix)
	}
	return got
}

// drain reads and discards what the server still sends until it closes
// the connection; the last reply line read is returned.
func (cl *client) drain() (last string) {
	cl.t.Helper()
	for {
		line, err := cl.r.ReadString('\n')
		if line != "" {
			last = strings.TrimRight(line, "\r\n")
		}
		if err != nil {
			return last
		}
	}
}

// trickle writes a byte every 100 ms until the server closes the
// connection, and returns its last reply.
func (cl *client) trickle() string {
	cl.t.Helper()
	done := make(chan string, 1)
	go func() { done <- cl.drain() }()
	for {
		select {
		case g := <-done:
			return g
		case <-time.After(100 * time.Millisecond):
			if _, err := cl.c.Write([]byte("x")); err != nil {
				cl.t.Fatalf("write: %v (closed without a reply?)", err)
			}
		}
	}
}

// message sends a whole transaction with DATA and returns the final reply.
func (cl *client) message(from, rcpt, body string) string {
	cl.t.Helper()
	cl.want("MAIL FROM:<"+from+">", "250")
	cl.want("RCPT TO:<"+rcpt+">", "250")
	cl.want("DATA", "354")
	cl.send(body + ".\r\n")
	return cl.reply()
}
