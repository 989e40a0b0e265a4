// Package trap runs the SMTP listeners of the trap domains. Every message to
// a trap address is unsolicited; the trap classifies it, commits the evidence
// for the connecting address and only then acknowledges. It never sends or
// relays mail.
//
// The server is go-smtp behind a listener of our own (listener.go) that
// enforces connection limits, reads PROXY headers from trusted peers only
// (proxy.go), bounds every session in time, commands and errors, and a
// session (session.go) that records evidence: messages after DATA, and
// sender-verification probes (callouts) that end without DATA.
package trap

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/blowback-dnsbl/blowback/classify"
	"github.com/blowback-dnsbl/blowback/store"
)

// Sink takes committed evidence. It must return only once ev is durable.
type Sink interface {
	Ingest(ctx context.Context, ev *store.Event, raw []byte) error
}

// FakeSink records events in memory (tests).
type FakeSink struct {
	mu     sync.Mutex
	Events []*store.Event
	Raw    [][]byte
	Err    error // returned by Ingest when set
}

var _ Sink = (*FakeSink)(nil)

// Ingest implements Sink.
func (f *FakeSink) Ingest(_ context.Context, ev *store.Event, raw []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.Err != nil {
		return f.Err
	}
	f.Events = append(f.Events, ev)
	f.Raw = append(f.Raw, raw)
	return nil
}

// Snapshot returns a copy of the recorded events.
func (f *FakeSink) Snapshot() []*store.Event {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*store.Event(nil), f.Events...)
}

// Config configures the trap listener. A zero field takes its default; the
// limits are always on (go-smtp's own default to none).
type Config struct {
	Domains  []string // trap domains; RCPT for anything else is refused
	Hostname string   // name in the greeting; default "blowback-trap"
	Node     string   // trap node id recorded in evidence

	MaxMessageBytes int64 // SIZE and DATA limit, 552 5.3.4 past it; default 10 MiB
	KeepBytes       int64 // bytes of a message kept for classification and the store; default 1 MiB
	MaxRecipients   int   // per transaction, 452 4.5.3 past it; default 50
	MaxLineLength   int   // command and text lines, 500 past it; default 2000 (RFC 5321 §4.5.3.1.6 doubled)

	ReadTimeout time.Duration // per command line; default 60s
	// StressReadTimeout replaces ReadTimeout while 3/4 of MaxConns are open
	// (Postfix's stress-adaptive smtpd_timeout), so idle floods drain fast;
	// default 10s.
	StressReadTimeout time.Duration
	WriteTimeout      time.Duration // per reply; default 60s
	DataTimeout       time.Duration // the whole DATA transfer; default 5m (RFC 5321 §4.5.3.2.6 asks 10m of clients)
	SessionTimeout    time.Duration // the whole connection; default 10m
	// DataMinRate is the slowest message transfer kept open, in bytes per
	// second over each DataRateWindow, checked from DataRateGrace after the
	// transfer began (Postfix smtpd_min_data_rate); default 500, negative:
	// off. Each read inside the transfer also waits at most ReadTimeout
	// (StressReadTimeout under stress).
	DataMinRate    int
	DataRateWindow time.Duration // default 10s
	DataRateGrace  time.Duration // default 10s

	MaxConns      int // open connections overall, 421 4.7.0 past it; default 1000
	MaxConnsPerIP int // per client (IPv4 address or IPv6 /64); default 20
	MaxConnsPer24 int // per IPv4 /24; default 5 x MaxConnsPerIP (100); negative: no cap
	MaxConnsPer48 int // per IPv6 /48; default 5 x MaxConnsPerIP (100); negative: no cap
	ConnRatePerIP int // new connections per minute per client; default 300; negative: no rate limit
	ConnBurst     int // bucket size of that rate; default 60
	MaxCommands   int // replies per connection before 421 4.7.0; default 1000
	MaxErrors     int // 4xx/5xx replies per connection before 421 4.7.0; default 20 (Postfix smtpd_hard_error_limit)

	// ProxyTrusted: peers allowed to send a PROXY v1/v2 header, which they
	// must then send. Anyone else sending one is refused.
	ProxyTrusted       []netip.Prefix
	ProxyHeaderTimeout time.Duration // default 5s

	// MaxCalloutsPerConn: callout events (transactions without DATA)
	// recorded per connection; more are counted in limit_hits{callouts};
	// default 1.
	MaxCalloutsPerConn int

	// QuarantineDir: where a message that made the classifier panic is
	// kept for a look (<event id>.eml, 0600), at most QuarantineMax files;
	// empty: not kept apart (the store keeps it as any other).
	QuarantineDir string
	QuarantineMax int // default 100

	RejectAfterData bool        // answer 550 after DATA (evidence still recorded)
	TLS             *tls.Config // STARTTLS when set (see TLSConfig)
	// ServeFailed, when set, is called if a listener stops serving by
	// itself (not through Stop); the node turns /readyz red.
	ServeFailed func(error)
}

