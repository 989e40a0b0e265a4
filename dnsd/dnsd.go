// Package dnsd is blowback's authoritative DNS server for DNSBL zones
// (RFC 5782). It answers from the current zones.Snapshot and never blocks on
// the rest of the system: a new snapshot is swapped in atomically.
//
// UDP queries take a fast path (fast.go) when they are plain: one question
// of class IN for A, TXT or AAAA at a full reversed address, no EDNS option
// beyond a bare OPT. It reads the question straight from the packet and
// writes the answer into a reused buffer, on several SO_REUSEPORT sockets
// read and written in batches (udp_linux.go). Everything else (TCP, EDNS
// options such as cookies, other classes, opcodes and types, the apex,
// partial names, malformed packets) goes through the slow path below, built
// on miekg/dns. Both give the same answers; dnsd_test.go and the fuzz target
// check that.
package dnsd

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/blowback-dnsbl/blowback/zones"
)

// Errors.
var (
	ErrConfig = errors.New("dnsd: bad configuration")
)

// Config is the server's configuration apart from the zone contents.
type Config struct {
	// NS are the zone's name servers (absolute names); default "ns1.<zone>".
	NS []string
	// Hostmaster is the SOA RNAME as a mailbox or domain name; default "hostmaster.<zone>".
	Hostmaster string
	// TTL of positive answers when the snapshot has none; default 300s.
	TTL time.Duration
	// NegTTL is the SOA MINIMUM, the negative-caching TTL (RFC 2308 §5); default 60s.
	NegTTL time.Duration
	// Refresh, Retry, Expire of the SOA; defaults 600s, 60s, 7d.
	Refresh, Retry, Expire time.Duration
	// UDPSize is the EDNS0 payload size advertised and used; default 1232.
	UDPSize uint16
	// TCPIdle is the idle timeout on TCP connections; default 10s.
	TCPIdle time.Duration
	// MaxTCPQueries per TCP connection; default 128.
	MaxTCPQueries int
	// MaxTCPConns is the number of TCP connections open at once; more are
	// closed at accept. Default 256.
	MaxTCPConns int
	// UDPSockets is the number of SO_REUSEPORT UDP sockets, each with its
	// own reader; default GOMAXPROCS.
	UDPSockets int
	// RRL is response-rate limiting (off unless Rate > 0).
	RRL RRLConfig
	// ACL restricts who may query; empty allows everyone.
	ACL ACL
	// Cookies enables DNS cookies (RFC 7873, server cookies per RFC 9018).
	Cookies bool
	// CookieSecret is the 16-byte server secret; random when empty. Servers
	// behind one anycast address share it.
	CookieSecret []byte
	// ServeFailed, when set, is called if a listener stops serving by
	// itself (not through Stop); the node turns /readyz red.
	ServeFailed func(error)
}

func (c *Config) defaults() {
	if c.TTL == 0 {
		c.TTL = 300 * time.Second
	}
	if c.NegTTL == 0 {
		c.NegTTL = 60 * time.Second
	}
	if c.Refresh == 0 {
		c.Refresh = 600 * time.Second
	}
	if c.Retry == 0 {
		c.Retry = 60 * time.Second
	}
	if c.Expire == 0 {
		c.Expire = 7 * 24 * time.Hour
	}
	if c.UDPSize == 0 {
		c.UDPSize = 1232
	}
	c.UDPSize = max(c.UDPSize, dns.MinMsgSize)
	c.UDPSize = min(c.UDPSize, maxUDPSize)
	if c.TCPIdle == 0 {
		c.TCPIdle = 10 * time.Second
	}
	if c.MaxTCPQueries == 0 {
		c.MaxTCPQueries = 128
	}
	if c.MaxTCPConns == 0 {
		c.MaxTCPConns = 256
	}
	if c.UDPSockets <= 0 {
		c.UDPSockets = runtime.GOMAXPROCS(0)
	}
	c.RRL.defaults()
}

// Validate checks the configuration.
func (c Config) Validate() error {
	var errs []error
	if len(c.CookieSecret) != 0 && len(c.CookieSecret) != 16 {
		errs = append(errs, fmt.Errorf("%w: cookie secret must be 16 bytes, not %d", ErrConfig, len(c.CookieSecret)))
	}
	if err := c.RRL.validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// maxUDPSize caps the EDNS payload we advertise (and the buffers).
const maxUDPSize = 4096

// Server answers DNSBL queries from a zones.Current.
type Server struct {
	cfg     Config
	cur     *zones.Current
	log     *slog.Logger
	metrics *metrics
	rrl     *rrl
	cookies *cookieJar
	xfr     xfrSlot // zone transfers (xfr.go)

	mu    sync.Mutex
	tcp   *dns.Server
	udp   []*udpWorker
	addrs []net.Addr
	wg    sync.WaitGroup
}

// New returns a server answering from cur. reg may be nil.
func New(cfg Config, cur *zones.Current, log *slog.Logger, reg prometheus.Registerer) *Server {
	cfg.defaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{cfg: cfg, cur: cur, log: log.With("pkg", "dnsd")}
	s.metrics = newMetrics(reg, cur)
	if cfg.RRL.Rate > 0 {
		s.rrl = newRRL(cfg.RRL)
	}
	if cfg.Cookies {
		secret := cfg.CookieSecret
		if len(secret) != 16 {
			secret = make([]byte, 16)
			rand.Read(secret)
		}
		s.cookies = newCookieJar(secret, time.Now)
	}
	return s
}

// Start listens on addr over UDP (several sockets) and TCP and serves until
// Stop. It returns once all sockets are bound.
func (s *Server) Start(addr string) error {
	if err := s.cfg.Validate(); err != nil {
		return err
	}
	var (
		conns []*udpSock
		l     net.Listener
	)
	for try := 0; ; try++ {
		var err error
		conns, err = listenUDP(addr, s.cfg.UDPSockets)
		if err != nil {
			return fmt.Errorf("dnsd: listen udp %s: %w", addr, err)
		}
		// Bind TCP to the port UDP got (matters for ":0").
		tcpAddr := conns[0].LocalAddr().String()
		l, err = net.Listen("tcp", tcpAddr)
		if err == nil {
			break
		}
		for _, c := range conns {
			c.Close()
		}
		// With port 0 the port UDP got may be taken for TCP: take another.
		if _, port, _ := net.SplitHostPort(addr); port != "0" || try == 20 {
			return fmt.Errorf("dnsd: listen tcp %s: %w", tcpAddr, err)
		}
	}
	if blockingUDP && runtime.GOMAXPROCS(0) < len(conns)+1 {
		// Each socket reader blocks in the kernel on its own thread; keep a P
		// free for everything else (TCP, reloads, the runtime's own work).
		runtime.GOMAXPROCS(len(conns) + 1)
	}
	ll := &limitListener{Listener: l, sem: make(chan struct{}, s.cfg.MaxTCPConns), rejected: s.metrics.tcpRejected}
	tcp := &dns.Server{Listener: ll, Handler: s, IdleTimeout: func() time.Duration { return s.cfg.TCPIdle },
		ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second, MaxTCPQueries: s.cfg.MaxTCPQueries}
	s.mu.Lock()
	s.tcp = tcp
	s.addrs = append(s.addrs, conns[0].LocalAddr(), l.Addr())
	for _, c := range conns {
		w := newUDPWorker(s, c)
		s.udp = append(s.udp, w)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			w.run()
		}()
	}
	s.mu.Unlock()
	started := make(chan struct{})
	tcp.NotifyStartedFunc = func() { close(started) }
	go func() {
		if err := tcp.ActivateAndServe(); err != nil {
			s.log.Error("dns tcp server stopped", "err", err)
			if s.cfg.ServeFailed != nil {
				s.cfg.ServeFailed(err)
			}
		}
	}()
	<-started
	s.log.Info("dns listening", "addr", conns[0].LocalAddr().String(), "proto", "udp+tcp", "udp_sockets", len(conns), "batched", batched)
	return nil
}

// Addr returns the bound UDP address (and TCP on the same port).
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.addrs) == 0 {
		return nil
	}
	return s.addrs[0]
}

