// Package web serves blowback's HTTP surface: the JSON API, the human
// lookup page, /metrics and the health endpoints.
package web

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/blowback-dnsbl/blowback/listing"
	"github.com/blowback-dnsbl/blowback/scoring"
	"github.com/blowback-dnsbl/blowback/store"
	"github.com/blowback-dnsbl/blowback/zones"
)

// Config configures the HTTP server.
type Config struct {
	// AdminTokens may call admin endpoints (Authorization: Bearer <token>).
	AdminTokens []string
	// NodeTokens authenticate trap nodes posting evidence, by node id.
	NodeTokens map[string]string
	// PublicURL is the base URL of this site, used in links.
	PublicURL string
	// DelistPerIPPerHour limits the public delist per requester; default 5.
	DelistPerIPPerHour int
	// DelistPerAddrPerDay limits the public delist per listed address; default 3.
	DelistPerAddrPerDay int
	// SOA is used for zone downloads.
	SOA zones.SOA
}

// Server is the HTTP server.
type Server struct {
	cfg     Config
	eng     *listing.Engine
	st      *store.Store
	cur     *zones.Current
	log     *slog.Logger
	gather  prometheus.Gatherer
	metrics *metrics
	now     func() time.Time
	ready   func() bool

	limMu sync.Mutex
	lim   map[string][]time.Time

	srv  *http.Server
	addr net.Addr
}

// New returns the HTTP server. gather serves /metrics; ready reports readiness.
func New(cfg Config, eng *listing.Engine, st *store.Store, cur *zones.Current, log *slog.Logger,
	reg prometheus.Registerer, gather prometheus.Gatherer, ready func() bool) *Server {
	if cfg.DelistPerIPPerHour == 0 {
		cfg.DelistPerIPPerHour = 5
	}
	if cfg.DelistPerAddrPerDay == 0 {
		cfg.DelistPerAddrPerDay = 3
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if ready == nil {
		ready = func() bool { return true }
	}
	return &Server{cfg: cfg, eng: eng, st: st, cur: cur, log: log.With("pkg", "web"), gather: gather,
		metrics: newMetrics(reg), now: time.Now, ready: ready, lim: map[string][]time.Time{}}
}

// Handler returns the routes.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/lookup/{ip}", s.apiLookup)
	mux.HandleFunc("GET /api/v1/explain/{ip}", s.apiExplain)
	mux.HandleFunc("POST /api/v1/delist", s.apiDelist)
	mux.HandleFunc("POST /api/v1/evidence", s.apiEvidence)
	mux.HandleFunc("POST /api/v1/admin/list", s.admin(s.apiAdminAction(store.OpList)))
	mux.HandleFunc("POST /api/v1/admin/delist", s.admin(s.apiAdminAction(store.OpDelist)))
	mux.HandleFunc("GET /api/v1/admin/evidence/{ip}", s.admin(s.apiAdminEvidence))
	mux.HandleFunc("GET /api/v1/admin/zone", s.admin(s.apiAdminZone))
	mux.HandleFunc("GET /api/v1/admin/backup", s.admin(s.apiAdminBackup))
	mux.HandleFunc("GET /{$}", s.pageIndex)
	mux.HandleFunc("GET /lookup", s.pageLookup)
	if s.gather != nil {
		mux.Handle("GET /metrics", promhttp.HandlerFor(s.gather, promhttp.HandlerOpts{}))
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if !s.ready() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	return s.recoverer(mux)
}

// Start listens on addr and serves until Stop; it returns once bound.
func (s *Server) Start(addr string) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("web: listen %s: %w", addr, err)
	}
	s.addr = l.Addr()
	s.srv = &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: 120 * time.Second, MaxHeaderBytes: 64 << 10,
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelDebug)}
	go func() {
		if err := s.srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("http server stopped", "err", err)
		}
	}()
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
	if err := s.srv.Shutdown(ctx); err != nil {
		s.srv.Close()
		return err
	}
	return nil
}

func (s *Server) recoverer(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.metrics.panics.Inc()
				s.log.Error("panic serving http", "panic", v, "path", r.URL.Path)
				jsonError(w, http.StatusInternalServerError, "internal error")
			}
		}()
		h.ServeHTTP(w, r)
	})
}

// apiError is the one JSON error shape.
type apiError struct {
	Error string `json:"error"`
}

func jsonError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, apiError{Error: msg})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// EvidenceView is an evidence item as shown publicly: the trap's local part
// is never shown.
type EvidenceView struct {
	Time       time.Time `json:"time"`
	Kind       string    `json:"kind"`
	SubKind    string    `json:"sub_kind,omitempty"`
	HELO       string    `json:"helo"`
	TrapDomain string    `json:"trap_domain"`
	MessageID  string    `json:"message_id,omitempty"`
}