func (c *Config) defaults() {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	dur := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	c.Hostname = cmp.Or(c.Hostname, "blowback-trap")
	if c.MaxMessageBytes <= 0 {
		c.MaxMessageBytes = 10 << 20
	}
	if c.KeepBytes <= 0 {
		c.KeepBytes = 1 << 20
	}
	c.KeepBytes = min(c.KeepBytes, c.MaxMessageBytes)
	def(&c.MaxRecipients, 50)
	def(&c.MaxLineLength, 2000)
	dur(&c.ReadTimeout, 60*time.Second)
	dur(&c.StressReadTimeout, 10*time.Second)
	c.StressReadTimeout = min(c.StressReadTimeout, c.ReadTimeout)
	dur(&c.WriteTimeout, 60*time.Second)
	dur(&c.DataTimeout, 5*time.Minute)
	dur(&c.SessionTimeout, 10*time.Minute)
	def(&c.MaxConns, 1000)
	def(&c.MaxConnsPerIP, 20)
	def(&c.DataMinRate, 500)
	dur(&c.DataRateWindow, 10*time.Second)
	dur(&c.DataRateGrace, 10*time.Second)
	def(&c.MaxConnsPer24, 5*c.MaxConnsPerIP)
	def(&c.MaxConnsPer48, 5*c.MaxConnsPerIP)
	def(&c.ConnRatePerIP, 300)
	def(&c.ConnBurst, 60)
	def(&c.MaxCommands, 1000)
	def(&c.MaxErrors, 20)
	dur(&c.ProxyHeaderTimeout, 5*time.Second)
	def(&c.MaxCalloutsPerConn, 1)
	def(&c.QuarantineMax, 100)
}

// Errors returned to SMTP clients: generic text, details go to the log.
var (
	errRelay       = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "Relaying denied"}
	errTemporary   = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Temporary failure, try again later"}
	errStorageFull = &smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 3, 1}, Message: "Insufficient system storage, try again later"}
	errTooBig      = &smtp.SMTPError{Code: 552, EnhancedCode: smtp.EnhancedCode{5, 3, 4}, Message: "Message too big"}
	errLineTooLong = &smtp.SMTPError{Code: 500, EnhancedCode: smtp.EnhancedCode{5, 5, 2}, Message: "Line too long"}
	errRejected    = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "Message rejected"}
	errBadAddr     = &smtp.SMTPError{Code: 501, EnhancedCode: smtp.EnhancedCode{5, 1, 3}, Message: "Bad recipient address syntax"}
)

// Server is the trap SMTP listener.
type Server struct {
	cfg     Config
	sink    Sink
	log     *slog.Logger
	metrics *metrics
	srv     *smtp.Server
	lim     *limiter
	domains map[string]bool
	now     func() time.Time
	// classify is classify.Classify; tests replace it (before Start) to make it
	// report a recovered panic.
	classify func([]byte, classify.Envelope) classify.Result

	qmu sync.Mutex // quarantine

	mu   sync.Mutex
	addr net.Addr
	ln   *listener
	done chan struct{}
}

// New returns a trap server that commits evidence to sink. reg may be nil.
func New(cfg Config, sink Sink, log *slog.Logger, reg prometheus.Registerer) *Server {
	cfg.defaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{cfg: cfg, sink: sink, log: log.With("pkg", "trap"), metrics: newMetrics(reg), domains: map[string]bool{}, now: time.Now,
		classify: classify.Classify}
	rate := max(cfg.ConnRatePerIP, 0)
	s.lim = newLimiter(cfg.MaxConns, cfg.MaxConnsPerIP, max(cfg.MaxConnsPer24, 0), max(cfg.MaxConnsPer48, 0), rate, cfg.ConnBurst, time.Now)
	for _, d := range cfg.Domains {
		s.domains[normDomain(d)] = true
	}
	srv := smtp.NewServer(s)
	srv.Domain = cfg.Hostname
	srv.MaxMessageBytes = cfg.MaxMessageBytes
	srv.MaxRecipients = cfg.MaxRecipients
	srv.MaxLineLength = cfg.MaxLineLength
	srv.ReadTimeout = cfg.ReadTimeout
	srv.WriteTimeout = cfg.WriteTimeout
	srv.TLSConfig = cfg.TLS
	srv.ErrorLog = smtpLog{s}
	s.srv = srv
	return s
}

