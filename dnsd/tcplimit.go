package dnsd

import (
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// TCP connection limits (the idea of Knot's tcp-max-clients and NSD's
// tcp-count, per client as Postfix's anvil does it). One client must not
// hold the server's TCP slots: it gets at most MaxTCPConnsPerClient
// connections per network (IPv4 /24, IPv6 /64 by default); a few slots stay
// reserved for the addresses allowed to transfer the zone, so a secondary
// gets its AXFR/IXFR while the rest are busy; each connection lives at most
// TCPLifetime and answers at most MaxTCPQueries queries, and is closed
// after TCPIdle without one (RFC 7766 §6.2.3: servers may close idle
// connections and should manage their resources).

// tcpReject reasons, the label values of blowback_dns_tcp_rejected_total.
const (
	rejectFull      = "max_conns"  // every slot open to this client is taken
	rejectPerClient = "per_client" // the client's network has its share
)

// tcpLimiter is the listener's bookkeeping: open connections in all and
// per client network.
type tcpLimiter struct {
	max, perClient, reserve int
	bits4, bits6            int
	lifetime                time.Duration
	transfer                func(netip.Addr) bool // may transfer: uses the reserve, no per-client cap
	transferOn              func() bool           // some address may transfer
	rejected                *prometheus.CounterVec

	mu   sync.Mutex
	open int
	per  map[netip.Prefix]int
}

func (s *Server) newTCPLimiter() *tcpLimiter {
	c := s.cfg
	return &tcpLimiter{max: c.MaxTCPConns, perClient: c.MaxTCPConnsPerClient, reserve: c.TCPTransferReserve,
		bits4: c.TCPClientPrefix4, bits6: c.TCPClientPrefix6, lifetime: c.TCPLifetime,
		transfer: s.mayTransfer, transferOn: s.transferOn, rejected: s.metrics.tcpRejected, per: map[netip.Prefix]int{}}
}

// clientNet is the network a client's connections are counted under.
func (l *tcpLimiter) clientNet(a netip.Addr) netip.Prefix {
	a = a.Unmap()
	bits := l.bits6
	if a.Is4() {
		bits = l.bits4
	}
	p, _ := a.Prefix(bits)
	return p
}

// acquire takes a slot for a connection from a; false (and why) when it
// may not have one.
func (l *tcpLimiter) acquire(a netip.Addr) (netip.Prefix, bool, string) {
	xfr := a.IsValid() && l.transfer(a)
	key := l.clientNet(a)
	l.mu.Lock()
	defer l.mu.Unlock()
	limit := l.max
	if !xfr && l.transferOn() {
		limit = l.max - l.reserve // the reserve is kept only while someone may transfer
	}
	if l.open >= limit {
		return key, false, rejectFull
	}
	if !xfr && l.per[key] >= l.perClient {
		return key, false, rejectPerClient
	}
	l.open++
	l.per[key]++
	return key, true, ""
}

func (l *tcpLimiter) release(key netip.Prefix) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.open--
	if l.per[key]--; l.per[key] <= 0 {
		delete(l.per, key)
	}
}

// transferOn reports whether any address may transfer the zone.
func (s *Server) transferOn() bool {
	t := s.xfr.p.Load()
	return t != nil && len(t.cfg.Allow) > 0
}

// mayTransfer reports whether a is allowed to transfer the zone.
func (s *Server) mayTransfer(a netip.Addr) bool {
	t := s.xfr.p.Load()
	if t == nil {
		return false
	}
	a = a.Unmap()
	for _, p := range t.cfg.Allow {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// limitListener applies a tcpLimiter at accept: a connection over a limit
// is closed at once.
type limitListener struct {
	net.Listener
	lim *tcpLimiter
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		var a netip.Addr
		if ta, ok := c.RemoteAddr().(*net.TCPAddr); ok {
			a = ta.AddrPort().Addr().Unmap()
		}
		key, ok, why := l.lim.acquire(a)
		if !ok {
			l.lim.rejected.WithLabelValues(why).Inc()
			c.Close()
			continue
		}
		lc := &limitConn{Conn: c, lim: l.lim, key: key}
		if l.lim.lifetime > 0 {
			lc.end = time.Now().Add(l.lim.lifetime)
		}
		return lc, nil
	}
}

// limitConn gives its slot back on Close and ends reads at the end of its
// lifetime: miekg/dns sets a read deadline before each query, and a
// deadline never goes past end, so a connection that keeps asking is closed
// once its time is up (an answer being written, such as a long AXFR,
// finishes first).
type limitConn struct {
	net.Conn
	lim  *tcpLimiter
	key  netip.Prefix
	end  time.Time
	once sync.Once
}

func (c *limitConn) Close() error {
	c.once.Do(func() { c.lim.release(c.key) })
	return c.Conn.Close()
}

func (c *limitConn) cap(t time.Time) time.Time {
	if !c.end.IsZero() && (t.IsZero() || t.After(c.end)) {
		return c.end
	}
	return t
}

func (c *limitConn) SetReadDeadline(t time.Time) error { return c.Conn.SetReadDeadline(c.cap(t)) }

func (c *limitConn) SetDeadline(t time.Time) error {
	if err := c.Conn.SetWriteDeadline(t); err != nil {
		return err
	}
	return c.Conn.SetReadDeadline(c.cap(t))
}
