// Package web serves blowback's HTTP surface: the JSON API, the human
// lookup, delist and status pages, /metrics and the health endpoints.
//
// POST /api/v1/evidence and the trap-node admin calls are routed to
// package intake, which owns the central side of the forwarding protocol.
//
// Pages are server-rendered (html/template) and work without JavaScript;
// the one stylesheet is embedded. Every error, from a handler or from the
// router (404, 405), has one JSON shape: {"error": "..."}; browsers asking
// for HTML on a non-API path get the same message as a page.
package web

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/blowback-dnsbl/blowback/forward"
	"github.com/blowback-dnsbl/blowback/intake"
	"github.com/blowback-dnsbl/blowback/internal/httpjson"
	"github.com/blowback-dnsbl/blowback/internal/ratelimit"
	"github.com/blowback-dnsbl/blowback/listing"
	"github.com/blowback-dnsbl/blowback/store"
	"github.com/blowback-dnsbl/blowback/zones"
)

// Errors.
var (
	ErrBadRequest = errors.New("web: bad request")
	ErrForbidden  = errors.New("web: forbidden")
)

// Config configures the HTTP server.
type Config struct {
	// AdminTokens may call admin endpoints (Authorization: Bearer <token>).
	AdminTokens []string
	// PublicURL is the base URL of this site, used in links and as the
	// allowed Origin of form posts.
	PublicURL string
	// Title names the list on every page; default "blowback backscatter list".
	Title string
	// Contact is shown on the pages (an address or URL for questions).
	Contact string
	// DelistPerIPPerHour limits the public delist per requester; default 5.
	DelistPerIPPerHour int
	// DelistPerAddrPerDay limits the public delist per listed address; default 3.
	DelistPerAddrPerDay int
	// TrustedProxies may set X-Forwarded-For: for requests from them the
	// requester (rate-limit key) is the last untrusted address in it.
	TrustedProxies []netip.Prefix
	// StaleAfter is the zone age the status page calls stale; default 1h.
	StaleAfter time.Duration
	// FormSecret keys the delist form's CSRF tokens; empty: random per
	// process (set it when several frontends share one public name).
	FormSecret []byte
	// SOA is used for zone downloads.
	SOA zones.SOA
	// Intake configures POST /api/v1/evidence and the node admin calls
	// (package intake: node tokens, limits).
	Intake intake.Config
	// Card is what the list's card says beyond zone and policy (card.go).
	Card CardConfig
	// SelfTest runs operator self-tests (selftest.go); nil: off.
	SelfTest SelfTester
	// TLS, when set, makes Start serve HTTPS (with its certificates and
	// client-certificate policy).
	TLS *tls.Config
	// Connection caps (conns.go): open connections overall (default
	// DefaultMaxConns) and per client, an IPv4 /24 or IPv6 /64 (default
	// DefaultMaxConnsPerClient; trusted proxies count only overall);
	// keep-alive idle timeout (default DefaultIdleTimeout), and the one
	// under pressure (default DefaultShortIdle).
	MaxConns          int
	MaxConnsPerClient int
	IdleTimeout       time.Duration
	ShortIdle         time.Duration
	// ServeFailed, when set, is called if a listener stops serving by
	// itself (not through Stop); the node turns /readyz red.
	ServeFailed func(error)
	// DNSKeys, when set, is the DNS consumer-key admin API (dnsd.Keys.Handler), mounted by keys.go.
	DNSKeys http.Handler
}

// Server is the HTTP server.
type Server struct {
	cfg      Config
	eng      *listing.Engine
	st       *store.Store
	cur      *zones.Current
	log      *slog.Logger
	gather   prometheus.Gatherer
	metrics  *metrics
	now      func() time.Time
	ready    func() bool
	csrfKey  []byte
	stats    *hitStats
	seedOnce sync.Once
	routes   map[string]string // mux pattern -> handler label
	intake   *intake.Intake
	conns    *connLimiter
	// What the public pages read and the public delist writes (seams.go).
	read     Reader
	delister Delister
	op       operator // card, advice, history, self-test pages (selftest.go)

	// Public delist limits: per requester (address, IPv6 /64) and per
	// listed unit; history API requests per requester.
	limReq, limAddr, limHist *ratelimit.Limiter[netip.Prefix]

	srv  *http.Server
	addr net.Addr
	stop chan struct{}
	wg   sync.WaitGroup
}