// Lookup is the public lookup answer (CONTRACT.md "HTTP").
type Lookup struct {
	IP        string         `json:"ip"`
	Unit      string         `json:"unit"`
	Listed    bool           `json:"listed"`
	Codes     []string       `json:"codes"`
	CodeNames []string       `json:"code_names"`
	Score     float64        `json:"score"`
	FirstSeen *time.Time     `json:"first_seen"`
	LastSeen  *time.Time     `json:"last_seen"`
	Expires   *time.Time     `json:"expires"`
	Counts    map[string]int `json:"counts"`
	Reason    string         `json:"reason"`
	Evidence  []EvidenceView `json:"evidence"`
}

func tptr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC().Truncate(time.Second)
	return &u
}

// maxEvidenceShown bounds the public evidence list.
const maxEvidenceShown = 50

func (s *Server) lookup(a netip.Addr) (Lookup, error) {
	d, _, _, err := s.eng.Decide(a)
	if err != nil {
		return Lookup{}, err
	}
	out := Lookup{IP: a.String(), Unit: d.Unit.String(), Score: d.Score, Reason: d.Reason,
		FirstSeen: tptr(d.FirstSeen), LastSeen: tptr(d.LastSeen), Counts: map[string]int{},
		Codes: []string{}, CodeNames: []string{}, Evidence: []EvidenceView{}}
	for k, n := range d.Counts {
		out.Counts[k.String()] = n
	}
	codes := zones.Codes(0)
	if d.Listed {
		codes = zones.CodesOf(d.Kinds)
		out.Expires = tptr(d.Expires)
	}
	if snap := s.cur.Load(); snap != nil && (a.Unmap() == zones.TestListed) {
		codes = snap.Lookup(a) // RFC 5782 test point
	}
	out.Listed = codes != 0
	for _, c := range codes.Addrs() {
		out.Codes = append(out.Codes, c.String())
	}
	out.CodeNames = append(out.CodeNames, codes.Names()...)
	evs, err := s.st.Events(d.Unit, maxEvidenceShown)
	if err != nil {
		return Lookup{}, err
	}
	for _, e := range evs {
		out.Evidence = append(out.Evidence, EvidenceView{Time: e.Time.UTC().Truncate(time.Second), Kind: e.Kind.String(),
			SubKind: e.SubKind, HELO: e.HELO, TrapDomain: e.TrapDomain, MessageID: e.Original.MessageID})
	}
	return out, nil
}

func parseIP(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(strings.TrimSpace(s))
	if err != nil || a.Zone() != "" {
		return netip.Addr{}, fmt.Errorf("not an IP address: %q", s)
	}
	return a.Unmap(), nil
}

func (s *Server) apiLookup(w http.ResponseWriter, r *http.Request) {
	a, err := parseIP(r.PathValue("ip"))
	if err != nil {
		jsonError(w, http.StatusBadRequest, err.Error())
		return
	}
	l, err := s.lookup(a)
	if err != nil {
		s.log.Error("lookup", "err", err)
		jsonError(w, http.StatusInternalServerError, "internal error")
		return
	}
	writeJSON(w, http.StatusOK, l)
}

func (s *Server) apiExplain(w http.ResponseWriter, r *http.Request) {
	a, err := parseIP(r.PathValue("ip"))
	if err != nil {
		jsonError(w, http.StatusBadRequest, err.Error())
		return
	}
	x, err := s.eng.Explain(a)
	if err != nil {
		s.log.Error("explain", "err", err)
		jsonError(w, http.StatusInternalServerError, "internal error")
		return
	}
	writeJSON(w, http.StatusOK, x)
}

type delistRequest struct {
	IP     string `json:"ip"`
	Reason string `json:"reason"`
}

const maxBody = 1 << 20

func clientKey(r *http.Request) string {
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		return ap.Addr().Unmap().String()
	}
	return r.RemoteAddr
}

// allow applies a sliding-window limit of n per window to key.
func (s *Server) allow(key string, n int, window time.Duration) bool {
	s.limMu.Lock()
	defer s.limMu.Unlock()
	now := s.now()
	hits := s.lim[key][:0:0]
	for _, t := range s.lim[key] {
		if now.Sub(t) < window {
			hits = append(hits, t)
		}
	}
	if len(hits) >= n {
		s.lim[key] = hits
		return false
	}
	s.lim[key] = append(hits, now)
	if len(s.lim) > 100000 { // bound memory: forget everything old
		for k, v := range s.lim {
			if len(v) == 0 || now.Sub(v[len(v)-1]) > 24*time.Hour {
				delete(s.lim, k)
			}
		}
	}
	return true
}

