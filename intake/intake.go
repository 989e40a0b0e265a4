// Package intake is the central node's side of the forwarding protocol
// (package forward): POST /api/v1/evidence authenticates trap nodes, reads
// their batches with bounded size and concurrency, and commits the events
// through the listing engine; the admin calls list the nodes and revoke
// their tokens. The web server routes those paths here (web.Server).
//
// # Node authentication
//
// A node authenticates with a bearer token (compared in constant time,
// never logged) from Config.NodeTokens or Config.TokensFile, which is
// re-read when it changes, so a node is added or removed by editing the
// file. A token revoked through the admin API stays refused (its SHA-256 is
// kept in the store's metadata) until the node is given a new one. Evidence
// posted with an admin token is recorded as from node "admin" (or the node
// the batch names: `blowback import` through a running node).
//
// # Bounds
//
// A body is read up to Config.MaxBody bytes as sent and, when gzipped,
// up to Config.MaxInflate bytes once decompressed, counted while
// decompressing (a gzip bomb stops at the limit: 413). At most
// Config.MaxInFlight batches are read and committed at once; more get 503
// with Retry-After, which trap nodes retry.
//
// Flow: intake imports store and forward (wire types); nothing but web and
// cmd imports intake.
package intake

import (
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/blowback-dnsbl/blowback/forward"
	"github.com/blowback-dnsbl/blowback/internal/httpjson"
	"github.com/blowback-dnsbl/blowback/store"
)

// Errors: ErrTokens, a malformed node tokens file; ErrTooLarge, a body
// over MaxBody, or over MaxInflate once decompressed.
var (
	ErrTokens   = errors.New("intake: bad node tokens")
	ErrTooLarge = errors.New("intake: body too large")
)

var errNoStore = errors.New("intake: no store to keep revocations")

// Ingester commits one event (and its raw message) durably and re-scores
// its unit; *listing.Engine is one.
type Ingester interface {
	Ingest(ctx context.Context, e *store.Event, raw []byte) error
}

// Store keeps revocations (metadata) and the audit trail; *store.Store is one.
type Store interface {
	GetMeta(name string) ([]byte, error)
	SetMeta(name string, v []byte) error
	Audit(ctx context.Context, e store.AuditEntry) error
}

var _ Store = (*store.Store)(nil)

// Config configures the intake.
type Config struct {
	// NodeTokens authenticate trap nodes, by node id.
	NodeTokens map[string]string
	// TokensFile holds more node tokens, one "node token" pair per line
	// (# comments). It is re-read when it changes.
	TokensFile string
	// RequireClientCert refuses evidence over a connection without a
	// verified TLS client certificate (the server's TLS config must ask
	// for one).
	RequireClientCert bool
	// MaxFuture is how far in the future an event time may lie (clock
	// skew of a trap node); default 1h. Later events are rejected.
	MaxFuture time.Duration
	// Workers bounds the events of one batch committed concurrently
	// (they share fsyncs); default 32.
	Workers int
	// MaxBody bounds a body as sent; default 16 MiB. MaxInflate bounds it
	// once decompressed; default MaxBody (a batch refused plain is refused
	// gzipped). The forwarder's batches (4 MiB) fit with room to spare.
	MaxBody, MaxInflate int64
	// MaxInFlight bounds the batches read and committed at once; default 4
	// (each may hold up to about 3 x MaxInflate of memory while decoded).
	MaxInFlight int
	// IsAdmin reports whether a bearer token is an admin's; nil: none is.
	IsAdmin func(token string) bool
	// AuthFailures and Panics, when set, are the hosting server's counters
	// of refused tokens and recovered panics; intake adds to them.
	AuthFailures, Panics prometheus.Counter
	// Revocations, on a cluster replica, is the log node revocations go
	// through (revokelog.go); nil: they are stored here.
	Revocations RevocationLog
}

// Defaults of Config.
const (
	DefaultMaxBody     = 16 << 20
	DefaultMaxInFlight = 4
)

const (
	metaRevoked = "revoked_node_tokens"
	adminNode   = "admin" // evidence posted with an admin token
)

// Intake serves POST /api/v1/evidence and the node admin calls.
type Intake struct {
	cfg    Config
	static map[string]string
	eng    Ingester
	st     Store
	log    *slog.Logger
	now    func() time.Time
	slots  chan struct{} // MaxInFlight
	m      *metrics

	mu        sync.Mutex
	file      map[string]string // node -> token, from TokensFile
	fileStamp string            // size and mtime of the file last read
	checked   time.Time         // last look at the file
	revoked   map[string]revocation
	loaded    bool      // revoked read from the store
	revRead   time.Time // last read (a replica re-reads: the log's apply writes them)
	seen      map[string]nodeSeen
}

type nodeSeen struct {
	last     time.Time
	accepted int64
}

// New returns the intake. st may be nil (no revocations); reg may be nil.
func New(cfg Config, eng Ingester, st Store, log *slog.Logger, reg prometheus.Registerer) *Intake {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("pkg", "intake")
	if cfg.MaxFuture <= 0 {
		cfg.MaxFuture = time.Hour
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 32
	}
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = DefaultMaxBody
	}
	if cfg.MaxInflate <= 0 {
		cfg.MaxInflate = cfg.MaxBody
	}
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = DefaultMaxInFlight
	}
	if cfg.IsAdmin == nil {
		cfg.IsAdmin = func(string) bool { return false }
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
	in := &Intake{cfg: cfg, static: static, eng: eng, st: st, log: log, now: time.Now,
		slots: make(chan struct{}, cfg.MaxInFlight), revoked: map[string]revocation{}, seen: map[string]nodeSeen{}}
	in.m = newMetrics(reg, func() float64 {
		in.mu.Lock()
		defer in.mu.Unlock()
		return float64(len(in.revoked))
	})
	if cfg.TokensFile != "" {
		in.mu.Lock()
		if err := in.reloadLocked(true); err != nil {
			in.log.Error("node tokens file", "file", cfg.TokensFile, "err", err)
		}
		in.mu.Unlock()
	}
	return in
}

