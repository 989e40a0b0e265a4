package dnsd

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/blowback-dnsbl/blowback/internal/lifecycle"
	"github.com/blowback-dnsbl/blowback/internal/metric"
	"github.com/blowback-dnsbl/blowback/zones"
)

// Zone transfer: AXFR (RFC 5936) and IXFR (RFC 1995) over TCP from a
// zones.Journal, with an address ACL and optional TSIG (RFC 8945), and
// NOTIFY (RFC 1996) to secondaries (notify.go). The records transferred are
// zones.Names: the same owner names and data as the BIND export.

// TSIGKey is a TSIG key shared with secondaries.
type TSIGKey struct {
	Name      string // key name, e.g. "xfr.bl.example."
	Algorithm string // e.g. dns.HmacSHA256 ("hmac-sha256."); default hmac-sha256
	Secret    string // base64
}

// TransferConfig configures zone transfers and NOTIFY.
type TransferConfig struct {
	// Journal holds the versions to transfer (required): the latest is
	// what AXFR sends, its differences what IXFR sends.
	Journal *zones.Journal
	// Allow lists the addresses that may transfer; empty: nobody.
	Allow []netip.Prefix
	// Keys are the TSIG keys accepted. With RequireTSIG, unsigned
	// transfers are refused.
	Keys        []TSIGKey
	RequireTSIG bool
	// Glue holds addresses of in-zone name servers (see zones.SOA.Glue).
	Glue map[string][]netip.Addr
	// MessageSize is the target size of a transfer message; default 16 KiB.
	MessageSize int

	// Notify lists secondaries (host:port) to NOTIFY when the zone changes.
	Notify []string
	// NotifyKey names the TSIG key (from Keys) that signs NOTIFY; "" for none.
	NotifyKey string
	// NotifyInterval is the least time between two rounds of NOTIFY;
	// default 5s. NotifyRetries (default 5) bounds the attempts per
	// secondary and round, NotifyTimeout (default 2s) each attempt.
	NotifyInterval time.Duration
	NotifyRetries  int
	NotifyTimeout  time.Duration
}

var (
	// ErrTransfer is returned for a bad transfer configuration.
	ErrTransfer = errors.New("dnsd: zone transfer")
)

// xfrSlot is the Server's zone-transfer state (a field of Server).
type xfrSlot struct {
	p  atomic.Pointer[transfer]
	mu sync.Mutex // serialises SetTransfer/StopTransfer
}

type transfer struct {
	cfg     TransferConfig
	keys    map[string]TSIGKey // by lower-case fqdn
	log     *slog.Logger
	m       *xfrMetrics
	notify  *notifier
	started time.Time
}

// xfrMetrics: type is axfr, ixfr; result is full (whole zone), incremental,
// uptodate (SOA only), refused (ACL, TSIG required, UDP AXFR), notauth
// (TSIG failed, not our zone), error (write failed, no zone yet).
type xfrMetrics struct {
	requests *prometheus.CounterVec
	records  prometheus.Counter
	duration *prometheus.HistogramVec
	notify   *prometheus.CounterVec
	panics   prometheus.Counter
}

// newXFRMetrics builds the transfer metrics; SetTransfer may run again on
// the same registry, so what is there already is reused.
func newXFRMetrics(reg prometheus.Registerer) *xfrMetrics {
	r := metric.Reusing(reg)
	return &xfrMetrics{
		requests: r.CounterVec("blowback_xfr_requests_total",
			"Zone transfer requests, by type (axfr, ixfr) and result (full, incremental, uptodate, refused, notauth, error).",
			[]string{"type", "result"}),
		records: r.Counter("blowback_xfr_records_sent_total", "Resource records sent in zone transfers."),
		duration: r.HistogramVec("blowback_xfr_duration_seconds", "Time to send a zone transfer, by type (axfr, ixfr).",
			prometheus.ExponentialBuckets(0.001, 4, 9), []string{"type"}),
		// result: ok, error (answered with an error rcode), timeout (no answer after every retry).
		notify: r.CounterVec("blowback_xfr_notify_total", "NOTIFY rounds per secondary, by result (ok, error, timeout).",
			[]string{"result"}),
		panics: r.Counter("blowback_xfr_panics_total", "Panics recovered in zone transfer and NOTIFY."),
	}
}

