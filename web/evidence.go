package web

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/blowback-dnsbl/blowback/forward"
	"github.com/blowback-dnsbl/blowback/store"
)

// IntakeConfig configures POST /api/v1/evidence beyond Config.NodeTokens.
type IntakeConfig struct {
	// TokensFile holds more node tokens, one "node token" pair per line
	// (# comments). It is re-read when it changes, so a node is added or
	// revoked by editing the file, without a restart.
	TokensFile string
	// RequireClientCert refuses evidence over a connection without a
	// verified TLS client certificate (Config.TLS must ask for one).
	RequireClientCert bool
	// MaxFuture is how far in the future an event time may lie (clock
	// skew of a trap node); default 1h. Later events are rejected.
	MaxFuture time.Duration
	// Workers bounds the events of one batch committed concurrently
	// (they share fsyncs); default 32.
	Workers int
}

// EvidenceBatch is what trap nodes post (see package forward).
type EvidenceBatch = forward.Batch

// Body limits of POST /api/v1/evidence: as sent, and once decompressed.
const (
	maxEvidenceBody    = 16 << 20
	maxEvidenceInflate = 64 << 20
	metaRevoked        = "revoked_node_tokens"
	adminNode          = "admin" // evidence posted with an admin token
)

// intake authenticates trap nodes and commits their evidence. A node
// authenticates with a bearer token (compared in constant time, never
// logged) from Config.NodeTokens or IntakeConfig.TokensFile; a token revoked
// through the admin API stays refused (its SHA-256 is kept in the store)
// until the node is given a new one.
type intake struct {
	cfg    IntakeConfig
	static map[string]string
	st     *store.Store
	log    *slog.Logger
	now    func() time.Time
	// Body limits (tests lower them).
	maxBody, maxInflate int64

	events    *prometheus.CounterVec
	batches   *prometheus.CounterVec
	lastSeen  *prometheus.GaugeVec
	delay     prometheus.Histogram
	revokedGa prometheus.GaugeFunc

	mu        sync.Mutex
	file      map[string]string // node -> token, from TokensFile
	fileStamp string            // size and mtime of the file last read
	checked   time.Time         // last look at the file
	revoked   map[string]revocation
	loaded    bool // revoked read from the store
	seen      map[string]nodeSeen
}

type revocation struct {
	Node   string    `json:"node"`
	SHA256 string    `json:"sha256"`
	Time   time.Time `json:"time"`
	Reason string    `json:"reason,omitempty"`
}

type nodeSeen struct {
	last     time.Time
	accepted int64
}

func newIntake(cfg Config, st *store.Store, log *slog.Logger, reg prometheus.Registerer) *intake {
	ic := cfg.Intake
	if ic.MaxFuture <= 0 {
		ic.MaxFuture = time.Hour
	}
	if ic.Workers <= 0 {
		ic.Workers = 32
	}
	static := map[string]string{}
	for n, t := range cfg.NodeTokens {
		switch {
		case !ValidNodeID(n) || n == adminNode:
			log.Error("node_tokens: node id refused (want 1 to 64 of A-Z a-z 0-9 . _ -, not \"admin\")", "node", n)
			continue
		case len(t) < 16:
			log.Warn("node_tokens: token shorter than 16 characters", "node", n)
		}
		static[n] = t
	}
	in := &intake{cfg: ic, static: static, st: st, log: log, now: time.Now,
		maxBody: maxEvidenceBody, maxInflate: maxEvidenceInflate,
		revoked: map[string]revocation{}, seen: map[string]nodeSeen{}}
	// node: the ids of configured trap nodes (bounded by configuration), and "admin".
	// result: accepted, rejected.
	in.events = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "blowback_http_evidence_events_total",
		Help: "Events posted by trap nodes, by node and result (accepted includes duplicates).",
	}, []string{"node", "result"})
	// result: ok, unauthorized, forbidden, bad_request, error.
	in.batches = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "blowback_http_evidence_batches_total",
		Help: "POST /api/v1/evidence requests, by result.",
	}, []string{"result"})
	// node: as for blowback_http_evidence_events_total.
	in.lastSeen = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "blowback_http_evidence_last_batch_timestamp_seconds",
		Help: "Unix time of the last batch accepted from each trap node.",
	}, []string{"node"})
	in.delay = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "blowback_http_evidence_delay_seconds",
		Help:    "Time from a trap seeing an event to the central node committing it.",
		Buckets: prometheus.ExponentialBuckets(0.01, 4, 10),
	})
	in.revokedGa = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "blowback_http_evidence_revoked_tokens",
		Help: "Node tokens revoked through the admin API.",
	}, func() float64 {
		in.mu.Lock()
		defer in.mu.Unlock()
		return float64(len(in.revoked))
	})
	for _, r := range []string{"ok", "unauthorized", "forbidden", "bad_request", "error"} {
		in.batches.WithLabelValues(r)
	}
	if reg != nil {
		reg.MustRegister(in.events, in.batches, in.lastSeen, in.delay, in.revokedGa)
	}
	if ic.TokensFile != "" {
		in.mu.Lock()
		if err := in.reloadLocked(true); err != nil {
			in.log.Error("node tokens file", "file", ic.TokensFile, "err", err)
		}
		in.mu.Unlock()
	}
	return in
}