// New returns the HTTP server. gather serves /metrics (and feeds the hit
// chart from blowback_listing_events_total); ready reports readiness.
func New(cfg Config, eng *listing.Engine, st *store.Store, cur *zones.Current, log *slog.Logger,
	reg prometheus.Registerer, gather prometheus.Gatherer, ready func() bool) *Server {
	var (
		rd Reader
		dl Delister
	)
	if eng != nil {
		rd, dl = engineReader{Engine: eng, st: st}, eng
	}
	s := NewWith(cfg, rd, dl, cur, log, reg, gather, ready)
	s.eng, s.st = eng, st
	ic := s.cfg.Intake
	ic.IsAdmin = func(tok string) bool { return tokenMatch(tok, s.cfg.AdminTokens) }
	ic.AuthFailures, ic.Panics = s.metrics.authFailures, s.metrics.panics
	s.intake = intake.New(ic, eng, st, log, reg)
	return s
}

// NewWith returns a server whose public pages and APIs (index, lookup,
// delist form, lookup, explain and delist APIs) read rd and delist through
// dl: for tests with FakeListing. The admin API, the evidence intake and
// the status page need New (the engine and the store).
func NewWith(cfg Config, rd Reader, dl Delister, cur *zones.Current, log *slog.Logger,
	reg prometheus.Registerer, gather prometheus.Gatherer, ready func() bool) *Server {
	if cfg.DelistPerIPPerHour == 0 {
		cfg.DelistPerIPPerHour = 5
	}
	if cfg.DelistPerAddrPerDay == 0 {
		cfg.DelistPerAddrPerDay = 3
	}
	if cfg.Title == "" {
		cfg.Title = "blowback backscatter list"
	}
	if cfg.StaleAfter == 0 {
		cfg.StaleAfter = time.Hour
	}
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = DefaultMaxConns
	}
	if cfg.MaxConnsPerClient <= 0 {
		cfg.MaxConnsPerClient = DefaultMaxConnsPerClient
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.ShortIdle <= 0 {
		cfg.ShortIdle = DefaultShortIdle
	}
	cfg.PublicURL = strings.TrimSuffix(cfg.PublicURL, "/")
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if ready == nil {
		ready = func() bool { return true }
	}
	key := cfg.FormSecret
	if len(key) == 0 {
		key = make([]byte, 32)
		rand.Read(key)
	}
	s := &Server{cfg: cfg, read: rd, delister: dl, cur: cur, log: log.With("pkg", "web"), gather: gather,
		metrics: newMetrics(reg), now: time.Now, ready: ready,
		limReq:  newLimiter(cfg.DelistPerIPPerHour, time.Hour, limiterKeys),
		limAddr: newLimiter(cfg.DelistPerAddrPerDay, 24*time.Hour, limiterKeys),
		limHist: newLimiter(120, time.Minute, limiterKeys),
		csrfKey: key, routes: map[string]string{}, stop: make(chan struct{})}
	s.stats = newHitStats()
	s.conns = newConnLimiter(cfg.MaxConns, cfg.MaxConnsPerClient, cfg.ShortIdle, s.trusted)
	s.conns.onRefuse = func(reason string) { s.metrics.connsRefused.WithLabelValues(reason).Inc() }
	s.metrics.registerConns(reg, s.conns)
	return s
}

// serveIntake, serveIntakeNodes and serveIntakeRevoke route to the
// evidence intake, which only a server made by New has.
func (s *Server) serveIntake(w http.ResponseWriter, r *http.Request) {
	if s.noIntake(w) {
		return
	}
	s.intake.ServeHTTP(w, r)
}

func (s *Server) serveIntakeNodes(w http.ResponseWriter, r *http.Request) {
	if s.noIntake(w) {
		return
	}
	s.intake.ServeNodes(w, r)
}

func (s *Server) serveIntakeRevoke(w http.ResponseWriter, r *http.Request) {
	if s.noIntake(w) {
		return
	}
	s.intake.ServeRevoke(w, r)
}

func (s *Server) noIntake(w http.ResponseWriter) bool {
	if s.intake == nil {
		http.Error(w, "evidence intake not configured", http.StatusServiceUnavailable)
		return true
	}
	return false
}