// Stop shuts the listeners down, waiting for in-flight queries until ctx ends.
func (s *Server) Stop(ctx context.Context) error {
	s.mu.Lock()
	tcp, udp := s.tcp, s.udp
	s.tcp, s.udp = nil, nil
	s.mu.Unlock()
	var errs []error
	for _, w := range udp {
		w.close()
	}
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		errs = append(errs, ctx.Err())
	}
	if tcp != nil {
		if err := tcp.ShutdownContext(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// ServeDNS implements dns.Handler (TCP).
func (s *Server) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	start := time.Now()
	defer func() {
		if r := recover(); r != nil {
			s.metrics.panics.Inc()
			s.log.Error("panic answering query", "panic", r)
			resp := new(dns.Msg)
			resp.SetRcode(req, dns.RcodeServerFailure)
			w.WriteMsg(resp)
		}
	}()
	if _, tcp := w.RemoteAddr().(*net.TCPAddr); tcp && s.xfrQuery(req) {
		s.serveXFR(w, req) // AXFR, IXFR (and TSIG-signed queries): xfr.go
		return
	}
	var src netip.Addr
	if ap, err := netip.ParseAddrPort(w.RemoteAddr().String()); err == nil {
		src = ap.Addr().Unmap()
	}
	_, tcp := w.RemoteAddr().(*net.TCPAddr)
	resp, _ := s.answer(req, src, tcp)
	if resp == nil {
		return // dropped
	}
	if err := w.WriteMsg(resp); err != nil {
		s.log.Debug("write answer", "err", err)
	}
	s.metrics.slow.count(qtypeOf(req), resp.Rcode)
	s.metrics.duration.Observe(time.Since(start).Seconds())
}

// Answer builds the response to req (tcp tells the transport, for
// truncation), without the per-client parts (ACL, cookies). nil means no
// answer at all.
func (s *Server) Answer(req *dns.Msg, tcp bool) *dns.Msg {
	m, _ := s.answer(req, netip.Addr{}, tcp)
	return m
}

// answer is the slow path. src (invalid when unknown) is the client, for the
// ACL and cookies. cookieOK reports a valid server cookie (exempt from RRL).
func (s *Server) answer(req *dns.Msg, src netip.Addr, tcp bool) (m *dns.Msg, cookieOK bool) {
	if req.Response {
		return nil, false // never answer answers
	}
	m = new(dns.Msg)
	m.Compress = true
	if len(req.Question) != 1 {
		m.SetRcode(req, dns.RcodeFormatError)
		return m, false
	}
	m.SetReply(req)
	m.Authoritative = true
	maxSize := dns.MinMsgSize
	if opt := req.IsEdns0(); opt != nil {
		m.SetEdns0(s.cfg.UDPSize, opt.Do())
		if opt.Version() != 0 {
			// RFC 6891 §6.1.3: unknown version -> BADVERS, with our OPT.
			m.Rcode = dns.RcodeBadVers
			m.Authoritative = false
			return m, false
		}
		maxSize = max(int(min(opt.UDPSize(), s.cfg.UDPSize)), dns.MinMsgSize)
		if s.cookies != nil {
			res := s.cookies.handle(opt, m.IsEdns0(), src)
			if res != cookieNone {
				s.metrics.cookies.WithLabelValues(cookieLabels[res]).Inc()
			}
			if res == cookieMalformed {
				// RFC 7873 §5.2.2: a malformed COOKIE option is FORMERR.
				m.Rcode = dns.RcodeFormatError
				m.Authoritative = false
				return m, false
			}
			cookieOK = res == cookieValid
		}
	}
	defer func() {
		if !tcp {
			m.Truncate(maxSize)
		}
	}()
	if req.Opcode != dns.OpcodeQuery {
		m.Rcode = dns.RcodeNotImplemented // RFC 1035 §4.1.1
		m.Authoritative = false
		return m, cookieOK
	}
	q := req.Question[0]
	if !tcp && (q.Qtype == dns.TypeAXFR || q.Qtype == dns.TypeIXFR) {
		// RFC 5936 §4.2, RFC 1995 §2: transfers go over TCP.
		m.Truncated = true
		m.Authoritative = false
		return m, cookieOK
	}
	if src.IsValid() && !s.cfg.ACL.Allowed(src) {
		m.Rcode = dns.RcodeRefused
		m.Authoritative = false
		return m, cookieOK
	}
	snap := s.cur.Load()
	if snap == nil {
		m.Rcode = dns.RcodeServerFailure
		m.Authoritative = false
		return m, cookieOK
	}
	if q.Qclass != dns.ClassINET && q.Qclass != dns.ClassANY {
		m.Rcode = dns.RcodeRefused
		m.Authoritative = false
		return m, cookieOK
	}
	rel, ok := inZone(q.Name, snap.Zone)
	if !ok {
		m.Rcode = dns.RcodeRefused // not authoritative for it
		m.Authoritative = false
		return m, cookieOK
	}
	s.answerIn(m, snap, q, rel)
	return m, cookieOK
}

// inZone returns the labels of name below zone (lower-cased zone, no dot).
func inZone(name, zone string) (string, bool) {
	n := strings.TrimSuffix(name, ".")
	if len(n) < len(zone) || !strings.EqualFold(n[len(n)-len(zone):], zone) {
		return "", false
	}
	rest := n[:len(n)-len(zone)]
	if rest == "" {
		return "", true
	}
	if !strings.HasSuffix(rest, ".") {
		return "", false // e.g. "xbl.blowback.test" for zone "bl.blowback.test"
	}
	return rest[:len(rest)-1], true
}

// apex is the SOA and NS data in force for a snapshot: the zone file's when
// it had them, else the configuration's.
type apex struct {
	zone                           string // absolute, lower case
	mname, rname                   string
	serial                         uint32
	refresh, retry, expire, minimu uint32
	soaTTL, negTTL                 uint32
	ns                             []string
	nsTTL                          uint32
	ttl                            uint32 // positive answers
}

func (s *Server) apexOf(snap *zones.Snapshot) apex {
	zone := dns.Fqdn(snap.Zone)
	a := apex{zone: zone, serial: snap.Serial, ttl: uint32(s.cfg.TTL / time.Second)}
	if snap.TTL > 0 {
		a.ttl = uint32(snap.TTL / time.Second)
	}
	a.mname = "ns1." + zone
	if len(s.cfg.NS) > 0 {
		a.mname = dns.Fqdn(s.cfg.NS[0])
	}
	a.rname = "hostmaster." + zone
	if s.cfg.Hostmaster != "" {
		a.rname = dns.Fqdn(strings.Replace(s.cfg.Hostmaster, "@", ".", 1))
	}
	a.refresh = uint32(s.cfg.Refresh / time.Second)
	a.retry = uint32(s.cfg.Retry / time.Second)
	a.expire = uint32(s.cfg.Expire / time.Second)
	a.minimu = uint32(s.cfg.NegTTL / time.Second)
	a.soaTTL = a.ttl
	a.ns = s.cfg.NS
	if len(a.ns) == 0 {
		a.ns = []string{"ns1." + zone}
	}
	a.nsTTL = a.ttl
	if x := snap.Apex; x != nil {
		if x.HasSOA {
			a.mname, a.rname = dns.Fqdn(x.MName), dns.Fqdn(x.RName)
			a.refresh, a.retry, a.expire, a.minimu, a.soaTTL = x.Refresh, x.Retry, x.Expire, x.Minimum, x.SOATTL
		}
		if len(x.NS) > 0 {
			a.ns, a.nsTTL = x.NS, x.NSTTL
		}
	}
	// RFC 2308 §3: the SOA in a negative answer has TTL min(SOA TTL, MINIMUM).
	a.negTTL = min(a.soaTTL, a.minimu)
	return a
}

func (a apex) soa(owner string, ttl uint32) *dns.SOA {
	return &dns.SOA{
		Hdr:     dns.RR_Header{Name: owner, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: ttl},
		Ns:      a.mname,
		Mbox:    a.rname,
		Serial:  a.serial,
		Refresh: a.refresh,
		Retry:   a.retry,
		Expire:  a.expire,
		Minttl:  a.minimu,
	}
}

func (a apex) negSOA() *dns.SOA { return a.soa(a.zone, a.negTTL) }

// nsRRs are the zone's NS records at owner.
func (s *Server) nsRRs(snap *zones.Snapshot, owner string) []dns.RR {
	ax := s.apexOf(snap)
	out := make([]dns.RR, 0, len(ax.ns))
	for _, n := range ax.ns {
		out = append(out, &dns.NS{Hdr: dns.RR_Header{Name: owner, Rrtype: dns.TypeNS, Class: dns.ClassINET, Ttl: ax.nsTTL}, Ns: dns.Fqdn(n)})
	}
	return out
}

func (s *Server) answerIn(m *dns.Msg, snap *zones.Snapshot, q dns.Question, rel string) {
	ax := s.apexOf(snap)
	if rel == "" {
		switch q.Qtype {
		case dns.TypeSOA:
			m.Answer = append(m.Answer, ax.soa(q.Name, ax.soaTTL))
		case dns.TypeNS:
			m.Answer = append(m.Answer, s.nsRRs(snap, q.Name)...)
		case dns.TypeANY:
			// RFC 8482 §4.2: answer ANY with one RRset.
			m.Answer = append(m.Answer, ax.soa(q.Name, ax.soaTTL))
		default:
			m.Ns = append(m.Ns, ax.negSOA())
		}
		return
	}
	addr, partial, lo, hi, v6, ok := parseRel(rel)
	if !ok {
		m.Rcode = dns.RcodeNameError
		m.Ns = append(m.Ns, ax.negSOA())
		return
	}
	if partial {
		// An empty non-terminal exists and gets NOERROR/NODATA (RFC 8020 §2).
		exists := false
		if v6 {
			exists = snap.Under6(lo, hi)
		} else {
			exists = snap.Under4(uint32(lo), uint32(hi))
		}
		if !exists && !v6 && looksLikeNibbles(rel) {
			l6, h6 := nibbleRange(rel)
			exists = snap.Under6(l6, h6)
		}
		if !exists {
			m.Rcode = dns.RcodeNameError
		}
		m.Ns = append(m.Ns, ax.negSOA())
		return
	}
	codes, vi := snap.Find(addr)
	if codes == 0 && vi == 0 {
		m.Rcode = dns.RcodeNameError
		m.Ns = append(m.Ns, ax.negSOA())
		return
	}
	val := snap.Value(vi)
	tmpl := snap.TXT
	if val.OwnTXT {
		tmpl = val.TXT
	}
	switch q.Qtype {
	case dns.TypeA, dns.TypeANY:
		// RFC 8482 §4.1: ANY gets one RRset, the A records.
		for _, a := range codes.Addrs() {
			m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: ax.ttl}, A: a.AsSlice()})
		}
		for _, a := range val.A {
			m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: ax.ttl}, A: a.AsSlice()})
		}
	case dns.TypeTXT:
		if tmpl == "" {
			m.Ns = append(m.Ns, ax.negSOA()) // NODATA: no TXT for this entry
			return
		}
		m.Answer = append(m.Answer, &dns.TXT{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: ax.ttl}, Txt: splitTXT(TXT(tmpl, addr))})
	default:
		m.Ns = append(m.Ns, ax.negSOA()) // NODATA
	}
}

