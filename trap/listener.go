package trap

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"time"
)

// Limit names, the values of the "limit" label of
// blowback_trap_limit_hits_total.
const (
	limitConns          = "conns"            // Config.MaxConns
	limitConnsPerIP     = "conns_per_ip"     // Config.MaxConnsPerIP
	limitConnsPer24     = "conns_per_24"     // Config.MaxConnsPer24 (IPv4 /24)
	limitConnsPer48     = "conns_per_48"     // Config.MaxConnsPer48 (IPv6 /48)
	limitConnRate       = "conn_rate_per_ip" // Config.ConnRatePerIP
	limitProxyHeader    = "proxy_header"     // trusted peer without a valid PROXY header
	limitProxyUntrusted = "proxy_untrusted"  // PROXY header from a peer not in ProxyTrusted
	limitSessionTime    = "session_time"     // Config.SessionTimeout
	limitIdle           = "idle_timeout"     // Config.ReadTimeout / StressReadTimeout / DataTimeout
	limitDataRate       = "data_rate"        // Config.DataMinRate
	limitCommands       = "commands"         // Config.MaxCommands
	limitErrors         = "errors"           // Config.MaxErrors
	limitMessageSize    = "message_size"     // Config.MaxMessageBytes
	limitLineLength     = "line_length"      // Config.MaxLineLength
	limitRecipients     = "recipients"       // Config.MaxRecipients
	limitCallouts       = "callouts"         // Config.MaxCalloutsPerConn: a further callout is counted, not recorded
)

var allLimits = []string{limitConns, limitConnsPerIP, limitConnsPer24, limitConnsPer48, limitConnRate, limitProxyHeader,
	limitProxyUntrusted, limitSessionTime, limitIdle, limitDataRate, limitCommands, limitErrors, limitMessageSize,
	limitLineLength, limitRecipients, limitCallouts}

// listener wraps the TCP listener: it enforces the connection limits, reads
// PROXY headers from trusted peers (in a goroutine per connection, so a slow
// proxy never stalls accepting), and hands go-smtp connections whose
// RemoteAddr is the client the evidence will name.
type listener struct {
	inner net.Listener
	srv   *Server
	lim   *limiter

	ready chan net.Conn
	errc  chan error
	done  chan struct{}
	once  sync.Once
	wg    sync.WaitGroup
}

func newListener(inner net.Listener, s *Server) *listener {
	l := &listener{inner: inner, srv: s, lim: s.lim, ready: make(chan net.Conn), errc: make(chan error, 1), done: make(chan struct{})}
	l.wg.Add(1)
	go l.loop()
	return l
}

// Accept implements net.Listener.
func (l *listener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ready:
		return c, nil
	case err := <-l.errc:
		return nil, err
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Close implements net.Listener.
func (l *listener) Close() error {
	l.once.Do(func() { close(l.done) })
	return l.inner.Close()
}

// Addr implements net.Listener.
func (l *listener) Addr() net.Addr { return l.inner.Addr() }

func (l *listener) loop() {
	defer l.wg.Done()
	defer l.srv.recoverGo("accept")
	var delay time.Duration
	for {
		c, err := l.inner.Accept()
		if err != nil {
			select {
			case <-l.done:
				return
			default:
			}
			var te interface{ Temporary() bool }
			if errors.As(err, &te) && te.Temporary() { // EMFILE and friends: back off, as net/http does
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				l.srv.log.Warn("accept", "err", err, "retry_in", delay)
				time.Sleep(delay)
				continue
			}
			l.errc <- err
			return
		}
		delay = 0
		l.admit(c)
	}
}

func (l *listener) admit(c net.Conn) {
	m := l.srv.metrics
	m.connections.Inc()
	if !l.lim.acquireTotal() {
		l.refuse(c, limitConns, "421 4.7.0 Too many connections, try again later")
		return
	}
	m.active.Inc()
	peer := addrPortOf(c.RemoteAddr())
	tc := &trapConn{Conn: c, l: l, peer: peer, client: peer, local: c.LocalAddr()}
	if !l.srv.trusted(peer.Addr()) {
		tc.checkProxy = true
		l.finish(tc)
		return
	}
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		defer l.srv.recoverGo("proxy")
		if err := tc.readProxy(l.srv.cfg.ProxyHeaderTimeout); err != nil {
			l.srv.log.Info("refused PROXY connection", "err", err, "peer", peer.Addr())
			m.limitHits.WithLabelValues(limitProxyHeader).Inc()
			tc.Close() // no greeting: the proxy broke the protocol
			return
		}
		l.finish(tc)
	}()
}