// SetTransfer enables zone transfer (and NOTIFY, when cfg.Notify is set)
// with cfg; it may be called again to change it. reg may be nil.
func (s *Server) SetTransfer(cfg TransferConfig, reg prometheus.Registerer) error {
	if cfg.Journal == nil {
		return fmt.Errorf("%w: no journal", ErrTransfer)
	}
	if cfg.MessageSize <= 0 {
		cfg.MessageSize = 16 << 10
	}
	cfg.MessageSize = min(cfg.MessageSize, dns.MaxMsgSize-1024)
	t := &transfer{cfg: cfg, keys: map[string]TSIGKey{}, log: s.log.With("component", "xfr"), m: newXFRMetrics(reg), started: time.Now()}
	for _, k := range cfg.Keys {
		k.Name = strings.ToLower(dns.Fqdn(k.Name))
		if k.Algorithm == "" {
			k.Algorithm = dns.HmacSHA256
		}
		k.Algorithm = strings.ToLower(dns.Fqdn(k.Algorithm))
		switch k.Algorithm {
		case dns.HmacSHA256, dns.HmacSHA384, dns.HmacSHA512, dns.HmacSHA224, dns.HmacSHA1:
		default:
			return fmt.Errorf("%w: key %s: algorithm %s not supported", ErrTransfer, k.Name, k.Algorithm)
		}
		if k.Secret == "" {
			return fmt.Errorf("%w: key %s has no secret", ErrTransfer, k.Name)
		}
		t.keys[k.Name] = k
	}
	if cfg.RequireTSIG && len(t.keys) == 0 {
		return fmt.Errorf("%w: TSIG required but no key given", ErrTransfer)
	}
	if cfg.NotifyKey != "" {
		if _, ok := t.keys[strings.ToLower(dns.Fqdn(cfg.NotifyKey))]; !ok {
			return fmt.Errorf("%w: notify key %s is not among the keys", ErrTransfer, cfg.NotifyKey)
		}
	}
	for _, n := range cfg.Notify {
		if _, _, err := net.SplitHostPort(n); err != nil {
			return fmt.Errorf("%w: notify target %q: want host:port", ErrTransfer, n)
		}
	}
	s.xfr.mu.Lock()
	defer s.xfr.mu.Unlock()
	if len(cfg.Notify) > 0 {
		t.notify = newNotifier(s, t)
		t.notify.start()
	}
	if old := s.xfr.p.Swap(t); old != nil && old.notify != nil {
		old.notify.stop()
	}
	return nil
}

// StopTransfer turns zone transfer off (refusing it again) and stops
// NOTIFY; a NOTIFY round under way is abandoned.
func (s *Server) StopTransfer() {
	s.xfr.mu.Lock()
	defer s.xfr.mu.Unlock()
	if old := s.xfr.p.Swap(nil); old != nil && old.notify != nil {
		old.notify.stop()
	}
}

// ZoneChanged tells the server that the journal has a new latest version:
// secondaries get a NOTIFY (at most once per NotifyInterval).
func (s *Server) ZoneChanged() {
	if t := s.xfr.p.Load(); t != nil && t.notify != nil {
		t.notify.kick()
	}
}

// xfrQuery reports whether serveXFR answers req: transfers, and (when TSIG
// keys are set) every signed query, so that a secondary's signed SOA
// queries get signed answers.
func (s *Server) xfrQuery(req *dns.Msg) bool {
	if len(req.Question) == 1 && (req.Question[0].Qtype == dns.TypeAXFR || req.Question[0].Qtype == dns.TypeIXFR) {
		return true
	}
	t := s.xfr.p.Load()
	return t != nil && len(t.keys) > 0 && req.IsTsig() != nil
}

// serveXFR answers AXFR and IXFR queries, and signed queries when TSIG is
// configured. Without a transfer configuration it refuses (RFC 5936 §2.2.1
// allows refusing).
func (s *Server) serveXFR(w dns.ResponseWriter, req *dns.Msg) {
	t := s.xfr.p.Load()
	if t == nil {
		m := new(dns.Msg)
		m.SetRcode(req, dns.RcodeRefused)
		w.WriteMsg(m)
		return
	}
	defer lifecycle.Recover(t.log, t.m.panics, "panic in zone transfer")
	start := time.Now()
	typ := "axfr"
	q := req.Question[0]
	if q.Qtype == dns.TypeIXFR {
		typ = "ixfr"
	}
	isXFR := q.Qtype == dns.TypeAXFR || q.Qtype == dns.TypeIXFR
	var remote netip.Addr
	tcp := false
	switch a := w.RemoteAddr().(type) {
	case *net.TCPAddr:
		remote, tcp = a.AddrPort().Addr().Unmap(), true
	case *net.UDPAddr:
		remote = a.AddrPort().Addr().Unmap()
	}
	result := "error"
	defer func() {
		if isXFR {
			t.m.requests.WithLabelValues(typ, result).Inc()
			t.m.duration.WithLabelValues(typ).Observe(time.Since(start).Seconds())
			t.log.Debug("zone transfer", "type", typ, "result", result, "remote", remote.String(), "took", time.Since(start))
		}
	}()

	// TSIG first (RFC 8945 §5.2): a bad signature gets NOTAUTH whatever
	// else is wrong.
	sig, err := t.verify(req)
	if err != nil {
		result = "notauth"
		t.log.Info("TSIG check failed", "remote", remote.String(), "err", err)
		w.Write(tsigError(req, err))
		return
	}
	if !isXFR {
		// A signed ordinary query: answer as usual, signed.
		resp := s.Answer(req, tcp)
		if resp == nil {
			return
		}
		sig.send(w, resp)
		return
	}
	reply := func(rcode int) {
		m := new(dns.Msg)
		m.SetRcode(req, rcode)
		sig.send(w, m)
	}
	refuse := func(rcode int, why string) {
		if rcode == dns.RcodeRefused {
			result = "refused"
		} else {
			result = "notauth"
		}
		t.log.Info("zone transfer refused", "type", typ, "remote", remote.String(), "why", why)
		reply(rcode)
	}
	if !t.allowed(remote) {
		refuse(dns.RcodeRefused, "address not in allow list")
		return
	}
	if t.cfg.RequireTSIG && sig == nil {
		refuse(dns.RcodeRefused, "TSIG required")
		return
	}
	snap := t.cfg.Journal.Latest()
	if snap == nil {
		reply(dns.RcodeServerFailure)
		return
	}
	if q.Qclass != dns.ClassINET || !strings.EqualFold(strings.TrimSuffix(q.Name, "."), snap.Zone) {
		refuse(dns.RcodeNotAuth, "not our zone") // RFC 5936 §2.2.1
		return
	}
	ax := s.apexOf(snap)
	soa := ax.soa(ax.zone, ax.soaTTL)
	x := &xfrWriter{w: w, req: req, sig: sig, limit: t.cfg.MessageSize, m: t.m}
	// full sends the whole zone (an AXFR, or an IXFR that reads as one);
	// what names the transfer in the log.
	full := func(what string) {
		if err := s.sendZone(x, t, snap, ax); err != nil {
			t.log.Info(what+" aborted", "remote", remote.String(), "err", err)
			return
		}
		result = "full"
	}
	// upToDate sends the current SOA only.
	upToDate := func() {
		result = "uptodate"
		x.add(soa)
		x.flush()
	}
	if q.Qtype == dns.TypeAXFR {
		if !tcp {
			refuse(dns.RcodeRefused, "AXFR over UDP") // RFC 5936 §4.2: TCP only
			return
		}
		full("AXFR")
		return
	}
	// IXFR: the client's serial is in the SOA of the authority section
	// (RFC 1995 §3).
	var have *dns.SOA
	for _, rr := range req.Ns {
		if v, ok := rr.(*dns.SOA); ok {
			have = v
		}
	}
	if have == nil {
		result = "notauth"
		reply(dns.RcodeFormatError)
		return
	}
	if !zones.SerialLess(have.Serial, snap.Serial) {
		// RFC 1995 §2: up to date (or newer): the current SOA only.
		upToDate()
		return
	}
	latest, changes, ok := t.cfg.Journal.Since(have.Serial)
	if !tcp {
		// RFC 1995 §2: over UDP, the current SOA tells the client to come
		// back over TCP.
		upToDate()
		return
	}
	if !ok {
		// RFC 1995 §4: the journal does not reach back; send the whole
		// zone, which reads as an AXFR.
		full("IXFR (full)")
		return
	}
	if latest != snap {
		snap = latest
		ax = s.apexOf(snap)
		soa = ax.soa(ax.zone, ax.soaTTL)
	}
	// RFC 1995 §4, condensed: new SOA, old SOA, deletions, new SOA,
	// additions, new SOA.
	old := dns.Copy(soa).(*dns.SOA)
	old.Serial = have.Serial
	x.add(soa)
	x.add(old)
	zone, ttl := ax.zone, ax.ttl
	for _, c := range changes {
		emit(x, zones.Name{Prefix: c.Name, Codes: c.Old &^ c.New}, zone, snap.TXT, ttl, c.New == 0)
	}
	x.add(soa)
	for _, c := range changes {
		emit(x, zones.Name{Prefix: c.Name, Codes: c.New &^ c.Old}, zone, snap.TXT, ttl, c.Old == 0)
	}
	x.add(soa)
	if err := x.flush(); err != nil {
		t.log.Info("IXFR aborted", "remote", remote.String(), "err", err)
		return
	}
	result = "incremental"
}