// Handler returns the routes.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	h := func(pattern, name string, fn http.HandlerFunc) {
		s.routes[pattern] = name
		mux.HandleFunc(pattern, fn)
	}
	h("GET /api/v1/lookup/{ip}", "api_lookup", s.apiLookup)
	h("GET /api/v1/explain/{ip}", "api_explain", s.apiExplain)
	h("GET /api/v1/status", "api_status", s.apiStatus)
	h("POST /api/v1/delist", "api_delist", s.jsonPost(s.apiDelist))
	h("POST "+forward.Path, "api_evidence", s.jsonPost(s.serveIntake))
	h("POST /api/v1/admin/list", "api_admin", s.admin(s.jsonPost(s.apiAdminAction(store.OpList))))
	h("POST /api/v1/admin/delist", "api_admin", s.admin(s.jsonPost(s.apiAdminAction(store.OpDelist))))
	h("GET /api/v1/admin/evidence/{ip}", "api_admin", s.admin(s.apiAdminEvidence))
	h("GET /api/v1/admin/audit", "api_admin", s.admin(s.apiAdminAudit))
	h("GET /api/v1/admin/zone", "api_admin", s.admin(s.apiAdminZone))
	h("GET /api/v1/admin/backup", "api_admin", s.admin(s.apiAdminBackup))
	h("GET /api/v1/admin/nodes", "api_admin", s.admin(s.serveIntakeNodes))
	h("POST /api/v1/admin/nodes/{node}/revoke", "api_admin", s.admin(s.jsonPost(s.serveIntakeRevoke)))
	s.keyRoutes(h)
	s.allowRoutes(h) // allow.go
	h("GET /{$}", "page_index", s.pageIndex)
	h("GET /lookup", "page_lookup", s.pageLookup)
	h("POST /delist", "page_delist", s.pageDelist)
	h("GET /status", "page_status", s.pageStatus)
	h("GET /static/", "static", s.static)
	s.operatorRoutes(h) // card.go, history.go, selftest.go
	if s.gather != nil {
		ph := promhttp.HandlerFor(s.gather, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)})
		h("GET /metrics", "metrics", ph.ServeHTTP)
	}
	h("GET /healthz", "health", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	h("GET /readyz", "health", func(w http.ResponseWriter, r *http.Request) {
		if !s.ready() {
			jsonError(w, http.StatusServiceUnavailable, "not ready")
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ready")
	})
	return s.instrument(mux)
}

// instrument routes a request, counts it, recovers panics and turns the
// router's own plain-text 404/405 into the JSON error shape.
func (s *Server) instrument(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		_, pattern := mux.Handler(r)
		name, matched := s.routes[pattern]
		if !matched {
			name = "unmatched"
		}
		sw := &statusWriter{ResponseWriter: w}
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.metrics.panics.Inc()
				s.log.Error("panic serving http", "panic", v, "path", r.URL.Path)
				if !sw.wrote {
					jsonError(sw, http.StatusInternalServerError, "internal error")
				}
			}
			s.metrics.observe(name, sw.code(), time.Since(start))
		}()
		if !matched {
			s.routerError(sw, r, mux)
			return
		}
		mux.ServeHTTP(sw, r)
	})
}

// routerError runs the mux's fallback (404, 405 or a redirect) into a
// buffer and answers 404/405 in the one error shape, keeping Allow.
func (s *Server) routerError(w http.ResponseWriter, r *http.Request, mux *http.ServeMux) {
	rec := &bufferWriter{h: http.Header{}}
	mux.ServeHTTP(rec, r)
	switch rec.status {
	case http.StatusNotFound, http.StatusMethodNotAllowed:
	default: // a redirect (path cleaning) or anything else: pass it on
		for k, v := range rec.h {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.status)
		w.Write(rec.body)
		return
	}
	msg := "not found: " + r.URL.Path
	if rec.status == http.StatusMethodNotAllowed {
		msg = "method " + r.Method + " not allowed on " + r.URL.Path
		if allow := rec.h.Get("Allow"); allow != "" {
			w.Header().Set("Allow", allow)
			msg += " (allowed: " + allow + ")"
		}
	}
	if wantsHTML(r) {
		s.renderError(w, r, rec.status, msg)
		return
	}
	jsonError(w, rec.status, msg)
}

// wantsHTML: a browser on a page path gets HTML errors; API paths and
// non-browser clients get JSON.
func wantsHTML(r *http.Request) bool {
	return !strings.HasPrefix(r.URL.Path, "/api/") && strings.Contains(r.Header.Get("Accept"), "text/html")
}