// Start listens on addr and serves until Stop; it returns once bound.
func (s *Server) Start(addr string) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("trap: listen %s: %w", addr, err)
	}
	s.Serve(l)
	s.log.Info("trap listening", "addr", l.Addr().String(), "domains", s.cfg.Domains, "starttls", s.cfg.TLS != nil,
		"proxy_trusted", len(s.cfg.ProxyTrusted))
	return nil
}

// Serve serves on l (already bound) until Stop, in the background.
func (s *Server) Serve(l net.Listener) {
	ln := newListener(l, s)
	s.mu.Lock()
	s.addr = l.Addr()
	s.ln = ln
	s.done = make(chan struct{})
	done := s.done
	s.mu.Unlock()
	go func() {
		defer close(done)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, smtp.ErrServerClosed) {
			s.log.Error("smtp server stopped", "err", err)
			if s.cfg.ServeFailed != nil {
				s.cfg.ServeFailed(err)
			}
		}
	}()
}

// Addr is the bound address.
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// Stop waits for sessions to end until ctx is done, then closes them.
func (s *Server) Stop(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	if err != nil {
		s.srv.Close()
	}
	s.mu.Lock()
	ln := s.ln
	s.mu.Unlock()
	if ln != nil {
		ln.Close()
		ln.wg.Wait() // accept loop and PROXY readers (bounded by ProxyHeaderTimeout)
	}
	return err
}

func (s *Server) trusted(a netip.Addr) bool {
	return slices.ContainsFunc(s.cfg.ProxyTrusted, func(p netip.Prefix) bool { return p.Contains(a) })
}

// recoverGo recovers a panic at the top of a goroutine and counts it.
func (s *Server) recoverGo(where string) {
	if r := recover(); r != nil {
		s.metrics.panics.WithLabelValues("trap").Inc()
		s.log.Error("panic recovered", "where", where, "panic", r)
	}
}

// NewSession implements smtp.Backend. It is called at each HELO/EHLO that
// starts a session, and again after STARTTLS.
func (s *Server) NewSession(c *smtp.Conn) (_ smtp.Session, err error) {
	defer func() {
		if r := recover(); r != nil {
			s.metrics.panics.WithLabelValues("trap").Inc()
			s.log.Error("panic in smtp session start", "panic", r)
			err = errTemporary
		}
	}()
	tc := connOf(c.Conn())
	var ip netip.Addr
	if tc != nil {
		ip = tc.client.Addr()
	} else {
		ip = addrPortOf(c.Conn().RemoteAddr()).Addr()
	}
	_, isTLS := c.TLSConnectionState()
	if !isTLS {
		s.metrics.sessions.Inc()
	} else {
		s.metrics.starttls.Inc()
	}
	return &session{srv: s, conn: c, tc: tc, ip: ip, helo: c.Hostname()}, nil
}

func normDomain(d string) string {
	return strings.ToLower(strings.TrimSuffix(d, "."))
}

// smtpLog takes go-smtp's internal log lines; it counts the panics go-smtp
// recovers itself (it answers those 421 4.0.0 and closes). One is known:
// go-smtp v0.25.1 starts BDAT's Data in a goroutine that calls Session() and
// finds it nil when the client hung up mid-chunk (harmless, recovered).
type smtpLog struct{ s *Server }

func (p smtpLog) Printf(format string, v ...any) { p.line(fmt.Sprintf(format, v...)) }
func (p smtpLog) Println(v ...any)               { p.line(fmt.Sprintln(v...)) }

func (p smtpLog) line(msg string) {
	msg = strings.TrimSpace(msg)
	if strings.HasPrefix(msg, "panic serving") {
		source := "go-smtp"
		if strings.Contains(msg, "handleBdat.func1") {
			// go-smtp v0.25.1 calls Data on a session it already closed
			// when the client hangs up mid-BDAT: an upstream bug any
			// client can trigger, recovered and harmless. Counted apart so
			// that it does not hide (or page for) real panics.
			source = "go-smtp-bdat-hangup"
		}
		p.s.metrics.panics.WithLabelValues(source).Inc()
		p.s.log.Error("panic in smtp connection", "msg", msg)
		return
	}
	p.s.log.Debug(msg)
}
