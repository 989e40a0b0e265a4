package web

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/blowback-dnsbl/blowback/internal/testenv"
)

// dialFrom opens a TCP connection to addr from the loopback address src
// (all of 127.0.0.0/8 is on lo on Linux).
func dialFrom(t *testing.T, src, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 10 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial from %s: %v", src, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// closedByServer waits until the server closes c (or answers and closes);
// the deadline is a safety net, not a measurement.
func closedByServer(c net.Conn) (string, bool) {
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	b, err := io.ReadAll(c)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		return string(b), false
	}
	return string(b), true
}

// get does one GET on a fresh connection from src and returns the status.
func getFrom(t *testing.T, src, addr, path string) int {
	t.Helper()
	c := dialFrom(t, src, addr)
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", path)
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("GET %s from %s: %v", path, src, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestConnectionCaps (13.5), over real sockets: one client cannot hold
// more than its share of connections, idle connections make room for new
// ones, connections busy in requests at the cap get 503, and under
// pressure idle connections are closed after the short idle timeout.
func TestConnectionCaps(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.MaxConns, c.MaxConnsPerClient, c.ShortIdle = 40, 10, 5*time.Second })
	clock := testenv.NewManualClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	e.srv.conns.mu.Lock()
	e.srv.conns.now = clock.Now
	e.srv.conns.mu.Unlock()
	addr := e.srv.Addr().String()
	open := func() (int, int) { return e.srv.conns.open() }

	// 1. One client (127.0.3.0/24) opens 25 silent connections: it never
	// holds more than 10; each new one replaces its oldest idle one.
	var att []net.Conn
	for i := range 25 {
		clock.Add(time.Millisecond)
		att = append(att, dialFrom(t, fmt.Sprintf("127.0.3.%d", 1+i%5), addr))
		testenv.Eventually(t, "admission", func() bool {
			e.srv.conns.mu.Lock()
			defer e.srv.conns.mu.Unlock()
			return e.srv.conns.admitted == uint64(i+1)
		})
		if _, per := open(); per > 10 {
			t.Fatalf("client holds %d connections", per)
		}
	}
	for i, c := range att[:15] {
		if _, closed := closedByServer(c); !closed {
			t.Fatalf("connection %d of the flood still open", i)
		}
	}
	// Another client is served meanwhile.
	if code := getFrom(t, "127.0.4.1", addr, "/healthz"); code != 200 {
		t.Fatalf("other client: %d", code)
	}

	// 2. Ten connections of one client busy inside a request (a POST
	// whose body never comes): an eleventh from it gets 503 and is closed.
	busy := "127.0.5.1"
	for range 10 {
		c := dialFrom(t, busy, addr)
		fmt.Fprintf(c, "POST /api/v1/delist HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
	}
	testenv.Eventually(t, "busy connections", func() bool {
		e.srv.conns.mu.Lock()
		defer e.srv.conns.mu.Unlock()
		n := 0
		for c := range e.srv.conns.conns {
			if c.key == clientKey(mustAddr(busy)) && c.idleSince.IsZero() {
				n++
			}
		}
		return n == 10
	})
	c := dialFrom(t, busy, addr)
	got, closed := closedByServer(c)
	if !closed || !strings.HasPrefix(got, "HTTP/1.1 503") {
		t.Errorf("eleventh busy connection: closed %v, read %q", closed, got)
	}
	if n := testutilCount(e.reg, "blowback_http_connections_refused_total"); n != 1 {
		t.Errorf("refused counted %v, want 1", n)
	}

	// Connections that send nothing meet ReadHeaderTimeout, busy ones
	// ReadTimeout, on a slow machine within this test: close them now.
	e.srv.conns.mu.Lock()
	for c := range e.srv.conns.conns {
		c.Conn.Close()
	}
	e.srv.conns.mu.Unlock()
	testenv.Eventually(t, "all closed", func() bool { n, _ := open(); return n == 0 })

	// 3. Pressure: 31 keep-alive connections idle between requests (the
	// overall cap is 40, pressure from 30); after the short idle timeout
	// the next connection closes every connection idle that long.
	var idle []net.Conn
	for i := range 31 {
		c := dialFrom(t, fmt.Sprintf("127.0.%d.1", 10+i/10), addr)
		fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
		c.SetReadDeadline(time.Now().Add(20 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("keep-alive request %d: %v", i, err)
		}
		resp.Body.Close()
		idle = append(idle, c)
	}
	testenv.Eventually(t, "idle connections", func() bool {
		e.srv.conns.mu.Lock()
		defer e.srv.conns.mu.Unlock()
		n := 0
		for c := range e.srv.conns.conns {
			if !c.idleSince.IsZero() {
				n++
			}
		}
		return n == 31
	})
	clock.Add(6 * time.Second)
	if code := getFrom(t, "127.0.20.1", addr, "/healthz"); code != 200 {
		t.Fatalf("client under pressure: %d", code)
	}
	for i, c := range idle {
		if _, closed := closedByServer(c); !closed {
			t.Fatalf("idle connection %d survived the short idle timeout under pressure", i)
		}
	}
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }
