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
	"cmp"
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

	"github.com/blowback-dnsbl/blowback/internal/lifecycle"
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
	// MaxTCPConnsPerClient caps the connections open at once from one
	// client network (TCPClientPrefix4/6); default 16. Addresses allowed to
	// transfer the zone are not capped per client.
	MaxTCPConnsPerClient int
	// TCPClientPrefix4 and TCPClientPrefix6 size a client network for
	// MaxTCPConnsPerClient; default 24 and 64.
	TCPClientPrefix4, TCPClientPrefix6 int
	// TCPTransferReserve of the MaxTCPConns slots are kept for addresses
	// allowed to transfer the zone (while zone transfer is on); default 8
	// (at most a quarter of MaxTCPConns). Negative: none.
	TCPTransferReserve int
	// TCPLifetime bounds how long one TCP connection is served; an answer
	// under way (a zone transfer) finishes. Default 2m.
	TCPLifetime time.Duration
	// UDPSockets is the number of SO_REUSEPORT UDP sockets, each with its
	// own reader; default GOMAXPROCS.
	UDPSockets int
	// UDPReceiveBuffer is each UDP socket's SO_RCVBUF in bytes (Linux
	// doubles it for its bookkeeping and caps it at net.core.rmem_max);
	// default 4 MiB. It decides what a moment off the CPU costs: with room,
	// the queries that arrive meanwhile wait and are answered late; without,
	// the kernel drops them and the clients retry after their timeout.
	// rbldnsd asks for 64 KiB.
	UDPReceiveBuffer int
	// RaiseGOMAXPROCS lets Start raise the process's runtime.GOMAXPROCS to
	// one more than the UDP sockets where each socket reader blocks in the
	// kernel on its own thread (Linux): it keeps a P free for everything
	// else (TCP, reloads, the runtime's own work). GOMAXPROCS is the whole
	// process's, so the program decides (cmd/blowback turns it on); off, a
	// blocked reader's P is handed off by the runtime, at some latency.
	RaiseGOMAXPROCS bool
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
	// Policy refuses queries from public resolvers and over a budget
	// (policy.go); off by default.
	Policy Policy
	// Keys, when set, enables keyed names <reversed-ip>.<key>.<zone>
	// (keys.go); with RequireKey only keyed names with a valid key are
	// answered.
	Keys       *Keys
	RequireKey bool
}

func (c *Config) defaults() {
	c.TTL = cmp.Or(c.TTL, 300*time.Second)
	c.NegTTL = cmp.Or(c.NegTTL, 60*time.Second)
	c.Refresh = cmp.Or(c.Refresh, 600*time.Second)
	c.Retry = cmp.Or(c.Retry, 60*time.Second)
	c.Expire = cmp.Or(c.Expire, 7*24*time.Hour)
	c.UDPSize = cmp.Or(c.UDPSize, 1232)
	c.UDPSize = max(c.UDPSize, dns.MinMsgSize)
	c.UDPSize = min(c.UDPSize, maxUDPSize)
	c.TCPIdle = cmp.Or(c.TCPIdle, 10*time.Second)
	c.MaxTCPQueries = cmp.Or(c.MaxTCPQueries, 128)
	c.MaxTCPConns = cmp.Or(c.MaxTCPConns, 256)
	c.MaxTCPConnsPerClient = cmp.Or(c.MaxTCPConnsPerClient, 16)
	c.TCPClientPrefix4 = cmp.Or(c.TCPClientPrefix4, 24)
	c.TCPClientPrefix6 = cmp.Or(c.TCPClientPrefix6, 64)
	switch {
	case c.TCPTransferReserve == 0:
		c.TCPTransferReserve = min(8, c.MaxTCPConns/4)
	case c.TCPTransferReserve < 0:
		c.TCPTransferReserve = 0
	}
	c.TCPTransferReserve = min(c.TCPTransferReserve, c.MaxTCPConns-1)
	c.TCPLifetime = cmp.Or(c.TCPLifetime, 2*time.Minute)
	if c.UDPSockets <= 0 {
		c.UDPSockets = runtime.GOMAXPROCS(0)
	}
	if c.UDPReceiveBuffer <= 0 {
		c.UDPReceiveBuffer = 4 << 20
	}
	c.RRL.defaults()
}

