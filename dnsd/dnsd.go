// Package dnsd is blowback's authoritative DNS server for DNSBL zones
// (RFC 5782). It answers from the current zones.Snapshot and never blocks on
// the rest of the system: a new snapshot is swapped in atomically.
package dnsd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
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
	// TTL of positive answers; default 300s.
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
	if c.TCPIdle == 0 {
		c.TCPIdle = 10 * time.Second
	}
	if c.MaxTCPQueries == 0 {
		c.MaxTCPQueries = 128
	}
}

// Server answers DNSBL queries from a zones.Current.
type Server struct {
	cfg     Config
	cur     *zones.Current
	log     *slog.Logger
	metrics *metrics

	mu      sync.Mutex
	servers []*dns.Server
	addrs   []net.Addr
}

// New returns a server answering from cur. reg may be nil.
func New(cfg Config, cur *zones.Current, log *slog.Logger, reg prometheus.Registerer) *Server {
	cfg.defaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Server{cfg: cfg, cur: cur, log: log.With("pkg", "dnsd"), metrics: newMetrics(reg)}
}

// Start listens on addr over UDP and TCP and serves until Stop. It returns
// once both sockets are bound.
func (s *Server) Start(addr string) error {
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		return fmt.Errorf("dnsd: listen udp %s: %w", addr, err)
	}
	// Bind TCP to the port UDP got (matters for ":0").
	tcpAddr := pc.LocalAddr().String()
	l, err := net.Listen("tcp", tcpAddr)
	if err != nil {
		pc.Close()
		return fmt.Errorf("dnsd: listen tcp %s: %w", tcpAddr, err)
	}
	udp := &dns.Server{PacketConn: pc, Handler: s, UDPSize: int(s.cfg.UDPSize)}
	tcp := &dns.Server{Listener: l, Handler: s, IdleTimeout: func() time.Duration { return s.cfg.TCPIdle },
		ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second, MaxTCPQueries: s.cfg.MaxTCPQueries}
	s.mu.Lock()
	s.servers = append(s.servers, udp, tcp)
	s.addrs = append(s.addrs, pc.LocalAddr(), l.Addr())
	s.mu.Unlock()
	for _, srv := range []*dns.Server{udp, tcp} {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		go func() {
			if err := srv.ActivateAndServe(); err != nil {
				s.log.Error("dns server stopped", "err", err)
			}
		}()
		<-started
	}
	s.log.Info("dns listening", "addr", pc.LocalAddr().String(), "proto", "udp+tcp")
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
	srvs := s.servers
	s.servers = nil
	s.mu.Unlock()
	var errs []error
	for _, srv := range srvs {
		if err := srv.ShutdownContext(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// ServeDNS implements dns.Handler.
func (s *Server) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	start := time.Now()
	var resp *dns.Msg
	defer func() {
		if r := recover(); r != nil {
			s.metrics.panics.Inc()
			s.log.Error("panic answering query", "panic", r)
			resp = new(dns.Msg)
			resp.SetRcode(req, dns.RcodeServerFailure)
			w.WriteMsg(resp)
		}
	}()
	_, tcp := w.RemoteAddr().(*net.TCPAddr)
	if len(req.Question) == 1 && (req.Question[0].Qtype == dns.TypeAXFR || req.Question[0].Qtype == dns.TypeIXFR) {
		s.serveXFR(w, req)
		return
	}
	resp = s.Answer(req, tcp)
	if resp == nil {
		return // dropped
	}
	if err := w.WriteMsg(resp); err != nil {
		s.log.Debug("write answer", "err", err)
	}
	s.metrics.observe(req, resp, time.Since(start))
}

// Answer builds the response to req (tcp tells the transport, for truncation).
func (s *Server) Answer(req *dns.Msg, tcp bool) *dns.Msg {
	m := new(dns.Msg)
	m.Authoritative = true
	if req.Response {
		return nil // never answer answers
	}
	if len(req.Question) != 1 {
		m.SetRcode(req, dns.RcodeFormatError)
		m.Authoritative = false
		return m
	}
	m.SetReply(req)
	m.Authoritative = true
	m.RecursionAvailable = false
	maxSize := dns.MinMsgSize
	if opt := req.IsEdns0(); opt != nil {
		if opt.Version() != 0 {
			// RFC 6891 §6.1.3: unknown version -> BADVERS, with our OPT.
			m.SetRcode(req, dns.RcodeBadVers)
			m.Authoritative = false
			m.SetEdns0(s.cfg.UDPSize, opt.Do())
			return m
		}
		maxSize = max(int(min(opt.UDPSize(), s.cfg.UDPSize)), dns.MinMsgSize)
		defer func() { m.SetEdns0(s.cfg.UDPSize, opt.Do()) }()
	}
	if req.Opcode != dns.OpcodeQuery {
		m.SetRcode(req, dns.RcodeNotImplemented)
		m.Authoritative = false
		return m
	}
	snap := s.cur.Load()
	q := req.Question[0]
	if snap == nil {
		m.SetRcode(req, dns.RcodeServerFailure)
		return m
	}
	if q.Qclass != dns.ClassINET && q.Qclass != dns.ClassANY {
		m.SetRcode(req, dns.RcodeRefused)
		m.Authoritative = false
		return m
	}
	rel, ok := inZone(q.Name, snap.Zone)
	if !ok {
		m.SetRcode(req, dns.RcodeRefused) // not authoritative for it
		m.Authoritative = false
		return m
	}
	s.answerIn(m, snap, q, rel)
	if !tcp {
		m.Truncate(maxSize)
	}
	return m
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

func (s *Server) soa(snap *zones.Snapshot) *dns.SOA {
	zone := dns.Fqdn(snap.Zone)
	ns := "ns1." + zone
	if len(s.cfg.NS) > 0 {
		ns = dns.Fqdn(s.cfg.NS[0])
	}
	mbox := "hostmaster." + zone
	if s.cfg.Hostmaster != "" {
		mbox = dns.Fqdn(strings.Replace(s.cfg.Hostmaster, "@", ".", 1))
	}
	neg := uint32(s.cfg.NegTTL / time.Second)
	return &dns.SOA{
		// RFC 2308 §3: the SOA in a negative answer has TTL min(SOA TTL, MINIMUM).
		Hdr:     dns.RR_Header{Name: zone, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: neg},
		Ns:      ns,
		Mbox:    mbox,
		Serial:  snap.Serial,
		Refresh: uint32(s.cfg.Refresh / time.Second),
		Retry:   uint32(s.cfg.Retry / time.Second),
		Expire:  uint32(s.cfg.Expire / time.Second),
		Minttl:  neg,
	}
}

func (s *Server) nsRRs(snap *zones.Snapshot, owner string) []dns.RR {
	names := s.cfg.NS
	if len(names) == 0 {
		names = []string{"ns1." + snap.Zone}
	}
	out := make([]dns.RR, 0, len(names))
	for _, n := range names {
		out = append(out, &dns.NS{Hdr: dns.RR_Header{Name: owner, Rrtype: dns.TypeNS, Class: dns.ClassINET, Ttl: uint32(s.cfg.TTL / time.Second)}, Ns: dns.Fqdn(n)})
	}
	return out
}

func (s *Server) answerIn(m *dns.Msg, snap *zones.Snapshot, q dns.Question, rel string) {
	ttl := uint32(s.cfg.TTL / time.Second)
	if rel == "" {
		switch q.Qtype {
		case dns.TypeSOA:
			soa := s.soa(snap)
			soa.Hdr.Name = q.Name
			soa.Hdr.Ttl = ttl
			m.Answer = append(m.Answer, soa)
		case dns.TypeNS:
			m.Answer = append(m.Answer, s.nsRRs(snap, q.Name)...)
		case dns.TypeANY:
			// RFC 8482 §4.2: answer ANY with one RRset.
			soa := s.soa(snap)
			soa.Hdr.Name = q.Name
			soa.Hdr.Ttl = ttl
			m.Answer = append(m.Answer, soa)
		default:
			m.Ns = append(m.Ns, s.soa(snap))
		}
		return
	}
	addr, partial, lo, hi, v6, ok := parseRel(rel)
	if !ok {
		m.Rcode = dns.RcodeNameError
		m.Ns = append(m.Ns, s.soa(snap))
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
		m.Ns = append(m.Ns, s.soa(snap))
		return
	}
	codes := snap.Lookup(addr)
	if codes == 0 {
		m.Rcode = dns.RcodeNameError
		m.Ns = append(m.Ns, s.soa(snap))
		return
	}
	switch q.Qtype {
	case dns.TypeA, dns.TypeANY:
		for _, a := range codes.Addrs() {
			m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: ttl}, A: a.AsSlice()})
		}
		if q.Qtype == dns.TypeA {
			return
		}
		fallthrough
	case dns.TypeTXT:
		if q.Qtype == dns.TypeANY {
			return // RFC 8482: one RRset is enough
		}
		m.Answer = append(m.Answer, &dns.TXT{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: ttl}, Txt: splitTXT(TXT(snap.TXT, addr))})
	default:
		m.Ns = append(m.Ns, s.soa(snap)) // NODATA
	}
}

// TXT expands a template: "$" becomes the queried address.
func TXT(tmpl string, a netip.Addr) string {
	if tmpl == "" {
		return ""
	}
	return strings.ReplaceAll(tmpl, "$", a.Unmap().String())
}

// splitTXT cuts a string into <=255-byte character-strings.
func splitTXT(s string) []string {
	var out []string
	for len(s) > 255 {
		out = append(out, s[:255])
		s = s[255:]
	}
	return append(out, s)
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
			n, err := strconv.Atoi(l)
			if err != nil || n < 0 || n > 255 || len(l) > 3 || (len(l) > 1 && l[0] == '0') {
				good = false
				break
			}
			b[len(labels)-1-i] = byte(n) // reversed: first label is the last octet
		}
		if good {
			if len(labels) == 4 {
				return netip.AddrFrom4(b), false, 0, 0, false, true
			}
			// Labels fill from the top octet down.
			var v uint32
			for i := 0; i < len(labels); i++ {
				n, _ := strconv.Atoi(labels[len(labels)-1-i])
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