// finish applies the per-client limits and hands the connection to go-smtp.
func (l *listener) finish(tc *trapConn) {
	tc.unit = clientUnit(tc.client.Addr())
	if lim := l.lim.acquireClient(tc.unit); lim != "" {
		tc.reply(lim, "421 4.7.0 Too many connections from your address, try again later")
		return
	}
	tc.clientHeld = true
	tc.end = time.Now().Add(l.srv.cfg.SessionTimeout)
	_ = tc.Conn.SetDeadline(tc.end)
	select {
	case l.ready <- tc:
	case <-l.done:
		tc.Close()
	}
}

// refuse answers a connection that never got a slot and closes it.
func (l *listener) refuse(c net.Conn, limit, msg string) {
	l.srv.metrics.limitHits.WithLabelValues(limit).Inc()
	_ = c.SetWriteDeadline(time.Now().Add(time.Second))
	_, _ = io.WriteString(c, msg+"\r\n")
	_ = c.Close()
}

func addrPortOf(a net.Addr) netip.AddrPort {
	if ta, ok := a.(*net.TCPAddr); ok {
		ap := ta.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	if ap, err := netip.ParseAddrPort(a.String()); err == nil {
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	return netip.AddrPort{}
}

// trapConn is one client connection. It holds the connection's limiter
// slots, the client address (the PROXY source when the peer is trusted),
// enforces the whole-session deadline by clamping every deadline go-smtp
// sets, and watches the replies go-smtp writes to count commands and errors.
type trapConn struct {
	net.Conn
	l          *listener
	peer       netip.AddrPort // TCP peer
	client     netip.AddrPort // the address evidence names
	local      net.Addr
	proxied    bool
	unit       netip.Addr
	clientHeld bool
	end        time.Time // whole-session deadline
	pre        []byte    // read past the PROXY header
	checkProxy bool      // untrusted peer: a PROXY header in its first bytes is refused

	mu        sync.Mutex
	replies   int     // final replies written after the greeting
	errs      int     // of which 4xx/5xx
	pos       int     // position in the reply line being written
	code      int     // its code so far
	head      [9]byte // its first bytes: "500 5.4.0"
	lastFinal bool
	binary    bool // output is no longer SMTP text (TLS records)
	inData    bool // between a 354 and the final reply to the message
	partial   bool // the bytes read so far end inside a line
	ended     string
	closed    bool
	onceCls   sync.Once

	// The message transfer (DATA, or BDAT chunks), from beginData until
	// go-smtp next arms a command deadline (after endData it still drains
	// what is left of a refused message): every read waits at most the
	// idle timeout (the short one under stress) and the transfer must keep
	// Config.DataMinRate.
	dataOn    bool      // Data is running
	drain     bool      // Data returned; go-smtp may still read the rest
	cmdGen    int       // command deadlines armed by go-smtp (SetReadDeadline calls)
	dataGen   int       // cmdGen when Data began
	cmdDL     time.Time // the read deadline go-smtp last armed (as applied)
	dataStart time.Time
	dataEnd   time.Time // DataTimeout after dataStart
	winStart  time.Time // the rate window being measured
	winBytes  int64

	callouts int // callout events recorded on this connection (over STARTTLS too)
}

// takeCallout counts one callout event of the connection; false past max.
func (c *trapConn) takeCallout(max int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.callouts >= max {
		return false
	}
	c.callouts++
	return true
}

// readProxy reads the PROXY header of a trusted peer.
func (c *trapConn) readProxy(timeout time.Duration) error {
	_ = c.Conn.SetReadDeadline(time.Now().Add(timeout))
	br := bufio.NewReaderSize(c.Conn, 512)
	h, err := readProxyHeader(br)
	if err != nil {
		return err
	}
	if n := br.Buffered(); n > 0 {
		b, _ := br.Peek(n)
		c.pre = append([]byte(nil), b...)
	}
	_ = c.Conn.SetReadDeadline(time.Time{})
	if !h.Local {
		c.client = netip.AddrPortFrom(h.Src.Addr().Unmap(), h.Src.Port())
		c.local = net.TCPAddrFromAddrPort(h.Dst)
		c.proxied = true
	}
	return nil
}

// RemoteAddr is the client: the PROXY source when the peer is trusted.
func (c *trapConn) RemoteAddr() net.Addr { return net.TCPAddrFromAddrPort(c.client) }

// LocalAddr is the address the client connected to.
func (c *trapConn) LocalAddr() net.Addr { return c.local }

func (c *trapConn) clamp(t time.Time) time.Time {
	if c.end.IsZero() || (!t.IsZero() && t.Before(c.end)) {
		return t
	}
	return c.end
}

// SetDeadline and friends keep every deadline within the session's. Under
// stress, read deadlines (go-smtp sets one per command) shrink to
// StressReadTimeout.
func (c *trapConn) SetDeadline(t time.Time) error      { return c.Conn.SetDeadline(c.clamp(t)) }
func (c *trapConn) SetWriteDeadline(t time.Time) error { return c.Conn.SetWriteDeadline(c.clamp(t)) }
func (c *trapConn) SetReadDeadline(t time.Time) error {
	t = c.clamp(t)
	if c.l.lim.stressed() {
		if s := time.Now().Add(c.l.srv.cfg.StressReadTimeout); t.IsZero() || s.Before(t) {
			t = s
		}
	}
	c.mu.Lock()
	c.drain = false // go-smtp waits for a command again: the transfer is over
	c.cmdGen++
	c.cmdDL = t
	c.mu.Unlock()
	return c.Conn.SetReadDeadline(t)
}

// beginData starts the message transfer of a transaction: from here every
// read is bounded by the idle timeout (StressReadTimeout under stress: the
// load-shedding timeout applies inside DATA too), by DataTimeout for the
// whole transfer, and by the minimum rate (checkRate).
func (c *trapConn) beginData() {
	now := time.Now()
	c.mu.Lock()
	c.dataOn, c.drain, c.dataGen = true, false, c.cmdGen
	c.dataStart, c.winStart, c.winBytes = now, now, 0
	c.dataEnd = now.Add(c.l.srv.cfg.DataTimeout)
	c.mu.Unlock()
}

func (c *trapConn) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// endData marks the end of Data. After DATA the transfer rules still hold
// while go-smtp discards what is left of a refused message; they end when
// it arms the next command's deadline (SetReadDeadline). BDAT's Data runs
// beside the command reads (go-smtp reads each chunk itself): when a
// command was read since Data began, nothing is left to drain, and a late
// endData must not put the next command under the transfer rules.
func (c *trapConn) endData() {
	c.mu.Lock()
	if c.dataOn {
		c.dataOn, c.drain = false, c.cmdGen == c.dataGen
	}
	c.mu.Unlock()
}

// transferRead is one read of a message transfer. It waits at most the
// idle timeout from its start (StressReadTimeout while stressed, looked at
// again at each window's end), never past DataTimeout, and wakes at the end
// of each rate window to check the rate even when nothing arrives.
func (c *trapConn) transferRead(b []byte) (n int, transfer bool, err error) {
	cfg := &c.l.srv.cfg
	start := time.Now()
	for {
		if !c.inTransfer() {
			// BDAT's Data ended while this read waited (the transaction
			// was reset): back to the command's own deadline.
			c.mu.Lock()
			dl := c.cmdDL
			c.mu.Unlock()
			_ = c.Conn.SetReadDeadline(dl)
			n, err = c.Conn.Read(b)
			return n, false, err
		}
		idle := cfg.ReadTimeout
		if c.l.lim.stressed() {
			idle = cfg.StressReadTimeout
		}
		c.mu.Lock()
		end, win := c.dataEnd, c.winStart.Add(cfg.DataRateWindow)
		c.mu.Unlock()
		dl := start.Add(idle)
		if end.Before(dl) {
			dl = end
		}
		wake := dl
		if cfg.DataMinRate > 0 && win.Before(wake) {
			wake = win
		}
		_ = c.Conn.SetReadDeadline(c.clamp(wake))
		n, err = c.Conn.Read(b)
		now := time.Now()
		if c.checkRate(n, now) {
			return n, true, c.abort(limitDataRate, "421 4.4.2 Data transfer too slow, closing connection")
		}
		var ne net.Error
		if n == 0 && err != nil && errors.As(err, &ne) && ne.Timeout() && wake.Before(dl) && now.Before(c.clamp(dl)) {
			continue // a window ended (the rate held, or the transfer is over): read on
		}
		return n, true, err
	}
}

// inTransfer reports whether a message transfer is on.
func (c *trapConn) inTransfer() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.dataOn || c.drain
}

// checkRate counts n bytes of a transfer and reports whether the transfer
// fell below Config.DataMinRate: measured over windows of DataRateWindow,
// from DataRateGrace after its start (Postfix's smtpd_min_data_rate, as a
// rate over a window so that a fast start does not buy a slow tail).
func (c *trapConn) checkRate(n int, now time.Time) (tooSlow bool) {
	cfg := &c.l.srv.cfg
	c.mu.Lock()
	defer c.mu.Unlock()
	if (!c.dataOn && !c.drain) || cfg.DataMinRate <= 0 {
		return false
	}
	c.winBytes += int64(n)
	el := now.Sub(c.winStart)
	if el < cfg.DataRateWindow {
		return false
	}
	if now.Sub(c.dataStart) >= cfg.DataRateGrace && float64(c.winBytes) < float64(cfg.DataMinRate)*el.Seconds() {
		return true
	}
	c.winStart, c.winBytes = now, 0
	return false
}

// Read serves bytes left over from the PROXY header, refuses a PROXY header
// from an untrusted peer, and ends the session at its deadline.
func (c *trapConn) Read(b []byte) (int, error) {
	if len(c.pre) > 0 {
		n := copy(b, c.pre)
		c.pre = c.pre[n:]
		return n, nil
	}
	transfer := c.inTransfer()
	var n int
	var err error
	if transfer {
		n, transfer, err = c.transferRead(b)
		if c.isClosed() {
			return n, err
		}
	} else {
		n, err = c.Conn.Read(b)
	}
	if n > 0 {
		c.mu.Lock()
		c.partial = b[n-1] != '\n'
		c.mu.Unlock()
	}
	if c.checkProxy && n > 0 {
		c.checkProxy = false
		if looksLikeProxy(b[:n]) {
			return 0, c.abort(limitProxyUntrusted, "421 4.7.0 PROXY protocol not accepted from your address")
		}
	}
	if err != nil {
		var ne net.Error
		switch {
		case errors.As(err, &ne) && ne.Timeout():
			if !c.end.IsZero() && !time.Now().Before(c.end) {
				return n, c.abort(limitSessionTime, "421 4.4.2 Session time limit exceeded, closing connection")
			}
			c.setEnded("timeout")
			c.mu.Lock()
			midLine := c.partial && !c.inData && !c.binary
			c.mu.Unlock()
			if transfer {
				// A message transfer that stalls ends the session: answering
				// 451 and reading commands again would let the sender go on
				// trickling.
				return n, c.abort(limitIdle, "421 4.4.2 Idle timeout during data transfer, closing connection")
			}
			if midLine {
				// The line reader drops an error that comes after part of a
				// line: the fragment would be served as a command and a fresh
				// deadline set, so a client trickling bytes (slowloris) would
				// hold the session. End it here.
				return n, c.abort(limitIdle, "421 4.4.2 Idle timeout, closing connection")
			}
			c.l.srv.metrics.limitHits.WithLabelValues(limitIdle).Inc()
		case errors.Is(err, io.EOF):
			c.setEnded("drop")
		}
	}
	return n, err
}

// Write passes replies through and counts them (RFC 5321 §4.2: each command
// gets exactly one final reply, so replies count commands).
func (c *trapConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	if limit, msg := c.watch(b[:n]); limit != "" {
		_ = c.abort(limit, msg)
	}
	return n, err
}

// watch follows the reply lines go-smtp writes. Once a line does not start
// with a digit the stream is TLS records: every write then counts as a reply
// and errors are no longer visible (the session counts its own).
func (c *trapConn) watch(b []byte) (limit, msg string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cfg := &c.l.srv.cfg
	if c.binary {
		c.replies++
	}
	for i := 0; i < len(b) && !c.binary; i++ {
		ch := b[i]
		switch {
		case ch == '\n':
			c.pos, c.code = 0, 0
			continue
		case c.pos < 3 && (ch < '0' || ch > '9'):
			if c.pos == 0 {
				c.binary = true
				c.replies++
			}
			c.pos = 4 // not a reply line: skip to its end
		case c.pos < 3:
			c.code = c.code*10 + int(ch-'0')
		case c.pos == 3 && ch == ' ':
			c.final(c.code)
			c.lastFinal = true
		case c.pos == 3:
			c.lastFinal = false
		}
		if c.pos < len(c.head) {
			c.head[c.pos] = ch
			if c.pos == len(c.head)-1 && c.lastFinal {
				c.closingReply(string(c.head[:]))
			}
		}
		c.pos++
	}
	switch {
	case c.closed:
	case c.replies > cfg.MaxCommands:
		return limitCommands, "421 4.7.0 Too many commands, closing connection"
	case c.errs > cfg.MaxErrors:
		return limitErrors, "421 4.7.0 Too many errors, closing connection"
	}
	return "", ""
}

// closingReply counts the limits go-smtp enforces itself, by the reply it
// closes with; c.mu is held.
func (c *trapConn) closingReply(head string) {
	switch head {
	case "500 5.4.0": // "Too long line, closing connection"
		c.l.srv.metrics.limitHits.WithLabelValues(limitLineLength).Inc()
	case "500 5.5.1": // "Too many errors. Quiting now" (its own threshold of 3 bad commands)
		c.l.srv.metrics.limitHits.WithLabelValues(limitErrors).Inc()
	}
}

// final counts one final reply; c.mu is held.
func (c *trapConn) final(code int) {
	m := c.l.srv.metrics
	switch {
	case code == 220 && c.replies == 0 && c.errs == 0: // the greeting
		return
	case code == 354: // intermediate reply to DATA
		c.inData = true
		return
	case code == 221:
		c.ended = "quit"
	case code == 421:
		c.closed = true
	case code == 452: // go-smtp's "452 4.5.3 Maximum limit of N recipients reached"
		m.limitHits.WithLabelValues(limitRecipients).Inc()
	}
	c.inData = false
	c.replies++
	if code >= 400 {
		c.errs++
	}
}

// noteError counts an error the session returned (visible also under TLS).
func (c *trapConn) noteError() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.binary {
		c.errs++
	}
}