// Validate checks the configuration.
func (c Config) Validate() error {
	var errs []error
	if len(c.CookieSecret) != 0 && len(c.CookieSecret) != 16 {
		errs = append(errs, fmt.Errorf("%w: cookie secret must be 16 bytes, not %d", ErrConfig, len(c.CookieSecret)))
	}
	if c.MaxTCPConns < 0 || c.MaxTCPConnsPerClient < 0 || c.TCPLifetime < 0 || c.TCPIdle < 0 || c.MaxTCPQueries < -1 {
		errs = append(errs, fmt.Errorf("%w: negative TCP limit", ErrConfig))
	}
	if c.TCPClientPrefix4 < 0 || c.TCPClientPrefix4 > 32 || c.TCPClientPrefix6 < 0 || c.TCPClientPrefix6 > 128 {
		errs = append(errs, fmt.Errorf("%w: TCP client prefix length out of range", ErrConfig))
	}
	if err := c.Policy.validate(); err != nil {
		errs = append(errs, err)
	}
	if c.RequireKey && c.Keys == nil {
		errs = append(errs, fmt.Errorf("%w: keys required but no key store", ErrConfig))
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
	policy  *policyState // nil: policy off
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
	if cfg.Policy.On() {
		s.policy = newPolicy(cfg.Policy)
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
		conns, err = listenUDP(addr, s.cfg.UDPSockets, s.cfg.UDPReceiveBuffer)
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
	if s.cfg.RaiseGOMAXPROCS && blockingUDP && runtime.GOMAXPROCS(0) < len(conns)+1 {
		// Each socket reader blocks in the kernel on its own thread; keep a P
		// free for everything else (TCP, reloads, the runtime's own work).
		runtime.GOMAXPROCS(len(conns) + 1)
	}
	ll := &limitListener{Listener: l, lim: s.newTCPLimiter()}
	tcp := &dns.Server{Listener: ll, Handler: s, IdleTimeout: func() time.Duration { return s.cfg.TCPIdle },
		ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second, MaxTCPQueries: s.cfg.MaxTCPQueries}
	s.mu.Lock()
	s.tcp = tcp
	s.addrs = append(s.addrs, conns[0].LocalAddr(), l.Addr())
	for _, c := range conns {
		w := newUDPWorker(s, c)
		w.keepP(len(conns))
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
	s.log.Info("dns listening", "addr", conns[0].LocalAddr().String(), "proto", "udp+tcp", "udp_sockets", len(conns), "udp_rcvbuf", receiveBuffer(conns[0]), "batched", batched, "readers_keep_p", blockingUDP && runtime.GOMAXPROCS(0) > len(conns))
	return nil
}

// Keys returns the consumer key store (nil when keyed access is off).
func (s *Server) Keys() *Keys { return s.cfg.Keys }

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
	if err := lifecycle.Wait(ctx, &s.wg); err != nil {
		errs = append(errs, err)
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
	v := allow
	if s.policy != nil {
		v = s.policy.check(src, start)
	}
	resp, _ := s.answer(req, src, tcp, v)
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
	m, _ := s.answer(req, netip.Addr{}, tcp, allow)
	return m
}

// answer is the slow path. src (invalid when unknown) is the client, for the
// ACL and cookies; v is the refused-query policy's verdict on the client
// (policy.go), applied to names below the apex. cookieOK reports a valid
// server cookie (exempt from RRL).
func (s *Server) answer(req *dns.Msg, src netip.Addr, tcp bool, v verdict) (m *dns.Msg, cookieOK bool) {
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
	if rel != "" {
		var keyedApex bool
		rel, keyedApex, v = s.checkKey(rel, v, time.Now())
		if v != allow {
			s.refuse(m, q, v, src, snap)
			return m, cookieOK
		}
		if keyedApex {
			// <key>.<zone> exists (the names below it do): NODATA.
			m.Ns = append(m.Ns, s.apexOf(snap).negSOA())
			return m, cookieOK
		}
	}
	s.answerIn(m, snap, q, rel)
	return m, cookieOK
}

// checkKey takes the key label off rel (the name below the zone) when
// keys are on, counts the query for it and returns the verdict: v when v
// already refuses, else the key's. keyedApex is a name of just a key.
func (s *Server) checkKey(rel string, v verdict, now time.Time) (string, bool, verdict) {
	keys := s.cfg.Keys
	if keys == nil {
		return rel, false, v
	}
	i := strings.LastIndexByte(rel, '.')
	last := rel[i+1:]
	if len(last) < minKeyLen { // an address label, not a key
		if v == allow && s.cfg.RequireKey {
			v = denyKeyMissing
		}
		return rel, false, v
	}
	rest := ""
	if i >= 0 {
		rest = rel[:i]
	}
	if v != allow {
		return rest, rest == "", v
	}
	st := keys.lookup([]byte(last))
	switch {
	case st == nil:
		v = denyKeyUnknown
	case !st.take(keys.windowOf(now)):
		v = denyKeyQuota
	}
	return rest, rest == "", v
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