// TXT expands a template: "$" becomes the queried address, "$$" a "$".
func TXT(tmpl string, a netip.Addr) string {
	return string(appendTXT(nil, tmpl, a))
}

func appendTXT(b []byte, tmpl string, a netip.Addr) []byte {
	for i := 0; i < len(tmpl); i++ {
		c := tmpl[i]
		if c != '$' {
			b = append(b, c)
			continue
		}
		if i+1 < len(tmpl) && tmpl[i+1] == '$' {
			b = append(b, '$')
			i++
			continue
		}
		b = a.Unmap().AppendTo(b)
	}
	return b
}

// splitTXT cuts a string into <=255-byte character-strings (RFC 1035 §3.3.14).
// miekg/dns stores them in presentation form, so special bytes are escaped.
func splitTXT(s string) []string {
	var out []string
	for {
		n := min(len(s), 255)
		out = append(out, escapeTXT(s[:n]))
		s = s[n:]
		if len(s) == 0 {
			return out
		}
	}
}

func escapeTXT(s string) string {
	clean := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == '"' || c == '\\' || c < ' ' || c > '~' {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < ' ' || c > '~':
			fmt.Fprintf(&b, "\\%03d", c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// parseRel parses the labels below the zone. A full IPv4 (4 decimal labels)
// or IPv6 (32 nibbles) name gives addr; fewer labels give partial with the
// range of addresses below the name (IPv4 as uint32 in lo/hi, IPv6 as /64
// units).
func parseRel(rel string) (addr netip.Addr, partial bool, lo, hi uint64, v6 bool, ok bool) {
	labels := strings.Split(rel, ".")
	if len(labels) <= 4 {
		var b [4]byte
		good := true
		for i, l := range labels {
			n, okn := octet(l)
			if !okn {
				good = false
				break
			}
			b[len(labels)-1-i] = n // reversed: first label is the last octet
		}
		if good {
			if len(labels) == 4 {
				return netip.AddrFrom4(b), false, 0, 0, false, true
			}
			// Labels fill from the top octet down.
			var v uint32
			for i := 0; i < len(labels); i++ {
				n, _ := octet(labels[len(labels)-1-i])
				v |= uint32(n) << (24 - 8*i)
			}
			span := uint32(1)<<(32-8*len(labels)) - 1
			return netip.Addr{}, true, uint64(v), uint64(v | span), false, true
		}
	}
	if len(labels) > 32 || !looksLikeNibbles(rel) {
		return netip.Addr{}, false, 0, 0, false, false
	}
	if len(labels) == 32 {
		var b [16]byte
		for i, l := range labels {
			n := hexVal(l[0])
			pos := 31 - i
			if pos%2 == 0 {
				b[pos/2] |= n << 4
			} else {
				b[pos/2] |= n
			}
		}
		return netip.AddrFrom16(b), false, 0, 0, true, true
	}
	l, h := nibbleRange(rel)
	return netip.Addr{}, true, l, h, true, true
}

// octet reads a decimal label 0-255 without leading zeros or signs.
func octet(l string) (byte, bool) {
	if len(l) == 0 || len(l) > 3 || (len(l) > 1 && l[0] == '0') {
		return 0, false
	}
	n := 0
	for i := 0; i < len(l); i++ {
		if l[i] < '0' || l[i] > '9' {
			return 0, false
		}
		n = n*10 + int(l[i]-'0')
	}
	if n > 255 {
		return 0, false
	}
	return byte(n), true
}

func looksLikeNibbles(rel string) bool {
	labels := strings.Split(rel, ".")
	for _, l := range labels {
		if len(l) != 1 || hexVal(l[0]) == 0xff {
			return false
		}
	}
	return len(labels) <= 32
}

// nibbleRange returns the /64 units covered by a partial nibble name.
func nibbleRange(rel string) (uint64, uint64) {
	labels := strings.Split(rel, ".")
	var v uint64
	n := 0
	for i := len(labels) - 1; i >= 0 && n < 16; i-- {
		v = v<<4 | uint64(hexVal(labels[i][0]))
		n++
	}
	if n == 16 {
		return v, v
	}
	shift := uint(64 - 4*n)
	v <<= shift
	return v, v | (uint64(1)<<shift - 1)
}

func hexVal(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10
	}
	return 0xff
}

// limitListener caps the open TCP connections; over the cap a new
// connection is closed at once.
type limitListener struct {
	net.Listener
	sem      chan struct{}
	rejected prometheus.Counter
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		select {
		case l.sem <- struct{}{}:
			return &limitConn{Conn: c, release: func() { <-l.sem }}, nil
		default:
			l.rejected.Inc()
			c.Close()
		}
	}
}

type limitConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitConn) Close() error {
	c.once.Do(c.release)
	return c.Conn.Close()
}
