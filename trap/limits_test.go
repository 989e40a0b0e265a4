package trap

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/blowback-dnsbl/blowback/internal/testenv"
)

// Each limit is driven over a real socket: the client sees a clear reply,
// the limit's counter moves, and the server keeps serving others.
func TestLimits(t *testing.T) {
	type tc struct {
		name  string
		cfg   Config
		run   func(t *testing.T, s *Server) string // returns the reply that shows the limit
		want  string
		limit string
	}
	ehlo := func(t *testing.T, s *Server) *client {
		t.Helper()
		cl := dial(t, s)
		cl.want("EHLO mx.example.net", "250")
		return cl
	}
	for _, c := range []tc{
		{"SIZE over the limit at MAIL", Config{MaxMessageBytes: 1000}, func(t *testing.T, s *Server) string {
			return ehlo(t, s).cmd("MAIL FROM:<> SIZE=1001")
		}, "552 5.3.4", ""},
		{"message over the limit", Config{MaxMessageBytes: 1000}, func(t *testing.T, s *Server) string {
			return ehlo(t, s).message("", "a@trap.blowback.test", strings.Repeat("0123456789\r\n", 100))
		}, "552 5.3.4", limitMessageSize},
		{"command line too long", Config{MaxLineLength: 100}, func(t *testing.T, s *Server) string {
			cl := ehlo(t, s)
			cl.send("MAIL FROM:<" + strings.Repeat("a", 200) + "@example.com>\r\n")
			return cl.drain()
		}, "500 5.4.0", ""},
		{"text line too long in DATA", Config{MaxLineLength: 100}, func(t *testing.T, s *Server) string {
			cl := ehlo(t, s)
			cl.want("MAIL FROM:<>", "250")
			cl.want("RCPT TO:<a@trap.blowback.test>", "250")
			cl.want("DATA", "354")
			cl.send(strings.Repeat("x", 300) + "\r\n.\r\n")
			return cl.reply()
		}, "500 5.5.2", limitLineLength},
		{"endless line of binary junk", Config{MaxLineLength: 1000}, func(t *testing.T, s *Server) string {
			cl := dial(t, s)
			junk := make([]byte, 5000)
			for i := range junk {
				junk[i] = byte(i*7 + 1)
				if junk[i] == '\n' {
					junk[i] = 0
				}
			}
			cl.send(string(junk))
			return cl.drain()
		}, "500 5.4.0", ""},
		{"binary junk lines", Config{}, func(t *testing.T, s *Server) string {
			cl := dial(t, s)
			cl.send("\x00\x01\x02\xff\r\n\x16\x03\x01\x00\r\nGET / HTTP/1.1\r\nzzzz\r\nyyyy\r\n")
			return cl.drain()
		}, "500 5.5.1", ""}, // go-smtp closes after its 3 protocol errors
		{"too many recipients", Config{MaxRecipients: 2}, func(t *testing.T, s *Server) string {
			cl := ehlo(t, s)
			cl.want("MAIL FROM:<>", "250")
			cl.want("RCPT TO:<a@trap.blowback.test>", "250")
			cl.want("RCPT TO:<b@trap.blowback.test>", "250")
			return cl.cmd("RCPT TO:<c@trap.blowback.test>")
		}, "452 4.5.3", limitRecipients},
		{"slowloris: partial command then silence", Config{ReadTimeout: 200 * time.Millisecond}, func(t *testing.T, s *Server) string {
			cl := dial(t, s)
			cl.send("EHLO slow")
			// textproto hands the partial line over at the timeout (bufio
			// ReadLine); the next wait for a command then times out.
			return cl.drain()
		}, "421 4.4.2", limitIdle},
		{"slow DATA hits the data timeout", Config{DataTimeout: 200 * time.Millisecond}, func(t *testing.T, s *Server) string {
			cl := ehlo(t, s)
			cl.want("MAIL FROM:<>", "250")
			cl.want("RCPT TO:<a@trap.blowback.test>", "250")
			cl.want("DATA", "354")
			cl.send("Subject: slow\r\n")
			return cl.reply()
		}, "421 4.4.2", limitIdle},
		{"whole-session deadline", Config{SessionTimeout: 300 * time.Millisecond}, func(t *testing.T, s *Server) string {
			// No EHLO round trip first: on a loaded machine it may not
			// finish within the 300ms session. Replies until the limit
			// are 250 (EHLO, then NOOPs).
			cl := dial(t, s)
			cl.send("EHLO mx.example.net\r\n")
			for {
				got := cl.reply()
				if !strings.HasPrefix(got, "250") {
					return got
				}
				time.Sleep(20 * time.Millisecond)
				cl.send("NOOP\r\n")
			}
		}, "421 4.4.2 Session time limit", limitSessionTime},
		{"pipelined command flood", Config{MaxCommands: 10}, func(t *testing.T, s *Server) string {
			cl := ehlo(t, s)
			cl.send(strings.Repeat("NOOP\r\n", 2000))
			return cl.drain()
		}, "421 4.7.0 Too many commands", limitCommands},
		{"too many errors", Config{MaxErrors: 3}, func(t *testing.T, s *Server) string {
			cl := ehlo(t, s)
			cl.want("MAIL FROM:<x@example.com>", "250")
			for {
				got := cl.cmd("RCPT TO:<v@example.com>")
				if !strings.HasPrefix(got, "550") {
					return got + cl.drain()
				}
			}
		}, "421 4.7.0 Too many errors", limitErrors},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := startTrap(t, c.cfg, nil)
			if got := c.run(t, s); !strings.HasPrefix(got, c.want) {
				t.Fatalf("got %q, want %q", got, c.want)
			}
			if c.limit != "" {
				testenv.Eventually(t, "the limit hit counted", func() bool { return limitHits(s, c.limit) >= 1 })
			}
			// Others are unaffected.
			cl := dial(t, s)
			cl.want("EHLO other.example.net", "250")
			noPanics(t, s)
		})
	}
}

