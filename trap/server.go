// Package trap runs the SMTP listeners of the trap domains. Every message to
// a trap address is unsolicited; the trap classifies it, commits the evidence
// for the connecting address and only then acknowledges. It never sends or
// relays mail.
package trap

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/prometheus/client_golang/prometheus"

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
	Err    error // returned by Ingest when set
}

var _ Sink = (*FakeSink)(nil)

// Ingest implements Sink.
func (f *FakeSink) Ingest(_ context.Context, ev *store.Event, _ []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.Err != nil {
		return f.Err
	}
	f.Events = append(f.Events, ev)
	return nil
}

// Snapshot returns a copy of the recorded events.
func (f *FakeSink) Snapshot() []*store.Event {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*store.Event(nil), f.Events...)
}

// Config configures the trap listener.
type Config struct {
	Domains         []string      // trap domains; RCPT for anything else is refused
	Hostname        string        // name in the greeting; default "blowback-trap"
	Node            string        // trap node id recorded in evidence
	MaxMessageBytes int64         // default 10 MiB
	MaxRecipients   int           // default 50
	MaxLineLength   int           // default 2000 (RFC 5321 §4.5.3.1.6 doubled)
	ReadTimeout     time.Duration // per command/line; default 60s
	WriteTimeout    time.Duration // default 60s
	RejectAfterData bool          // answer 550 after DATA (evidence still recorded)
	TLS             *tls.Config   // STARTTLS when set
}

func (c *Config) defaults() {
	if c.Hostname == "" {
		c.Hostname = "blowback-trap"
	}
	if c.MaxMessageBytes == 0 {
		c.MaxMessageBytes = 10 << 20
	}
	if c.MaxRecipients == 0 {
		c.MaxRecipients = 50
	}
	if c.MaxLineLength == 0 {
		c.MaxLineLength = 2000
	}
	if c.ReadTimeout == 0 {
		c.ReadTimeout = 60 * time.Second
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = 60 * time.Second
	}
}

// Errors returned to SMTP clients: generic text, details go to the log.
var (
	errRelay     = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "Relaying denied"}
	errTemporary = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Temporary failure, try again later"}
	errTooBig    = &smtp.SMTPError{Code: 552, EnhancedCode: smtp.EnhancedCode{5, 3, 4}, Message: "Message too big"}
	errRejected  = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "Message rejected"}
	errBadAddr   = &smtp.SMTPError{Code: 501, EnhancedCode: smtp.EnhancedCode{5, 1, 3}, Message: "Bad recipient address syntax"}
)

// Server is the trap SMTP listener.
type Server struct {
	cfg     Config
	sink    Sink
	log     *slog.Logger
	metrics *metrics
	srv     *smtp.Server
	domains map[string]bool
	now     func() time.Time

	mu   sync.Mutex
	addr net.Addr
	done chan struct{}
}

// New returns a trap server that commits evidence to sink. reg may be nil.
func New(cfg Config, sink Sink, log *slog.Logger, reg prometheus.Registerer) *Server {
	cfg.defaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{cfg: cfg, sink: sink, log: log.With("pkg", "trap"), metrics: newMetrics(reg), domains: map[string]bool{}, now: time.Now}
	for _, d := range cfg.Domains {
		s.domains[strings.ToLower(strings.TrimSuffix(d, "."))] = true
	}
	srv := smtp.NewServer(s)
	srv.Domain = cfg.Hostname
	srv.MaxMessageBytes = cfg.MaxMessageBytes
	srv.MaxRecipients = cfg.MaxRecipients
	srv.MaxLineLength = cfg.MaxLineLength
	srv.ReadTimeout = cfg.ReadTimeout
	srv.WriteTimeout = cfg.WriteTimeout
	srv.TLSConfig = cfg.TLS
	srv.ErrorLog = slogPrinter{s.log}
	s.srv = srv
	return s
}

// Start listens on addr and serves until Stop; it returns once bound.
func (s *Server) Start(addr string) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("trap: listen %s: %w", addr, err)
	}
	s.mu.Lock()
	s.addr = l.Addr()
	s.done = make(chan struct{})
	s.mu.Unlock()
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(l); err != nil && !errors.Is(err, smtp.ErrServerClosed) {
			s.log.Error("smtp server stopped", "err", err)
		}
	}()
	s.log.Info("trap listening", "addr", l.Addr().String(), "domains", s.cfg.Domains)
	return nil
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
	return err
}

// NewSession implements smtp.Backend.
func (s *Server) NewSession(c *smtp.Conn) (smtp.Session, error) {
	ip := peerAddr(c.Conn().RemoteAddr())
	s.metrics.sessions.Inc()
	return &session{srv: s, conn: c, ip: ip, helo: c.Hostname()}, nil
}

func peerAddr(a net.Addr) netip.Addr {
	if ta, ok := a.(*net.TCPAddr); ok {
		if ip, ok := netip.AddrFromSlice(ta.IP); ok {
			return ip.Unmap()
		}
	}
	if ap, err := netip.ParseAddrPort(a.String()); err == nil {
		return ap.Addr().Unmap()
	}
	return netip.Addr{}
}

type session struct {
	srv  *Server
	conn *smtp.Conn
	ip   netip.Addr
	helo string

	mailSeen bool
	from     string
	rcpts    []string
	data     bool // a DATA completed for the current transaction
}

// A trap address is any address at a trap domain.
func (s *Server) trapDomain(rcpt string) (string, bool) {
	at := strings.LastIndexByte(rcpt, '@')
	if at < 0 {
		return "", false
	}
	d := strings.ToLower(strings.TrimSuffix(rcpt[at+1:], "."))
	return d, s.domains[d]
}