// ServeHTTP takes POST /api/v1/evidence (forward.Path).
func (in *Intake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	tok := httpjson.Bearer(r)
	node, ok, err := in.authenticate(tok)
	if err != nil {
		in.log.Error("node authentication", "err", err)
		in.m.batch("error")
		httpjson.Error(w, http.StatusServiceUnavailable, "internal error; retry")
		return
	}
	if !ok && in.cfg.IsAdmin(tok) {
		node, ok = adminNode, true
	}
	if !ok {
		inc(in.cfg.AuthFailures)
		in.m.batch("unauthorized")
		w.Header().Set("WWW-Authenticate", `Bearer realm="blowback"`)
		httpjson.Error(w, http.StatusUnauthorized, "node token required")
		return
	}
	if in.cfg.RequireClientCert && (r.TLS == nil || len(r.TLS.VerifiedChains) == 0) {
		in.m.batch("forbidden")
		httpjson.Error(w, http.StatusForbidden, "a verified TLS client certificate is required")
		return
	}
	select {
	case in.slots <- struct{}{}:
		defer func() { <-in.slots }()
	default:
		in.m.batch("busy")
		w.Header().Set("Retry-After", "1")
		httpjson.Error(w, http.StatusServiceUnavailable, "too many batches in flight; retry")
		return
	}
	batch, err := in.readBatch(w, r)
	if err != nil {
		in.m.batch("bad_request")
		if errors.Is(err, ErrTooLarge) {
			httpjson.Error(w, http.StatusRequestEntityTooLarge, err.Error())
			return
		}
		httpjson.Error(w, http.StatusBadRequest, err.Error())
		return
	}
	res, err := in.commit(r.Context(), node, batch)
	if err != nil {
		in.log.Error("forwarded evidence", "err", err, "node", node)
		in.m.batch("error")
		w.Header().Set("Retry-After", "1")
		httpjson.Error(w, http.StatusServiceUnavailable, "could not store evidence; retry")
		return
	}
	in.m.batch("ok")
	httpjson.Write(w, http.StatusOK, res)
}

// readBatch decodes the body, gzip or identity (RFC 9110 §8.4), within
// MaxBody as sent and MaxInflate once decompressed.
func (in *Intake) readBatch(w http.ResponseWriter, r *http.Request) (*forward.Batch, error) {
	var body io.Reader = http.MaxBytesReader(w, r.Body, in.cfg.MaxBody)
	switch enc := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding"))); enc {
	case "", "identity":
	case "gzip", "x-gzip":
		zr, err := gzip.NewReader(body)
		if err != nil {
			if tooLarge(err) {
				return nil, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, in.cfg.MaxBody)
			}
			return nil, fmt.Errorf("bad gzip body: %v", err)
		}
		defer zr.Close()
		body = &limitReader{r: zr, n: in.cfg.MaxInflate}
	default:
		return nil, fmt.Errorf("unsupported Content-Encoding %q", enc)
	}
	var b forward.Batch
	if err := json.NewDecoder(body).Decode(&b); err != nil {
		switch {
		case errors.Is(err, ErrTooLarge):
			return nil, fmt.Errorf("%w: more than %d bytes decompressed", ErrTooLarge, in.cfg.MaxInflate)
		case tooLarge(err):
			return nil, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, in.cfg.MaxBody)
		}
		return nil, fmt.Errorf("bad JSON body: %v", err)
	}
	return &b, nil
}

func tooLarge(err error) bool {
	var mbe *http.MaxBytesError
	return errors.As(err, &mbe)
}

// limitReader fails with ErrTooLarge (rather than ends) once n bytes were
// read: the decompressor is never asked for more than n bytes.
type limitReader struct {
	r io.Reader
	n int64
}

func (l *limitReader) Read(p []byte) (int, error) {
	if l.n <= 0 {
		return 0, ErrTooLarge
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
func (in *Intake) commit(ctx context.Context, node string, b *forward.Batch) (forward.Result, error) {
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
				errs <- in.ingest(ctx, ev, b.Raw[ev.ID.String()])
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
	in.m.events.WithLabelValues(node, "accepted").Add(float64(res.Accepted))
	in.m.events.WithLabelValues(node, "rejected").Add(float64(len(res.Rejected)))
	in.m.lastSeen.WithLabelValues(node).Set(float64(now.Unix()))
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

func (in *Intake) ingest(ctx context.Context, ev *store.Event, raw []byte) (err error) {
	defer func() {
		if r := recover(); r != nil {
			inc(in.cfg.Panics)
			in.log.Error("panic ingesting forwarded event", "panic", r, "id", ev.ID.String())
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	if err := in.eng.Ingest(ctx, ev, raw); err != nil {
		return err
	}
	in.m.delay.Observe(max(0, in.now().Sub(ev.Time).Seconds()))
	return nil
}

func inc(c prometheus.Counter) {
	if c != nil {
		c.Inc()
	}
}