// Connection limits: overall, per client, per client rate. Refused clients
// get 421 4.7.0; another client is still served.
func TestConnectionLimits(t *testing.T) {
	open := func(t *testing.T, s *Server, local string, n int) []*client {
		t.Helper()
		var cls []*client
		for range n {
			cl := dialFrom(t, s.Addr().String(), local)
			cl.gr = cl.reply()
			if !strings.HasPrefix(cl.gr, "220 ") {
				t.Fatalf("connection %d from %s: %q", len(cls), local, cl.gr)
			}
			cls = append(cls, cl)
		}
		return cls
	}
	refused := func(t *testing.T, s *Server, local, limit string) {
		t.Helper()
		cl := dialFrom(t, s.Addr().String(), local)
		if got := cl.reply(); !strings.HasPrefix(got, "421 4.7.0") {
			t.Fatalf("over %s from %s: %q", limit, local, got)
		}
		if got := cl.reply(); got != "EOF" {
			t.Fatalf("connection not closed after 421: %q", got)
		}
		if n := limitHits(s, limit); n < 1 {
			t.Errorf("limit_hits{%s} = %v", limit, n)
		}
	}
	t.Run("overall", func(t *testing.T) {
		s := startTrap(t, Config{MaxConns: 5, MaxConnsPerIP: 100}, nil)
		open(t, s, "127.0.0.1", 3)
		open(t, s, "127.0.0.2", 2)
		refused(t, s, "127.0.0.3", limitConns)
	})
	t.Run("per client", func(t *testing.T) {
		s := startTrap(t, Config{MaxConnsPerIP: 3}, nil)
		held := open(t, s, "127.0.0.1", 3)
		refused(t, s, "127.0.0.1", limitConnsPerIP)
		open(t, s, "127.0.0.2", 1)
		// A slot comes back when a connection ends.
		held[0].want("QUIT", "221")
		testenv.Eventually(t, "two connections from 127.0.0.1 held", func() bool { _, n := s.lim.counts(netip.MustParseAddr("127.0.0.1")); return n == 2 })
		open(t, s, "127.0.0.1", 1)
	})
	t.Run("per client rate", func(t *testing.T) {
		s := startTrap(t, Config{ConnRatePerIP: 1, ConnBurst: 3}, nil)
		for _, cl := range open(t, s, "127.0.0.1", 3) {
			cl.want("QUIT", "221")
		}
		refused(t, s, "127.0.0.1", limitConnRate)
		open(t, s, "127.0.0.2", 1)
	})
	t.Run("thousands of idle connections", func(t *testing.T) {
		if testing.Short() {
			t.Skip("-short")
		}
		const max = 1000
		s := startTrap(t, Config{MaxConns: max, MaxConnsPerIP: max, ConnRatePerIP: -1}, nil)
		open(t, s, "127.0.0.1", max)
		for range 20 {
			refused(t, s, "127.0.0.2", limitConns)
		}
		if n := value(s.metrics.active); n != max {
			t.Errorf("active = %v, want %d", n, max)
		}
	})
}

// Under stress (3/4 of MaxConns open) a new wait for a command gets the
// short StressReadTimeout: idle floods drain.
func TestStressTimeout(t *testing.T) {
	s := startTrap(t, Config{MaxConns: 4, ReadTimeout: time.Minute, StressReadTimeout: 200 * time.Millisecond}, nil)
	first := dial(t, s)
	dial(t, s)
	third := dial(t, s) // 3 of 4 open: stressed
	if got := third.reply(); !strings.HasPrefix(got, "421 4.4.2") {
		t.Fatalf("idle connection under stress: %q", got)
	}
	testenv.Eventually(t, "two connections held", func() bool { total, _ := s.lim.counts(netip.Addr{}); return total == 2 })
	// Not stressed any more: a command waits the full ReadTimeout again.
	first.want("EHLO mx.example.net", "250")
	first.want("NOOP", "250")
}

func TestLimiterUnit(t *testing.T) {
	now := time.Unix(1e9, 0)
	l := newLimiter(10, 2, 0, 0, 60, 2, func() time.Time { return now })
	a := netip.MustParseAddr("2001:db8::1")
	b := netip.MustParseAddr("2001:db8::ffff") // same /64
	if clientUnit(a) != clientUnit(b) || clientUnit(a) == clientUnit(netip.MustParseAddr("2001:db8:0:1::1")) {
		t.Fatal("IPv6 clients are /64s")
	}
	u := clientUnit(a)
	steps := []struct {
		advance time.Duration
		release bool
		want    string
	}{
		{0, false, ""}, {0, false, ""}, {0, false, limitConnsPerIP}, // two open: per-client limit
		{0, true, limitConnRate},      // a slot back, but the burst is spent
		{time.Second, false, ""},      // one token per second
		{0, true, limitConnRate},      //
		{10 * time.Second, false, ""}, // refilled to the burst
		{0, true, ""},                 //
		{0, true, limitConnRate},      //
		{500 * time.Millisecond, true, limitConnRate},
	}
	for i, st := range steps {
		now = now.Add(st.advance)
		if st.release {
			l.releaseClient(u)
		}
		if got := l.acquireClient(u); got != st.want {
			t.Fatalf("step %d: %q, want %q", i, got, st.want)
		}
	}
}