func (ss *session) Mail(from string, _ *smtp.MailOptions) error {
	ss.endTransaction("mail")
	ss.mailSeen = true
	ss.from = from
	return nil
}

func (ss *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	if strings.ContainsAny(to, " \t\r\n") {
		return errBadAddr
	}
	if _, ok := ss.srv.trapDomain(to); !ok {
		ss.srv.metrics.relayDenied.Inc()
		return errRelay // never relay
	}
	ss.rcpts = append(ss.rcpts, to)
	return nil
}

func (ss *session) Data(r io.Reader) (err error) {
	defer ss.recoverPanic(&err)
	start := time.Now()
	raw, err := io.ReadAll(r)
	if err != nil {
		var se *smtp.SMTPError
		if errors.As(err, &se) && se.Code == 552 {
			ss.srv.metrics.messages.WithLabelValues("too_big").Inc()
			return errTooBig
		}
		return errTemporary
	}
	res := Classify(raw, Envelope{MailFrom: ss.from, Null: ss.from == "", Known: true, Rcpts: ss.rcpts})
	ev := ss.event(res)
	ev.Size = int64(len(raw))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := ss.srv.sink.Ingest(ctx, ev, raw); err != nil {
		ss.srv.log.Error("commit evidence", "err", err, "client", ss.ip)
		ss.srv.metrics.messages.WithLabelValues("error").Inc()
		return errTemporary
	}
	ss.data = true
	ss.srv.metrics.messages.WithLabelValues("accepted").Inc()
	ss.srv.metrics.classified.WithLabelValues(ev.Kind.String()).Inc()
	ss.srv.metrics.commitSeconds.Observe(time.Since(start).Seconds())
	ss.srv.log.Debug("evidence committed", "id", ev.ID, "client", ss.ip, "kind", ev.Kind, "subkind", ev.SubKind)
	if ss.srv.cfg.RejectAfterData {
		return errRejected
	}
	return nil
}

func (ss *session) event(res Result) *store.Event {
	dom, _ := ss.srv.trapDomain(firstOr(ss.rcpts))
	_, isTLS := ss.conn.TLSConnectionState()
	if h := ss.conn.Hostname(); h != "" {
		ss.helo = h // EHLO may be repeated (after STARTTLS)
	}
	return &store.Event{
		ID: store.NewEventID(), Time: ss.srv.now().UTC(), Node: ss.srv.cfg.Node,
		ClientIP: ss.ip, HELO: ss.helo, MailFrom: ss.from, Rcpts: append([]string(nil), ss.rcpts...),
		TrapDomain: dom, TLS: isTLS, Kind: res.Kind, SubKind: res.SubKind, Signals: res.Signals,
		MessageID: res.MessageID, From: res.From, Subject: res.Subject, Headers: res.Headers,
		DSN: res.DSN, Original: res.Original, TrapField: res.TrapField,
	}
}

func firstOr(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}

func (ss *session) recoverPanic(err *error) {
	if r := recover(); r != nil {
		ss.srv.metrics.panics.Inc()
		ss.srv.log.Error("panic in smtp session", "panic", r, "client", ss.ip)
		*err = errTemporary
	}
}

// endTransaction closes the current transaction. One that reached RCPT for
// a trap address but sent no DATA is a sender-verification probe (callout)
// when its reverse-path is one a callout uses.
func (ss *session) endTransaction(why string) {
	defer func() {
		ss.mailSeen, ss.from, ss.rcpts, ss.data = false, "", nil, false
	}()
	if !ss.mailSeen || ss.data || len(ss.rcpts) == 0 || !CalloutSender(ss.from) {
		return
	}
	ev := ss.event(Result{Kind: store.KindCallout, SubKind: "rcpt-without-data", Signals: []string{"no-data:" + why, "callout-sender"}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := ss.srv.sink.Ingest(ctx, ev, nil); err != nil {
		ss.srv.log.Error("commit callout evidence", "err", err, "client", ss.ip)
		return
	}
	ss.srv.metrics.classified.WithLabelValues(store.KindCallout.String()).Inc()
}

// CalloutSender reports whether a reverse-path is one that sender
// verification uses: the null sender, postmaster, or a double-bounce address.
func CalloutSender(from string) bool {
	if from == "" {
		return true
	}
	local := strings.ToLower(from)
	if at := strings.LastIndexByte(local, '@'); at >= 0 {
		local = local[:at]
	}
	switch local {
	case "postmaster", "double-bounce", "mailer-daemon", "<>":
		return true
	}
	return strings.HasPrefix(local, "double-bounce") || strings.HasPrefix(local, "callout") || strings.HasPrefix(local, "verify")
}

func (ss *session) Reset() {
	defer func() {
		if r := recover(); r != nil {
			ss.srv.metrics.panics.Inc()
			ss.srv.log.Error("panic in smtp reset", "panic", r)
		}
	}()
	ss.endTransaction("rset")
}

func (ss *session) Logout() error {
	defer func() {
		if r := recover(); r != nil {
			ss.srv.metrics.panics.Inc()
			ss.srv.log.Error("panic in smtp logout", "panic", r)
		}
	}()
	ss.endTransaction("quit")
	return nil
}

type slogPrinter struct{ l *slog.Logger }

func (p slogPrinter) Printf(format string, v ...any) {
	p.l.Debug(strings.TrimSpace(fmt.Sprintf(format, v...)))
}
func (p slogPrinter) Println(v ...any) { p.l.Debug(strings.TrimSpace(fmt.Sprintln(v...))) }
