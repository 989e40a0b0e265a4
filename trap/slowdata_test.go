package trap

import (
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestSlowDataFreesSlots (issue 13, item 4): senders inside DATA that
// trickle a byte now and then, or stall, must not hold their slots until
// DataTimeout. Inside a transfer every read waits at most the idle timeout
// (the short StressReadTimeout under stress), and the transfer must keep
// DataMinRate; each such session ends with 421 4.4.2 and a legitimate
// sender is served at once.
//
// Before: DATA had one deadline (DataTimeout, here a minute) for the whole
// transfer, so each of these sessions held its slot for a minute.
func TestSlowDataFreesSlots(t *testing.T) {
	// The last stalled sender enters DATA under stress: it meets the short
	// idle timeout before the rate window ends; the others meet the rate.
	s := startTrap(t, Config{MaxConns: 8, MaxConnsPerIP: 8, ReadTimeout: 30 * time.Second, StressReadTimeout: 300 * time.Millisecond,
		DataTimeout: time.Minute, SessionTimeout: time.Minute,
		DataMinRate: 100, DataRateWindow: 2 * time.Second, DataRateGrace: 2 * time.Second}, nil)
	const n = 6 // 6 of 8 slots: stressed
	var wg sync.WaitGroup
	got := make([]string, n)
	for i := range n {
		cl := dialFrom(t, s.Addr().String(), fmt.Sprintf("127.0.20.%d", i+1))
		if g := cl.reply(); !strings.HasPrefix(g, "220 ") {
			t.Fatalf("greeting %d: %q", i, g)
		}
		cl.want("EHLO slow.example.net", "250")
		cl.want("MAIL FROM:<>", "250")
		cl.want("RCPT TO:<x@trap.blowback.test>", "250")
		cl.want("DATA", "354")
		stop := make(chan struct{})
		wg.Go(func() {
			defer close(stop)
			got[i] = cl.drain()
		})
		if i%2 == 0 {
			// Trickle one byte every 100ms (10 B/s) until the server closes.
			wg.Go(func() {
				for _, b := range []byte(testDSN) {
					select {
					case <-stop:
						return
					case <-time.After(100 * time.Millisecond):
					}
					if _, err := cl.c.Write([]byte{b}); err != nil {
						return
					}
				}
			})
		}
		// Odd ones stall: nothing after DATA.
	}
	wg.Wait()
	for i, g := range got {
		if !strings.HasPrefix(g, "421 4.4.2") {
			t.Errorf("slow sender %d: last reply %q, want 421 4.4.2 (the server closes it)", i, g)
		}
	}
	if limitHits(s, limitDataRate) < 1 || limitHits(s, limitIdle) < 1 {
		t.Errorf("limit hits: data_rate=%v idle_timeout=%v, want both", limitHits(s, limitDataRate), limitHits(s, limitIdle))
	}
	waitIdle(t, s)
	cl := dial(t, s)
	cl.want("EHLO mx.legit.example", "250")
	if g := cl.message("", "x@trap.blowback.test", testDSN); !strings.HasPrefix(g, "250") {
		t.Fatalf("legitimate sender after the slow ones: %q", g)
	}
	noPanics(t, s)
}

// A fast transfer is never cut by the rate check, and a transfer that
// starts fast and then trickles is (the rate is over a window, not the
// average since the start).
func TestDataRateWindow(t *testing.T) {
	s := startTrap(t, Config{ReadTimeout: 30 * time.Second, DataTimeout: time.Minute, SessionTimeout: time.Minute,
		DataMinRate: 100, DataRateWindow: 300 * time.Millisecond, DataRateGrace: 300 * time.Millisecond}, nil)
	cl := dial(t, s)
	cl.want("EHLO fast.example.net", "250")
	if g := cl.message("", "x@trap.blowback.test", testDSN+strings.Repeat("filler line\r\n", 5000)); !strings.HasPrefix(g, "250") {
		t.Fatalf("fast transfer: %q", g)
	}
	cl.want("MAIL FROM:<>", "250")
	cl.want("RCPT TO:<x@trap.blowback.test>", "250")
	cl.want("DATA", "354")
	cl.send(testDSN + strings.Repeat("filler line\r\n", 5000)) // 65 KB at once: far above the rate on average
	if g := cl.trickle(); !strings.HasPrefix(g, "421 4.4.2") {
		t.Fatalf("fast start then trickle: %q, want 421 4.4.2", g)
	}
	if limitHits(s, limitDataRate) < 1 {
		t.Errorf("data_rate limit not counted")
	}
}

// TestPrefixCaps (issue 13, item 4): per-client caps hold against a sender
// with many addresses in one IPv4 /24 or one IPv6 /48 (each /64 is its own
// client). The IPv6 clients come through a trusted PROXY, as behind a load
// balancer.
func TestPrefixCaps(t *testing.T) {
	open := func(t *testing.T, s *Server, local string, proxy []byte) *client {
		t.Helper()
		cl := dialFrom(t, s.Addr().String(), local)
		if proxy != nil {
			cl.send(string(proxy))
		}
		cl.gr = cl.reply()
		return cl
	}
	dst := netip.MustParseAddrPort("[2001:db8:ffff::1]:25")
	v6 := func(src string) []byte {
		return appendProxyV2(nil, proxyHeader{Src: netip.AddrPortFrom(netip.MustParseAddr(src), 4000), Dst: dst}, nil)
	}
	t.Run("IPv4 /24", func(t *testing.T) {
		s := startTrap(t, Config{MaxConnsPerIP: 2, MaxConnsPer24: 4}, nil)
		for _, a := range []string{"127.0.30.1", "127.0.30.1", "127.0.30.2", "127.0.30.2"} {
			if cl := open(t, s, a, nil); !strings.HasPrefix(cl.gr, "220 ") {
				t.Fatalf("%s: %q", a, cl.gr)
			}
		}
		if cl := open(t, s, "127.0.30.3", nil); !strings.HasPrefix(cl.gr, "421 4.7.0") {
			t.Fatalf("fifth connection from the /24: %q, want 421 4.7.0", cl.gr)
		}
		if limitHits(s, limitConnsPer24) < 1 {
			t.Error("conns_per_24 not counted")
		}
		if cl := open(t, s, "127.0.31.1", nil); !strings.HasPrefix(cl.gr, "220 ") {
			t.Fatalf("another /24: %q", cl.gr)
		}
	})
	t.Run("IPv6 /48 through PROXY", func(t *testing.T) {
		s := startTrap(t, Config{MaxConnsPerIP: 2, MaxConnsPer48: 4,
			ProxyTrusted: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}, nil)
		for i := range 4 {
			src := fmt.Sprintf("2001:db8:1:%x::1", i+1) // four /64s of one /48
			if cl := open(t, s, "127.0.32.1", v6(src)); !strings.HasPrefix(cl.gr, "220 ") {
				t.Fatalf("%s: %q", src, cl.gr)
			}
		}
		if cl := open(t, s, "127.0.32.1", v6("2001:db8:1:ffff::1")); !strings.HasPrefix(cl.gr, "421 4.7.0") {
			t.Fatalf("fifth /64 of the /48: %q, want 421 4.7.0", cl.gr)
		}
		if limitHits(s, limitConnsPer48) < 1 {
			t.Error("conns_per_48 not counted")
		}
		if cl := open(t, s, "127.0.32.1", v6("2001:db8:2::1")); !strings.HasPrefix(cl.gr, "220 ") {
			t.Fatalf("another /48: %q", cl.gr)
		}
		if n := s.lim.prefixCount(clientUnit(netip.MustParseAddr("2001:db8:1::9"))); n != 4 {
			t.Errorf("open in the /48: %d, want 4", n)
		}
	})
}

// The rest of a refused (too big) message is still read under the transfer
// rules: a sender that trickles it is cut, one that sends it at once gets
// 552 and goes on.
func TestDataRateAfterRefusal(t *testing.T) {
	s := startTrap(t, Config{ReadTimeout: 30 * time.Second, DataTimeout: time.Minute, SessionTimeout: time.Minute,
		MaxMessageBytes: 1000, DataMinRate: 100, DataRateWindow: 300 * time.Millisecond, DataRateGrace: 300 * time.Millisecond}, nil)
	cl := dial(t, s)
	cl.want("EHLO big.example.net", "250")
	if g := cl.message("", "x@trap.blowback.test", strings.Repeat("0123456789\r\n", 200)); !strings.HasPrefix(g, "552 5.3.4") {
		t.Fatalf("oversize sent at once: %q", g)
	}
	cl.want("NOOP", "250")
	cl.want("MAIL FROM:<>", "250")
	cl.want("RCPT TO:<x@trap.blowback.test>", "250")
	cl.want("DATA", "354")
	cl.send(strings.Repeat("0123456789\r\n", 200)) // past the limit: the rest is discarded
	if g := cl.trickle(); !strings.HasPrefix(g, "421 4.4.2") {
		t.Fatalf("refused message trickled on: %q, want 421 4.4.2", g)
	}
}

// BDAT (RFC 3030): chunks are a transfer too. A chunk trickled below the
// rate is cut; chunked delivery works; after a transaction ends with RSET
// the next command is not under the transfer rules (a pause longer than a
// rate window is fine).
func TestBDATTransfer(t *testing.T) {
	cfg := Config{ReadTimeout: 30 * time.Second, DataTimeout: time.Minute, SessionTimeout: time.Minute,
		DataMinRate: 100, DataRateWindow: 300 * time.Millisecond, DataRateGrace: 300 * time.Millisecond}
	t.Run("chunked delivery, then RSET and a pause", func(t *testing.T) {
		sink := &FakeSink{}
		s := startTrap(t, cfg, sink)
		cl := dial(t, s)
		cl.want("EHLO chunk.example.net", "250")
		cl.want("MAIL FROM:<>", "250")
		cl.want("RCPT TO:<x@trap.blowback.test>", "250")
		chunk := func(data string, last bool) {
			t.Helper()
			cmd := fmt.Sprintf("BDAT %d", len(data))
			if last {
				cmd += " LAST"
			}
			cl.send(cmd + "\r\n" + data)
			if g := cl.reply(); !strings.HasPrefix(g, "250") {
				t.Fatalf("%s: %q", cmd, g)
			}
		}
		half := len(testDSN) / 2
		chunk(testDSN[:half], false)
		chunk(testDSN[half:], true)
		waitEvents(t, sink, 1)
		cl.want("MAIL FROM:<>", "250")
		cl.want("RCPT TO:<x@trap.blowback.test>", "250")
		chunk("abcde", false)
		cl.want("RSET", "250")
		time.Sleep(3 * cfg.DataRateWindow) // not a transfer any more
		cl.want("NOOP", "250")
		noPanics(t, s)
	})
	t.Run("trickled chunk", func(t *testing.T) {
		s := startTrap(t, cfg, nil)
		cl := dial(t, s)
		cl.want("EHLO chunk.example.net", "250")
		cl.want("MAIL FROM:<>", "250")
		cl.want("RCPT TO:<x@trap.blowback.test>", "250")
		cl.send("BDAT 100000 LAST\r\n")
		if g := cl.trickle(); !strings.HasPrefix(g, "421 4.4.2") {
			t.Fatalf("trickled BDAT chunk: %q, want 421 4.4.2", g)
		}
	})
}
