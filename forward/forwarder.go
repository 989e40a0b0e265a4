package forward

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/blowback-dnsbl/blowback/internal/lifecycle"
	"github.com/blowback-dnsbl/blowback/store"
)

// ErrConfig reports an unusable forwarder configuration.
var ErrConfig = errors.New("forward: bad configuration")

// Config configures a Forwarder.
type Config struct {
	// URL is the central node: its base URL ("https://central:8443") or the
	// full evidence URL.
	URL string
	// Token is this node's bearer token on the central node. Never logged.
	Token string
	// Node is this node's id, sent for information (the central node
	// records the id its token belongs to).
	Node string
	// TLS configures the HTTPS link (CA pool, client certificate); nil
	// uses the system roots.
	TLS *tls.Config
	// BatchEvents and BatchBytes bound a batch; defaults 500 and 4 MiB.
	BatchEvents int
	BatchBytes  int
	// Timeout bounds one request; default 30s.
	Timeout time.Duration
	// BackoffMin and BackoffMax bound the wait between failed attempts:
	// exponential from min to max, with jitter; defaults 500ms and 2m.
	BackoffMin time.Duration
	BackoffMax time.Duration
	// Poll is how often an idle forwarder looks at the spool even without a
	// new event; default 5s.
	Poll time.Duration
	// NoGzip sends bodies uncompressed.
	NoGzip bool
	// Client overrides the HTTP client (tests); TLS is then ignored.
	Client *http.Client
}

func (c *Config) defaults() {
	if c.BatchEvents <= 0 {
		c.BatchEvents = 500
	}
	if c.BatchBytes <= 0 {
		c.BatchBytes = 4 << 20
	}
	if c.Timeout <= 0 {
		c.Timeout = 30 * time.Second
	}
	if c.BackoffMin <= 0 {
		c.BackoffMin = 500 * time.Millisecond
	}
	if c.BackoffMax < c.BackoffMin {
		c.BackoffMax = max(2*time.Minute, c.BackoffMin)
	}
	if c.Poll <= 0 {
		c.Poll = 5 * time.Second
	}
}

// EvidenceURL turns a central node's base URL into its evidence URL.
func EvidenceURL(s string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimSpace(s))
	if err != nil {
		return nil, fmt.Errorf("%w: forward URL: %v", ErrConfig, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%w: forward URL %q: want http(s)://host[:port][/path]", ErrConfig, u.Redacted())
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = Path
	}
	return u, nil
}

// Forwarder drains a Spool into the central node. It implements trap.Sink:
// the trap hands it evidence, which is spooled durably before Ingest returns.
type Forwarder struct {
	cfg     Config
	spool   *Spool
	url     *url.URL
	client  *http.Client
	log     *slog.Logger
	metrics *metrics

	ctx    context.Context // requests; cancelled when Stop's deadline passes
	cancel context.CancelFunc
	loop   *lifecycle.Loop // the forwarding goroutine
}