func (c *trapConn) setEnded(why string) {
	c.mu.Lock()
	if c.ended == "" {
		c.ended = why
	}
	c.mu.Unlock()
}

// endReason is how the session ended: quit, timeout, drop, limit, or "" while
// it runs.
func (c *trapConn) endReason() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ended
}

// abort writes a final 421 and closes the connection; the returned error
// wraps net.ErrClosed so go-smtp ends the session without another reply.
func (c *trapConn) abort(limit, msg string) error {
	c.mu.Lock()
	already, tlsOn := c.closed, c.binary
	c.closed = true
	if c.ended == "" || (c.ended == "timeout" && limit != limitIdle) {
		c.ended = "limit"
	}
	c.mu.Unlock()
	if !already {
		c.l.srv.metrics.limitHits.WithLabelValues(limit).Inc()
		c.l.srv.log.Debug("session limit", "limit", limit, "client", c.client.Addr())
		if !tlsOn { // under TLS a clear-text reply would only corrupt the stream
			_ = c.Conn.SetWriteDeadline(time.Now().Add(2 * time.Second))
			_, _ = io.WriteString(c.Conn, msg+"\r\n")
		}
		lingerClose(c.Conn)
	}
	c.Close()
	return fmt.Errorf("trap: %s limit: %w", limit, net.ErrClosed)
}