// ParseNodeTokens reads "node token" lines (# starts a comment).
func ParseNodeTokens(r io.Reader) (map[string]string, error) {
	out := map[string]string{}
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line, _, _ := strings.Cut(sc.Text(), "#")
		f := strings.Fields(line)
		switch {
		case len(f) == 0:
			continue
		case len(f) != 2:
			return nil, fmt.Errorf("%w: node tokens line %d: want \"node token\"", ErrBadRequest, n)
		case !ValidNodeID(f[0]):
			return nil, fmt.Errorf("%w: node tokens line %d: node id %q: want 1 to 64 of A-Z a-z 0-9 . _ -", ErrBadRequest, n, f[0])
		case f[0] == adminNode:
			return nil, fmt.Errorf("%w: node tokens line %d: %q is reserved for admin posts", ErrBadRequest, n, adminNode)
		case len(f[1]) < 16:
			return nil, fmt.Errorf("%w: node tokens line %d: token of node %q shorter than 16 characters", ErrBadRequest, n, f[0])
		}
		if _, dup := out[f[0]]; dup {
			return nil, fmt.Errorf("%w: node tokens line %d: node %q twice", ErrBadRequest, n, f[0])
		}
		out[f[0]] = f[1]
	}
	return out, sc.Err()
}

// ValidNodeID reports whether id can name a trap node: 1 to 64 letters,
// digits, dots, underscores and hyphens (it appears in logs and as a
// metric label value).
func ValidNodeID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, c := range id {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}

// reloadLocked re-reads the tokens file when its size or mtime changed, at
// most once a second unless force. A bad file keeps the previous tokens.
func (in *intake) reloadLocked(force bool) error {
	now := in.now()
	if in.cfg.TokensFile == "" || (!force && now.Sub(in.checked) < time.Second) {
		return nil
	}
	in.checked = now
	fi, err := os.Stat(in.cfg.TokensFile)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) && in.file != nil {
			in.log.Warn("node tokens file removed: its nodes are refused", "file", in.cfg.TokensFile)
			in.file, in.fileStamp = nil, ""
		}
		return err
	}
	stamp := fmt.Sprintf("%d %d", fi.Size(), fi.ModTime().UnixNano())
	if stamp == in.fileStamp {
		return nil
	}
	f, err := os.Open(in.cfg.TokensFile)
	if err != nil {
		return err
	}
	defer f.Close()
	toks, err := ParseNodeTokens(f)
	if err != nil {
		return err
	}
	in.file, in.fileStamp = toks, stamp
	in.log.Info("node tokens loaded", "file", in.cfg.TokensFile, "nodes", len(toks))
	return nil
}

func tokenHash(tok string) string {
	h := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(h[:])
}

// loadRevokedLocked reads the revocations from the store once.
func (in *intake) loadRevokedLocked() error {
	if in.loaded || in.st == nil {
		return nil
	}
	b, err := in.st.GetMeta(metaRevoked)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	var list []revocation
	if len(b) > 0 {
		if err := json.Unmarshal(b, &list); err != nil {
			return fmt.Errorf("web: revoked node tokens: %w", err)
		}
	}
	for _, r := range list {
		in.revoked[r.SHA256] = r
	}
	in.loaded = true
	return nil
}

// tokens is every configured (node, token) pair, file entries last.
func (in *intake) tokensLocked() [][2]string {
	var out [][2]string
	for n, t := range in.static {
		out = append(out, [2]string{n, t})
	}
	for n, t := range in.file {
		out = append(out, [2]string{n, t})
	}
	return out
}

// authenticate returns the node that tok belongs to. Every configured token
// is compared, in constant time, whatever matches first.
func (in *intake) authenticate(tok string) (node string, ok bool, err error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if err := in.reloadLocked(false); err != nil && !errors.Is(err, os.ErrNotExist) {
		in.log.Error("node tokens file; keeping the previous tokens", "file", in.cfg.TokensFile, "err", err)
	}
	if err := in.loadRevokedLocked(); err != nil {
		return "", false, err
	}
	match := 0
	for _, nt := range in.tokensLocked() {
		if nt[1] == "" {
			continue
		}
		if subtle.ConstantTimeCompare([]byte(tok), []byte(nt[1])) == 1 {
			node, match = nt[0], 1
		}
	}
	if tok == "" || match == 0 {
		return "", false, nil
	}
	if _, gone := in.revoked[tokenHash(tok)]; gone {
		in.log.Warn("revoked node token used", "node", node)
		return "", false, nil
	}
	return node, true, nil
}

func (s *Server) apiEvidence(w http.ResponseWriter, r *http.Request) {
	in := s.intake
	node, ok, err := in.authenticate(bearer(r))
	if err != nil {
		s.log.Error("node authentication", "err", err)
		in.batches.WithLabelValues("error").Inc()
		jsonError(w, http.StatusServiceUnavailable, "internal error; retry")
		return
	}
	if !ok && tokenMatch(bearer(r), s.cfg.AdminTokens) {
		node, ok = adminNode, true
	}
	if !ok {
		s.metrics.authFailures.Inc()
		in.batches.WithLabelValues("unauthorized").Inc()
		w.Header().Set("WWW-Authenticate", `Bearer realm="blowback"`)
		jsonError(w, http.StatusUnauthorized, "node token required")
		return
	}
	if in.cfg.RequireClientCert && (r.TLS == nil || len(r.TLS.VerifiedChains) == 0) {
		in.batches.WithLabelValues("forbidden").Inc()
		jsonError(w, http.StatusForbidden, "a verified TLS client certificate is required")
		return
	}
	batch, err := in.readBatch(w, r)
	if err != nil {
		in.batches.WithLabelValues("bad_request").Inc()
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) || errors.Is(err, errInflate) {
			jsonError(w, http.StatusRequestEntityTooLarge, err.Error())
			return
		}
		jsonError(w, http.StatusBadRequest, err.Error())
		return
	}
	res, err := in.commit(r.Context(), s, node, batch)
	if err != nil {
		s.log.Error("forwarded evidence", "err", err, "node", node)
		in.batches.WithLabelValues("error").Inc()
		w.Header().Set("Retry-After", "1")
		jsonError(w, http.StatusServiceUnavailable, "could not store evidence; retry")
		return
	}
	in.batches.WithLabelValues("ok").Inc()
	writeJSON(w, http.StatusOK, res)
}

var errInflate = errors.New("decompressed body too large")

// readBatch decodes the body, gzip or identity (RFC 9110 §8.4).
func (in *intake) readBatch(w http.ResponseWriter, r *http.Request) (*EvidenceBatch, error) {
	var body io.Reader = http.MaxBytesReader(w, r.Body, in.maxBody)
	switch enc := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding"))); enc {
	case "", "identity":
	case "gzip", "x-gzip":
		zr, err := gzip.NewReader(body)
		if err != nil {
			return nil, fmt.Errorf("bad gzip body: %v", err)
		}
		defer zr.Close()
		body = &limitReader{r: zr, n: in.maxInflate}
	default:
		return nil, fmt.Errorf("unsupported Content-Encoding %q", enc)
	}
	var b EvidenceBatch
	if err := json.NewDecoder(body).Decode(&b); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) || errors.Is(err, errInflate) {
			return nil, err
		}
		return nil, fmt.Errorf("bad JSON body: %v", err)
	}
	return &b, nil
}

// limitReader fails (rather than ends) once n bytes were read.
type limitReader struct {
	r io.Reader
	n int64
}

func (l *limitReader) Read(p []byte) (int, error) {
	if l.n <= 0 {
		return 0, errInflate
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.r.Read(p)
	l.n -= int64(n)
	return n, err
}

// commit validates the batch and commits the valid events concurrently (the
// store gathers them into shared fsyncs). It returns once all are durable.
func (in *intake) commit(ctx context.Context, s *Server, node string, b *EvidenceBatch) (forward.Result, error) {
	res := forward.Result{}
	now := in.now()
	var valid []int
	for i := range b.Events {
		ev := &b.Events[i]
		switch {
		case node != adminNode:
			ev.Node = node // the authenticated node, never what the body claims
		case ev.Node == "" && b.Node != "":
			ev.Node = b.Node // an admin (e.g. blowback import) may name the source
		case ev.Node == "":
			ev.Node = adminNode
		}
		err := ev.Validate()
		if err == nil && ev.Time.After(now.Add(in.cfg.MaxFuture)) {
			err = fmt.Errorf("event time %s is in the future", ev.Time.UTC().Format(time.RFC3339))
		}
		if err != nil {
			rej := forward.Rejection{Index: i, Error: err.Error()}
			if !ev.ID.IsZero() {
				rej.ID = ev.ID.String()
			}
			res.Rejected = append(res.Rejected, rej)
			continue
		}
		valid = append(valid, i)
	}
	work := make(chan int)
	errs := make(chan error, len(valid))
	var wg sync.WaitGroup
	for w := 0; w < min(in.cfg.Workers, len(valid)); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				ev := &b.Events[i]
				errs <- in.ingest(ctx, s, ev, b.Raw[ev.ID.String()])
			}
		}()
	}
	for _, i := range valid {
		work <- i
	}
	close(work)
	wg.Wait()
	close(errs)
	var all []error
	for err := range errs {
		if err != nil {
			all = append(all, err)
		}
	}
	if len(all) > 0 {
		return res, fmt.Errorf("%d of %d events: %w", len(all), len(valid), all[0])
	}
	res.Accepted = len(valid)
	in.events.WithLabelValues(node, "accepted").Add(float64(res.Accepted))
	in.events.WithLabelValues(node, "rejected").Add(float64(len(res.Rejected)))
	in.lastSeen.WithLabelValues(node).Set(float64(now.Unix()))
	in.mu.Lock()
	ns := in.seen[node]
	ns.last, ns.accepted = now, ns.accepted+int64(res.Accepted)
	in.seen[node] = ns
	in.mu.Unlock()
	for _, rj := range res.Rejected {
		in.log.Warn("rejected forwarded event", "node", node, "index", rj.Index, "id", rj.ID, "err", rj.Error)
	}
	return res, nil
}