// New returns a forwarder from sp to the central node. reg may be nil.
func New(cfg Config, sp *Spool, log *slog.Logger, reg prometheus.Registerer) (*Forwarder, error) {
	cfg.defaults()
	u, err := EvidenceURL(cfg.URL)
	if err != nil {
		return nil, err
	}
	if cfg.Token == "" {
		return nil, fmt.Errorf("%w: a node token is required", ErrConfig)
	}
	if strings.ContainsAny(cfg.Token, " \t\r\n") {
		return nil, fmt.Errorf("%w: the node token contains white space", ErrConfig)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	client := cfg.Client
	if client == nil {
		tr := &http.Transport{
			Proxy:               http.ProxyFromEnvironment,
			DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			TLSClientConfig:     cfg.TLS,
			ForceAttemptHTTP2:   true,
			TLSHandshakeTimeout: 10 * time.Second,
			MaxIdleConnsPerHost: 2,
			IdleConnTimeout:     90 * time.Second,
		}
		client = &http.Client{Transport: tr}
	}
	ctx, cancel := context.WithCancel(context.Background())
	f := &Forwarder{cfg: cfg, spool: sp, url: u, client: client, log: log.With("pkg", "forward"),
		ctx: ctx, cancel: cancel, loop: lifecycle.NewLoop()}
	f.metrics = newMetrics(reg, sp)
	return f, nil
}

// Ingest spools ev durably (trap.Sink); the forwarder sends it soon after.
func (f *Forwarder) Ingest(ctx context.Context, ev *store.Event, raw []byte) error {
	spooled, err := f.spool.put(ctx, ev, raw)
	switch {
	case err == nil:
		if spooled {
			f.metrics.spooled.Inc()
		}
	case errors.Is(err, ErrSpoolFull):
		f.metrics.spoolErrors.WithLabelValues("full").Inc()
	default:
		f.metrics.spoolErrors.WithLabelValues("error").Inc()
	}
	return err
}

// Start starts the forwarding loop.
func (f *Forwarder) Start() {
	f.log.Info("forwarding evidence", "to", f.url.Redacted(), "backlog", f.spool.Len(), "dead_letters", f.spool.Dead())
	go f.run()
}

// Stop ends the loop: a batch in flight may finish until ctx is done. What
// is not acknowledged stays in the spool for the next start.
func (f *Forwarder) Stop(ctx context.Context) error {
	err := f.loop.Stop(ctx)
	f.cancel()
	if err != nil {
		<-f.loop.Done() // the request in flight ends with f.ctx
	}
	return err
}

// Backlog is the number of events waiting to be forwarded.
func (f *Forwarder) Backlog() int64 { return f.spool.Len() }

// Drain waits until the backlog is empty or ctx is done (tests, benchmarks).
func (f *Forwarder) Drain(ctx context.Context) error { return f.spool.WaitEmpty(ctx) }

// retryError is a failed attempt that is worth retrying.
type retryError struct {
	reason string        // metrics label
	after  time.Duration // Retry-After from the central node, if any
	err    error
}

func (e *retryError) Error() string { return e.reason + ": " + e.err.Error() }
func (e *retryError) Unwrap() error { return e.err }

func (f *Forwarder) run() {
	defer f.loop.Exit()
	var after []byte // key of the last acknowledged item
	fails := 0
	for {
		select {
		case <-f.loop.Stopping():
			return
		default:
		}
		items, err := f.peek(after)
		if errors.Is(err, ErrClosed) {
			return
		}
		if err != nil {
			f.log.Error("read spool", "err", err)
			fails++
			f.sleep(f.backoff(fails), false)
			continue
		}
		if len(items) == 0 {
			if after != nil {
				// Events committed out of sequence order may sit behind the
				// cursor: look once more from the start before idling.
				after = nil
				continue
			}
			f.sleep(f.cfg.Poll, true)
			continue
		}
		err = f.deliver(items)
		if err != nil {
			fails++
			var re *retryError
			reason, wait := "error", f.backoff(fails)
			if errors.As(err, &re) {
				reason = re.reason
				wait = max(wait, min(re.after, f.cfg.BackoffMax))
			}
			f.metrics.failed.WithLabelValues(reason).Inc()
			lvl := slog.LevelWarn
			if reason == "unauthorized" {
				lvl = slog.LevelError
			}
			f.log.Log(context.Background(), lvl, "forwarding failed; evidence stays spooled", "err", err,
				"attempt", fails, "retry_in", wait.Round(time.Millisecond), "backlog", f.spool.Len())
			f.sleep(wait, false)
			continue
		}
		if fails > 0 {
			f.log.Info("central node reachable again", "after_attempts", fails, "backlog", f.spool.Len())
		}
		fails = 0
		after = items[len(items)-1].Key
	}
}

func (f *Forwarder) peek(after []byte) (items []Item, err error) {
	defer func() {
		if r := recover(); r != nil {
			f.metrics.panics.Inc()
			err = fmt.Errorf("forward: panic reading spool: %v", r)
		}
	}()
	return f.spool.Peek(after, f.cfg.BatchEvents, f.cfg.BatchBytes)
}

// sleep waits d, or until stopped; when wake is set a new event ends the wait.
func (f *Forwarder) sleep(d time.Duration, wake bool) { f.spool.Wait(f.loop.Stopping(), d, wake) }

// backoff is the wait before attempt n+1 (Backoff).
func (f *Forwarder) backoff(n int) time.Duration {
	return Backoff(n, f.cfg.BackoffMin, f.cfg.BackoffMax)
}

// Backoff is the wait before attempt n+1 of a sender draining a spool:
// exponential from lo, capped at hi, with "equal jitter" (half fixed, half
// random) so that many traps do not hammer a returning server in step.
func Backoff(n int, lo, hi time.Duration) time.Duration {
	d := lo
	for i := 1; i < n && d < hi; i++ {
		d *= 2
	}
	d = min(d, hi)
	return d/2 + rand.N(d/2+1)
}

// deliver sends items; on 400 or 413 it splits the batch to isolate what the
// central node will not take, and dead-letters single events it rejects.
func (f *Forwarder) deliver(items []Item) (err error) {
	defer func() {
		if r := recover(); r != nil {
			f.metrics.panics.Inc()
			err = &retryError{reason: "error", err: fmt.Errorf("panic: %v", r)}
		}
	}()
	res, status, err := f.post(items)
	if err != nil {
		return err
	}
	switch status {
	case http.StatusOK:
		return f.settle(items, res)
	case http.StatusBadRequest, http.StatusRequestEntityTooLarge:
		if len(items) == 1 {
			f.log.Error("central node refuses an event; moved to the dead-letter queue", "id", items[0].ID, "status", status)
			return f.deadLetter(items)
		}
		h := len(items) / 2
		if err := f.deliver(items[:h]); err != nil {
			return err
		}
		return f.deliver(items[h:])
	}
	return &retryError{reason: "error", err: fmt.Errorf("unexpected status %d", status)}
}

// settle removes acknowledged items and dead-letters rejected ones.
func (f *Forwarder) settle(items []Item, res Result) error {
	var acked, dead []Item
	rejected := map[int]Rejection{}
	for _, r := range res.Rejected {
		if r.Index >= 0 && r.Index < len(items) {
			rejected[r.Index] = r
		}
	}
	for i, it := range items {
		if r, ok := rejected[i]; ok {
			f.log.Error("central node rejected an event; moved to the dead-letter queue", "id", it.ID, "reason", r.Error)
			dead = append(dead, it)
			continue
		}
		acked = append(acked, it)
	}
	if err := f.spool.Ack(acked); err != nil {
		return &retryError{reason: "spool", err: err}
	}
	f.metrics.sent.Add(float64(len(acked)))
	f.metrics.batches.Inc()
	f.metrics.lastSuccess.SetToCurrentTime()
	if len(dead) > 0 {
		return f.deadLetter(dead)
	}
	return nil
}

func (f *Forwarder) deadLetter(items []Item) error {
	if err := f.spool.DeadLetter(items); err != nil {
		return &retryError{reason: "spool", err: err}
	}
	f.metrics.deadLettered.Add(float64(len(items)))
	return nil
}

// body encodes items as a Batch, gzipped unless NoGzip.
func (f *Forwarder) body(items []Item) ([]byte, error) {
	b := outBatch{Node: f.cfg.Node, Events: make([]json.RawMessage, len(items))}
	for i, it := range items {
		b.Events[i] = it.Event
		if len(it.Raw) > 0 {
			if b.Raw == nil {
				b.Raw = map[string][]byte{}
			}
			b.Raw[it.ID.String()] = it.Raw
		}
	}
	js, err := json.Marshal(b)
	if err != nil {
		return nil, err
	}
	if f.cfg.NoGzip {
		return js, nil
	}
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	zw.Write(js)
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// post sends one batch. It returns the result for 200, the status alone for
// 400 and 413, and a *retryError for everything else.
func (f *Forwarder) post(items []Item) (res Result, status int, err error) {
	start := time.Now()
	defer func() {
		outcome := "ok"
		if err != nil {
			outcome = "error"
		}
		f.metrics.requestSeconds.WithLabelValues(outcome).Observe(time.Since(start).Seconds())
		f.log.Debug("post batch", "events", len(items), "status", status, "took", time.Since(start), "err", err)
	}()
	body, err := f.body(items)
	if err != nil {
		return res, 0, &retryError{reason: "error", err: err}
	}
	ctx, cancel := context.WithTimeout(f.ctx, f.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, f.url.String(), bytes.NewReader(body))
	if err != nil {
		return res, 0, &retryError{reason: "error", err: err}
	}
	req.Header.Set("Authorization", "Bearer "+f.cfg.Token)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "blowback-trap")
	req.Header.Set("Idempotency-Key", fmt.Sprintf("%s-%d", items[0].ID, len(items)))
	if !f.cfg.NoGzip {
		req.Header.Set("Content-Encoding", "gzip")
	}
	resp, err := f.client.Do(req)
	if err != nil {
		return res, 0, &retryError{reason: "network", err: err}
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	status = resp.StatusCode
	switch {
	case status == http.StatusOK:
		if err := json.Unmarshal(msg, &res); err != nil {
			return res, status, &retryError{reason: "bad_response", err: fmt.Errorf("decode answer: %v", err)}
		}
		return res, status, nil
	case status == http.StatusBadRequest || status == http.StatusRequestEntityTooLarge:
		f.log.Warn("central node refused a batch", "status", status, "events", len(items), "answer", snippet(msg))
		return res, status, nil
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return res, status, &retryError{reason: "unauthorized", err: fmt.Errorf("central node answered %d (token wrong or revoked?)", status)}
	case status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable:
		return res, status, &retryError{reason: "throttled", after: retryAfter(resp.Header.Get("Retry-After")),
			err: fmt.Errorf("central node answered %d: %s", status, snippet(msg))}
	default:
		return res, status, &retryError{reason: "server_error", err: fmt.Errorf("central node answered %d: %s", status, snippet(msg))}
	}
}

// retryAfter reads a Retry-After header (RFC 9110 §10.2.3): seconds or a date.
func retryAfter(h string) time.Duration {
	if h == "" {
		return 0
	}
	if n, err := strconv.Atoi(h); err == nil && n >= 0 {
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(h); err == nil {
		return max(0, time.Until(t))
	}
	return 0
}

func snippet(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}