// lingerClose sends FIN after the last reply and reads what the client
// still sends for a short while, so that closing with unread input (a
// pipelining client) does not reset the connection and lose the reply.
func lingerClose(nc net.Conn) {
	tcp, ok := nc.(*net.TCPConn)
	if !ok {
		return
	}
	_ = tcp.CloseWrite()
	_ = tcp.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	_, _ = io.CopyN(io.Discard, tcp, 1<<20)
}

// reply answers and closes a connection that is refused after it got its
// overall slot (per-client limits).
func (c *trapConn) reply(limit, msg string) {
	c.l.srv.metrics.limitHits.WithLabelValues(limit).Inc()
	_ = c.Conn.SetWriteDeadline(time.Now().Add(time.Second))
	_, _ = io.WriteString(c.Conn, msg+"\r\n")
	c.Close()
}

// Close releases the connection's slots once.
func (c *trapConn) Close() error {
	err := net.ErrClosed
	c.onceCls.Do(func() {
		err = c.Conn.Close()
		if c.clientHeld {
			c.l.lim.releaseClient(c.unit)
		}
		c.l.lim.releaseTotal()
		c.l.srv.metrics.active.Dec()
	})
	return err
}

// connOf finds the trapConn under a go-smtp connection (under TLS too).
func connOf(c net.Conn) *trapConn {
	for {
		switch v := c.(type) {
		case *trapConn:
			return v
		case *tls.Conn:
			c = v.NetConn()
		default:
			return nil
		}
	}
}