func (t *transfer) allowed(a netip.Addr) bool {
	for _, p := range t.cfg.Allow {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// sendZone streams the whole zone (RFC 5936 §2.2): SOA, NS, glue, every
// name, SOA. Names are generated as they are sent: nothing is held but the
// message being filled.
func (s *Server) sendZone(x *xfrWriter, t *transfer, snap *zones.Snapshot, ax apex) error {
	zone, ttl := ax.zone, ax.ttl
	soa := ax.soa(zone, ax.soaTTL)
	x.add(soa)
	for _, n := range ax.ns {
		x.add(&dns.NS{Hdr: dns.RR_Header{Name: zone, Rrtype: dns.TypeNS, Class: dns.ClassINET, Ttl: ax.nsTTL}, Ns: dns.Fqdn(n)})
	}
	glue := zones.SOA{NS: ax.ns, Glue: t.cfg.Glue}
	for _, g := range glue.InZoneNS(snap.Zone) {
		for _, a := range g.Addrs {
			hdr := dns.RR_Header{Name: g.Owner + "." + zone, Class: dns.ClassINET, Ttl: ttl}
			if a.Is4() {
				hdr.Rrtype = dns.TypeA
				x.add(&dns.A{Hdr: hdr, A: a.AsSlice()})
			} else {
				hdr.Rrtype = dns.TypeAAAA
				x.add(&dns.AAAA{Hdr: hdr, AAAA: a.AsSlice()})
			}
		}
	}
	snap.Names(func(n zones.Name) bool {
		emit(x, n, zone, snap.TXT, ttl, true)
		return x.err == nil
	})
	x.add(soa)
	return x.flush()
}

// emit adds a name's A records for n.Codes, and its TXT when withTXT.
func emit(x *xfrWriter, n zones.Name, zone, tmpl string, ttl uint32, withTXT bool) {
	owner := n.Owner() + "." + zone
	for _, a := range n.Codes.Addrs() {
		x.add(&dns.A{Hdr: dns.RR_Header{Name: owner, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: ttl}, A: a.AsSlice()})
	}
	if withTXT && tmpl != "" {
		x.add(&dns.TXT{Hdr: dns.RR_Header{Name: owner, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: ttl}, Txt: splitTXT(n.TXT(tmpl))})
	}
}

// xfrWriter fills transfer messages up to a size and writes them, signing
// each when the request was signed (RFC 8945 §5.3.1).
type xfrWriter struct {
	w     dns.ResponseWriter
	req   *dns.Msg
	sig   *signer
	limit int
	m     *xfrMetrics
	rrs   []dns.RR
	size  int // rough uncompressed size of rrs
	err   error
}

func (x *xfrWriter) add(rr dns.RR) {
	if x.err != nil {
		return
	}
	x.rrs = append(x.rrs, rr)
	x.size += dns.Len(rr)
	if x.size >= x.limit {
		x.flush()
	}
}

func (x *xfrWriter) flush() error {
	if x.err != nil || len(x.rrs) == 0 {
		return x.err
	}
	m := new(dns.Msg)
	m.SetReply(x.req)
	m.Authoritative = true
	m.Compress = true
	m.Answer = x.rrs
	x.err = x.sig.send(x.w, m)
	x.m.records.Add(float64(len(x.rrs)))
	x.rrs, x.size = x.rrs[:0], 0
	return x.err
}