func (in *intake) ingest(ctx context.Context, s *Server, ev *store.Event, raw []byte) (err error) {
	defer func() {
		if r := recover(); r != nil {
			s.metrics.panics.Inc()
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	if err := s.eng.Ingest(ctx, ev, raw); err != nil {
		return err
	}
	in.delay.Observe(max(0, in.now().Sub(ev.Time).Seconds()))
	return nil
}

// NodeInfo is a trap node as the admin API shows it (never its token).
type NodeInfo struct {
	Node     string     `json:"node"`
	Source   string     `json:"source"` // "config" or "file"
	Revoked  bool       `json:"revoked"`
	LastSeen *time.Time `json:"last_seen"` // last accepted batch since this process started
	Accepted int64      `json:"accepted"`  // events accepted since this process started
}

func (in *intake) nodes() ([]NodeInfo, error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if err := in.reloadLocked(false); err != nil && !errors.Is(err, os.ErrNotExist) {
		in.log.Error("node tokens file; keeping the previous tokens", "file", in.cfg.TokensFile, "err", err)
	}
	if err := in.loadRevokedLocked(); err != nil {
		return nil, err
	}
	var out []NodeInfo
	add := func(src string, m map[string]string) {
		for n, t := range m {
			ns := in.seen[n]
			_, rev := in.revoked[tokenHash(t)]
			out = append(out, NodeInfo{Node: n, Source: src, Revoked: rev, LastSeen: tptr(ns.last), Accepted: ns.accepted})
		}
	}
	add("config", in.static)
	add("file", in.file)
	sort.Slice(out, func(i, j int) bool {
		return out[i].Node < out[j].Node || (out[i].Node == out[j].Node && out[i].Source < out[j].Source)
	})
	return out, nil
}

// revoke refuses from now on every current token of node.
func (in *intake) revoke(ctx context.Context, node, reason string) (int, error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if err := in.loadRevokedLocked(); err != nil {
		return 0, err
	}
	if in.st == nil {
		return 0, errors.New("web: no store to keep revocations")
	}
	now := in.now().UTC()
	next := map[string]revocation{}
	for k, v := range in.revoked {
		next[k] = v
	}
	n := 0
	for _, nt := range in.tokensLocked() {
		if nt[0] != node || nt[1] == "" {
			continue
		}
		h := tokenHash(nt[1])
		if _, ok := next[h]; !ok {
			next[h] = revocation{Node: node, SHA256: h, Time: now, Reason: reason}
			n++
		}
	}
	if n == 0 {
		return 0, nil
	}
	list := make([]revocation, 0, len(next))
	for _, v := range next {
		list = append(list, v)
	}
	sort.Slice(list, func(i, j int) bool { return list[i].SHA256 < list[j].SHA256 })
	b, err := json.Marshal(list)
	if err != nil {
		return 0, err
	}
	if err := in.st.SetMeta(metaRevoked, b); err != nil {
		return 0, err
	}
	in.revoked = next
	if err := in.st.Audit(ctx, store.AuditEntry{Time: now, Who: "admin", Action: "revoke-node", Target: node, Reason: reason,
		Detail: fmt.Sprintf("%d token(s)", n)}); err != nil {
		in.log.Error("audit", "err", err)
	}
	in.log.Warn("node token revoked", "node", node, "tokens", n)
	return n, nil
}

func (s *Server) apiAdminNodes(w http.ResponseWriter, r *http.Request) {
	nodes, err := s.intake.nodes()
	if err != nil {
		s.log.Error("admin nodes", "err", err)
		jsonError(w, http.StatusInternalServerError, "internal error")
		return
	}
	if nodes == nil {
		nodes = []NodeInfo{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"nodes": nodes})
}

type revokeRequest struct {
	Reason string `json:"reason"`
}

func (s *Server) apiAdminRevokeNode(w http.ResponseWriter, r *http.Request) {
	node := r.PathValue("node")
	var req revokeRequest
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 64<<10))
	if err == nil && len(bytes.TrimSpace(body)) > 0 {
		err = json.Unmarshal(body, &req)
	}
	if err != nil {
		jsonError(w, http.StatusBadRequest, "bad JSON body: "+err.Error())
		return
	}
	n, err := s.intake.revoke(r.Context(), node, strings.TrimSpace(req.Reason))
	if err != nil {
		s.log.Error("revoke node", "err", err, "node", node)
		jsonError(w, http.StatusInternalServerError, "internal error")
		return
	}
	if n == 0 {
		jsonError(w, http.StatusNotFound, "no unrevoked token for node "+node)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"node": node, "revoked": n})
}
