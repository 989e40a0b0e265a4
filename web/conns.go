package web

import (
	"crypto/tls"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"
)

// Connection caps (issue 13.5): without them ~20k idle keep-alive
// connections from one client exhaust the process's file descriptors and
// take SMTP and DNS down with HTTP. The listener counts open connections
// overall and per client (an IPv4 /24 — one host or a small hosting
// block; an IPv6 /64 — one subscriber), and the server's ConnState hook
// tells it which are idle (between requests, or accepted and silent).
//
// At a cap a new connection first takes the place of the longest-idle
// connection (of the same client at the per-client cap, of anyone at the
// overall cap); with none idle it is answered 503 and closed. Under
// pressure (over three quarters of the overall cap) every connection idle
// longer than ShortIdle is closed as new ones arrive: the idle timeout
// shrinks from IdleTimeout to ShortIdle. Trusted proxies are counted only
// against the overall cap.
//
// Knot's and NSD's tcp-max-clients, Postfix's anvil: the same idea.

// Defaults of the connection caps.
const (
	DefaultMaxConns          = 2048
	DefaultMaxConnsPerClient = 64
	DefaultIdleTimeout       = 120 * time.Second
	DefaultShortIdle         = 5 * time.Second
)

type connLimiter struct {
	max, perClient int
	shortIdle      time.Duration
	exempt         func(netip.Addr) bool
	now            func() time.Time
	onRefuse       func(reason string)
	plain          bool // not TLS: a refused connection gets a 503 line

	mu       sync.Mutex
	admitted uint64 // connections admitted so far
	total    int
	per      map[netip.Prefix]int
	conns    map[*limConn]struct{}
}

type limConn struct {
	net.Conn
	l    *connLimiter
	key  netip.Prefix // invalid: exempt from the per-client cap
	once sync.Once
	// idleSince is when the connection went idle (accepted, or between
	// requests); zero while a request is being served. Guarded by l.mu.
	idleSince time.Time
}

func (c *limConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.release(c) })
	return err
}

// clientKey is the per-client key of a: its IPv4 /24 or IPv6 /64.
func clientKey(a netip.Addr) netip.Prefix { return maskTo(a, 24, 64) }

// maskTo is a's IPv4 /bits4 or IPv6 /bits6 (an IPv4-mapped address counts
// as IPv4).
func maskTo(a netip.Addr, bits4, bits6 int) netip.Prefix {
	a = a.Unmap()
	bits := bits6
	if a.Is4() {
		bits = bits4
	}
	p, _ := a.Prefix(bits)
	return p
}

func newConnLimiter(max, perClient int, shortIdle time.Duration, exempt func(netip.Addr) bool) *connLimiter {
	return &connLimiter{max: max, perClient: perClient, shortIdle: shortIdle, exempt: exempt, now: time.Now,
		per: map[netip.Prefix]int{}, conns: map[*limConn]struct{}{}}
}

// admit registers a new connection from addr, evicting idle ones as
// needed; it returns nil when the connection must be refused.
func (l *connLimiter) admit(c net.Conn) *limConn {
	lc := &limConn{Conn: c, l: l}
	if ap, err := netip.ParseAddrPort(c.RemoteAddr().String()); err == nil && (l.exempt == nil || !l.exempt(ap.Addr().Unmap())) {
		lc.key = clientKey(ap.Addr())
	}
	var evict []*limConn
	defer func() {
		for _, v := range evict {
			v.Conn.Close() // the server sees the close and lets go; release runs from our Close
			v.once.Do(func() { l.release(v) })
		}
	}()
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if l.total >= l.max*3/4 {
		// Under pressure: the idle timeout shrinks to shortIdle.
		for v := range l.conns {
			if !v.idleSince.IsZero() && now.Sub(v.idleSince) >= l.shortIdle {
				evict = append(evict, v)
				l.forgetLocked(v)
			}
		}
	}
	if lc.key.IsValid() && l.per[lc.key] >= l.perClient {
		v := l.oldestIdleLocked(func(v *limConn) bool { return v.key == lc.key })
		if v == nil {
			return l.refuseLocked("per_client")
		}
		evict = append(evict, v)
		l.forgetLocked(v)
	}
	if l.total >= l.max {
		v := l.oldestIdleLocked(nil)
		if v == nil {
			return l.refuseLocked("total")
		}
		evict = append(evict, v)
		l.forgetLocked(v)
	}
	lc.idleSince = now
	l.admitted++
	l.conns[lc] = struct{}{}
	l.total++
	if lc.key.IsValid() {
		l.per[lc.key]++
	}
	return lc
}

func (l *connLimiter) refuseLocked(reason string) *limConn {
	if l.onRefuse != nil {
		l.onRefuse(reason)
	}
	return nil
}

func (l *connLimiter) oldestIdleLocked(match func(*limConn) bool) *limConn {
	var best *limConn
	for v := range l.conns {
		if v.idleSince.IsZero() || (match != nil && !match(v)) {
			continue
		}
		if best == nil || v.idleSince.Before(best.idleSince) {
			best = v
		}
	}
	return best
}

// forgetLocked removes v from the counts (once: release is then a no-op).
func (l *connLimiter) forgetLocked(v *limConn) {
	if _, ok := l.conns[v]; !ok {
		return
	}
	delete(l.conns, v)
	l.total--
	if v.key.IsValid() {
		if l.per[v.key]--; l.per[v.key] <= 0 {
			delete(l.per, v.key)
		}
	}
}

func (l *connLimiter) release(v *limConn) {
	l.mu.Lock()
	l.forgetLocked(v)
	l.mu.Unlock()
}

// connState is the http.Server's ConnState hook: it tracks idleness.
func (l *connLimiter) connState(c net.Conn, st http.ConnState) {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	lc, ok := c.(*limConn)
	if !ok {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, open := l.conns[lc]; !open {
		return
	}
	switch st {
	case http.StateActive:
		lc.idleSince = time.Time{}
	case http.StateIdle:
		lc.idleSince = l.now()
	}
}

// open returns the open connections, overall and of the busiest client.
func (l *connLimiter) open() (total, maxPerClient int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, n := range l.per {
		maxPerClient = max(maxPerClient, n)
	}
	return l.total, maxPerClient
}

// limitListener applies a connLimiter to accepted connections.
type limitListener struct {
	net.Listener
	l *connLimiter
}

// refused503 is what a refused plain-HTTP connection reads before the close.
var refused503 = func() []byte {
	body := `{"error": "too many connections; try again later"}` + "\n"
	return []byte("HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nConnection: close\r\nRetry-After: 10\r\n" +
		"Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body)
}()

func (ll *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := ll.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if lc := ll.l.admit(c); lc != nil {
			return lc, nil
		}
		if ll.l.plain {
			c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
			c.Write(refused503)
		}
		c.Close()
	}
}