// Delist performs the public self-service delist for a, from requester.
// It returns the HTTP status and a message.
func (s *Server) Delist(ctx context.Context, a netip.Addr, reason, requester string) (int, string) {
	reason = strings.TrimSpace(reason)
	if reason == "" {
		return http.StatusBadRequest, "a reason is required"
	}
	if len(reason) > 1000 {
		return http.StatusBadRequest, "reason too long (1000 bytes at most)"
	}
	unit := scoring.Unit(a)
	if !s.allow("req:"+requester, s.cfg.DelistPerIPPerHour, time.Hour) ||
		!s.allow("addr:"+unit.String(), s.cfg.DelistPerAddrPerDay, 24*time.Hour) {
		s.metrics.delists.WithLabelValues("rate_limited").Inc()
		return http.StatusTooManyRequests, "too many delist requests; try again later"
	}
	_, err := s.eng.Act(ctx, store.Action{Prefix: unit, Op: store.OpDelist, Who: requester, Reason: reason, Public: true})
	if err != nil {
		s.log.Error("public delist", "err", err)
		s.metrics.delists.WithLabelValues("error").Inc()
		return http.StatusInternalServerError, "internal error"
	}
	s.metrics.delists.WithLabelValues("ok").Inc()
	return http.StatusOK, "delisted: " + unit.String()
}

func (s *Server) apiDelist(w http.ResponseWriter, r *http.Request) {
	var req delistRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody)).Decode(&req); err != nil {
		jsonError(w, http.StatusBadRequest, "bad JSON body: "+err.Error())
		return
	}
	a, err := parseIP(req.IP)
	if err != nil {
		jsonError(w, http.StatusBadRequest, err.Error())
		return
	}
	code, msg := s.Delist(r.Context(), a, req.Reason, clientKey(r))
	if code != http.StatusOK {
		jsonError(w, code, msg)
		return
	}
	l, err := s.lookup(a)
	if err != nil {
		jsonError(w, http.StatusInternalServerError, "internal error")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"result": msg, "lookup": l})
}

func bearer(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}

// tokenMatch compares in constant time against every token.
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
		if !tokenMatch(bearer(r), s.cfg.AdminTokens) {
			s.metrics.authFailures.Inc()
			w.Header().Set("WWW-Authenticate", `Bearer realm="blowback"`)
			jsonError(w, http.StatusUnauthorized, "admin token required")
			return
		}
		h(w, r)
	}
}

type adminActionRequest struct {
	IP     string   `json:"ip"`
	Reason string   `json:"reason"`
	Who    string   `json:"who"`
	Kinds  []string `json:"kinds"`
}

func (s *Server) apiAdminAction(op string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req adminActionRequest
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody)).Decode(&req); err != nil {
			jsonError(w, http.StatusBadRequest, "bad JSON body: "+err.Error())
			return
		}
		a, err := parseIP(req.IP)
		if err != nil {
			jsonError(w, http.StatusBadRequest, err.Error())
			return
		}
		if strings.TrimSpace(req.Reason) == "" {
			jsonError(w, http.StatusBadRequest, "a reason is required")
			return
		}
		act := store.Action{Prefix: scoring.Unit(a), Op: op, Who: "admin", Reason: req.Reason}
		if req.Who != "" {
			act.Who = "admin:" + req.Who
		}
		for _, k := range req.Kinds {
			kind, err := store.ParseKind(k)
			if err != nil {
				jsonError(w, http.StatusBadRequest, err.Error())
				return
			}
			act.Kinds = append(act.Kinds, kind)
		}
		if _, err := s.eng.Act(r.Context(), act); err != nil {
			s.log.Error("admin action", "err", err)
			jsonError(w, http.StatusInternalServerError, "internal error")
			return
		}
		l, err := s.lookup(a)
		if err != nil {
			jsonError(w, http.StatusInternalServerError, "internal error")
			return
		}
		writeJSON(w, http.StatusOK, l)
	}
}

func (s *Server) apiAdminEvidence(w http.ResponseWriter, r *http.Request) {
	a, err := parseIP(r.PathValue("ip"))
	if err != nil {
		jsonError(w, http.StatusBadRequest, err.Error())
		return
	}
	d, _, acts, err := s.eng.Decide(a)
	if err != nil {
		jsonError(w, http.StatusInternalServerError, "internal error")
		return
	}
	evs, err := s.st.Events(d.Unit, 0)
	if err != nil {
		jsonError(w, http.StatusInternalServerError, "internal error")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"unit": d.Unit.String(), "events": evs, "actions": acts})
}

func (s *Server) apiAdminZone(w http.ResponseWriter, r *http.Request) {
	f, err := zones.ParseFormat(r.URL.Query().Get("format"))
	if err != nil {
		jsonError(w, http.StatusBadRequest, err.Error())
		return
	}
	snap := s.cur.Load()
	if snap == nil {
		jsonError(w, http.StatusServiceUnavailable, "no zone yet")
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if err := zones.Write(w, f, snap, s.cfg.SOA); err != nil {
		s.log.Error("zone download", "err", err)
	}
}

func (s *Server) apiAdminBackup(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/octet-stream")
	if _, err := s.st.DB().Backup(w, 0); err != nil {
		s.log.Error("backup", "err", err)
	}
}