type statusWriter struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote {
		w.status, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if !w.wrote {
		w.status, w.wrote = http.StatusOK, true
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) code() int {
	if w.status == 0 {
		return http.StatusOK
	}
	return w.status
}

// Unwrap lets http.ResponseController reach the connection.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

type bufferWriter struct {
	h      http.Header
	status int
	body   []byte
}

func (b *bufferWriter) Header() http.Header { return b.h }
func (b *bufferWriter) WriteHeader(code int) {
	if b.status == 0 {
		b.status = code
	}
}
func (b *bufferWriter) Write(p []byte) (int, error) {
	if b.status == 0 {
		b.status = http.StatusOK
	}
	if len(b.body) < 64<<10 {
		b.body = append(b.body, p...)
	}
	return len(p), nil
}

// Start listens on addr and serves until Stop; it returns once bound.
func (s *Server) Start(addr string) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("web: listen %s: %w", addr, err)
	}
	s.addr = l.Addr()
	// The caps count TCP connections, under TLS.
	s.conns.plain = s.cfg.TLS == nil
	l = &limitListener{Listener: l, l: s.conns}
	if s.cfg.TLS != nil {
		l = tls.NewListener(l, s.cfg.TLS)
	}
	s.srv = &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 5 * time.Minute, IdleTimeout: s.cfg.IdleTimeout, MaxHeaderBytes: 64 << 10,
		ConnState: s.conns.connState, ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelDebug)}
	go func() {
		if err := s.srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("http server stopped", "err", err)
			if s.cfg.ServeFailed != nil {
				s.cfg.ServeFailed(err)
			}
		}
	}()
	s.wg.Add(1)
	go s.runStats()
	s.log.Info("http listening", "addr", l.Addr().String())
	return nil
}

// Addr is the bound address.
func (s *Server) Addr() net.Addr { return s.addr }

// Stop shuts the server down gracefully until ctx ends, then closes.
func (s *Server) Stop(ctx context.Context) error {
	if s.srv == nil {
		return nil
	}
	close(s.stop)
	err := s.srv.Shutdown(ctx)
	if err != nil {
		s.srv.Close()
	}
	s.wg.Wait()
	return err
}

func jsonError(w http.ResponseWriter, code int, msg string) { httpjson.Error(w, code, msg) }

func writeJSON(w http.ResponseWriter, code int, v any) { httpjson.Write(w, code, v) }

// tokenMatch compares in constant time against every token (no early exit,
// so the time taken says nothing about which token nearly matched).
func tokenMatch(got string, tokens []string) bool {
	ok := 0
	for _, t := range tokens {
		if t != "" {
			ok |= subtle.ConstantTimeCompare([]byte(got), []byte(t))
		}
	}
	return got != "" && ok == 1
}

func (s *Server) admin(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.eng == nil || s.st == nil { // NewWith: pages only
			jsonError(w, http.StatusServiceUnavailable, "no admin API on this server")
			return
		}
		if !tokenMatch(httpjson.Bearer(r), s.cfg.AdminTokens) {
			s.unauthorized(w, "admin token required")
			return
		}
		h(w, r)
	}
}

// unauthorized counts a failed admin authentication and answers 401 with msg.
func (s *Server) unauthorized(w http.ResponseWriter, msg string) {
	s.metrics.authFailures.Inc()
	w.Header().Set("WWW-Authenticate", `Bearer realm="blowback"`)
	jsonError(w, http.StatusUnauthorized, msg)
}

// limiterKeys bounds the keys each delist limiter remembers.
const limiterKeys = 100000

// requester names the requester of r (recorded with a public delist).
func (s *Server) requester(r *http.Request) string {
	a := s.requesterAddr(r)
	if !a.IsValid() {
		return r.RemoteAddr
	}
	return a.String()
}

// requesterAddr is the requester of r: the TCP peer, or for a trusted
// proxy the last address in X-Forwarded-For that is not a trusted proxy.
// Invalid when the peer address cannot be parsed.
func (s *Server) requesterAddr(r *http.Request) netip.Addr {
	peer, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	a := peer.Addr().Unmap()
	if !s.trusted(a) {
		return a
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		h, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			break
		}
		a = h.Unmap()
		if !s.trusted(a) {
			break
		}
	}
	return a
}

func (s *Server) trusted(a netip.Addr) bool {
	return slices.ContainsFunc(s.cfg.TrustedProxies, func(p netip.Prefix) bool { return p.Contains(a) })
}
