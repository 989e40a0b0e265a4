// Package selftest lets a listed operator prove a fix: blowback sends one
// probe to a random, non-existent recipient at the operator's mail domain,
// from an envelope sender made for this test at a trap domain, and watches
// what comes back to that address (a bounce, an auto-reply, a callout).
// A server that rejects the recipient during the SMTP session and sends
// nothing back passes, and its listing is removed at once; one that
// accepts and then bounces fails, with the evidence.
//
// This is the only mail blowback ever sends, so it is off unless enabled,
// goes only to the MX hosts of the named domain (resolved with the
// configured resolver; private and loopback addresses refused unless
// allowed for tests), one probe per test, rate-limited per domain, per MX
// address and per requester.
//
// Mail for test addresses reaches the tester through Divert, which
// listing.Config.Divert calls for every event before it is stored (the
// trap's and those forwarded by trap nodes alike), or through Tap, a
// wrapper of a trap's sink: mail we asked for is not evidence and is never
// stored as such (a bounce of our own probe is not backscatter).
package selftest

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/blowback-dnsbl/blowback/internal/lifecycle"
	"github.com/blowback-dnsbl/blowback/internal/ratelimit"
	"github.com/blowback-dnsbl/blowback/store"
)

// Errors.
var (
	ErrDisabled    = errors.New("selftest: disabled")
	ErrBadDomain   = errors.New("selftest: bad domain")
	ErrRateLimited = errors.New("selftest: rate limited")
	ErrBusy        = errors.New("selftest: too many tests running")
	ErrNotFound    = errors.New("selftest: no such test")
)

// Config configures the Tester.
type Config struct {
	// Enabled turns self-tests on. Off by default: it is the only mail
	// blowback sends.
	Enabled bool
	// Resolver is the DNS server (host:port) that resolves MX, A and AAAA
	// records for the probe.
	Resolver string
	// TrapDomain is the domain of the per-test sender addresses; it must
	// be a trap domain (its MX is the trap), so that replies reach Tap.
	TrapDomain string
	// HELO is the probe's EHLO name; default "blowback-selftest.invalid".
	HELO string
	// SMTPPort is the port the MX hosts are probed on; default 25 (other
	// values are for tests).
	SMTPPort int
	// Watch is how long an accepted probe is watched for replies; default 10m.
	Watch time.Duration
	// Grace is how long a probe rejected in the session is watched (for a
	// callout recorded at the session's end); default 30s.
	Grace time.Duration
	// Keep is how long a finished test stays visible and its address is
	// kept out of the evidence; default 24h.
	Keep time.Duration
	// Limits; defaults 3 per domain per day, 10 per MX address per hour,
	// 5 per requester per hour, 20 running at once. Each "n per window" is
	// n at once, then one every window/n (GCRA, internal/ratelimit): 3 per
	// day is 3 at once and then one every 8 hours, so up to 5 in some span
	// of 24 hours, never more than 3 a day in the long run.
	PerDomainPerDay     int
	PerMXPerHour        int
	PerRequesterPerHour int
	MaxRunning          int
	// LimitKeys is how many keys each limit (requesters, domains, listed
	// units, MX addresses) remembers; default 100000. The limits fail
	// closed: a key still limited is never forgotten, so a flood of new
	// keys cannot reset a domain's limit; while a limit holds LimitKeys
	// keys all used within its window, tests for new keys are refused.
	LimitKeys int
	// MaxMX is how many MX hosts are considered (2 addresses each); default 3.
	MaxMX int
	// AllowPrivate allows probing loopback and private addresses (tests only).
	AllowPrivate bool
	// Timeouts: DNS lookups (default 10s), TCP connect (10s), each SMTP
	// command (60s), the whole probe session (3m).
	DNSTimeout, DialTimeout, CommandTimeout, SessionTimeout time.Duration
	// PublicURL and ListName are named in the probe's text.
	PublicURL string
	ListName  string
}

func (c *Config) defaults() {
	c.HELO = cmp.Or(c.HELO, "blowback-selftest.invalid")
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	dur := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&c.SMTPPort, 25)
	dur(&c.Watch, 10*time.Minute)
	dur(&c.Grace, 30*time.Second)
	dur(&c.Keep, 24*time.Hour)
	def(&c.PerDomainPerDay, 3)
	def(&c.PerMXPerHour, 10)
	def(&c.PerRequesterPerHour, 5)
	def(&c.MaxRunning, 20)
	def(&c.LimitKeys, 100000)
	def(&c.MaxMX, 3)
	dur(&c.DNSTimeout, 10*time.Second)
	dur(&c.DialTimeout, 10*time.Second)
	dur(&c.CommandTimeout, 60*time.Second)
	dur(&c.SessionTimeout, 3*time.Minute)
	c.ListName = cmp.Or(c.ListName, "blowback")
}

// Validate reports a configuration that cannot work.
func (c Config) Validate() error {
	if !c.Enabled {
		return nil
	}
	var errs []error
	if c.Resolver == "" {
		errs = append(errs, errors.New("selftest: resolver is required"))
	}
	if c.TrapDomain == "" {
		errs = append(errs, errors.New("selftest: trap_domain is required"))
	}
	if c.SMTPPort < 0 || c.SMTPPort > 65535 {
		errs = append(errs, errors.New("selftest: smtp_port out of range"))
	}
	return errors.Join(errs...)
}

// Request asks for one test.
type Request struct {
	// IP is the listed address the test is for (its unit is delisted on a pass).
	IP netip.Addr
	// Unit is IP's listing unit (/32 or /64).
	Unit netip.Prefix
	// Domain is the operator's mail domain.
	Domain string
	// Requester is the rate-limit key of who asked (an address).
	Requester string
	// Hosts are names the listing's evidence carries for the sending
	// server (HELO, Reporting-MTA): a pass delists only when the listed
	// address is tied to the domain (an MX address, or a host name in it).
	Hosts []string
}

// Verdicts.
const (
	Running      = "running"
	Pass         = "pass"
	Fail         = "fail"
	Inconclusive = "inconclusive"
	Error        = "error"
)

// Probe outcomes.
const (
	ProbeRejectedRcpt = "rejected_rcpt"
	ProbeRejectedData = "rejected_data"
	ProbeAccepted     = "accepted"
	ProbeTempFailure  = "temp_failure"
	ProbeUnreachable  = "unreachable"
)

// Reply is something that came back to the test's sender address.
type Reply struct {
	Time     time.Time `json:"time"`
	Kind     string    `json:"kind"`
	SubKind  string    `json:"sub_kind,omitempty"`
	ClientIP string    `json:"client_ip"`
	HELO     string    `json:"helo"`
	Subject  string    `json:"subject,omitempty"`
	MTA      string    `json:"mta,omitempty"`
	Status   string    `json:"status,omitempty"`
}

// MXHost is one MX host and what the test made of it.
type MXHost struct {
	Host  string   `json:"host"`
	Pref  uint16   `json:"pref"`
	Addrs []string `json:"addrs"`
	Note  string   `json:"note,omitempty"`
}

// Step is one line of the probe's SMTP conversation, as the server answered.
type Step struct {
	Addr    string `json:"addr"`
	Command string `json:"command"`
	Reply   string `json:"reply"`
}

// Result is a test's state as shown on its page and in the API.
type Result struct {
	ID        string     `json:"id"`
	IP        string     `json:"ip"`
	Unit      string     `json:"unit"`
	Domain    string     `json:"domain"`
	Started   time.Time  `json:"started"`
	Ended     *time.Time `json:"ended"`
	WatchTill *time.Time `json:"watch_until,omitempty"`
	Verdict   string     `json:"verdict"`
	Summary   string     `json:"summary"`
	// Sender is the envelope sender with its local part hidden.
	Sender    string   `json:"sender"`
	Recipient string   `json:"recipient"`
	MX        []MXHost `json:"mx"`
	Probe     string   `json:"probe,omitempty"` // a Probe* outcome
	ProbedAt  string   `json:"probed_at,omitempty"`
	Steps     []Step   `json:"steps"`
	Replies   []Reply  `json:"replies"`
	Tied      bool     `json:"tied"`
	TieReason string   `json:"tie_reason"`
	Delisted  []string `json:"delisted"`
}

// test is one running or finished test.
type test struct {
	Result
	req    Request
	local  string // sender local part (lower case)
	sender string
	rcpt   string
	reply  chan struct{} // closed at the first reply
	once   sync.Once
	// finishing: the verdict is being reached (under Tester.mu).
	finishing bool
}

// Sink is the trap's evidence sink (trap.Sink).
type Sink interface {
	Ingest(ctx context.Context, ev *store.Event, raw []byte) error
}

// Records keeps outcomes and the audit trail (*store.Store).
type Records interface {
	PutSelfTest(ctx context.Context, r store.SelfTestRecord) error
	Audit(ctx context.Context, e store.AuditEntry) error
}

// Listing is what a pass acts on: whether an address is listed, and the
// delist (listing.Engine.Act).
type Listing interface {
	Listed(a netip.Addr) bool
	Delist(ctx context.Context, a store.Action) error
}

// Tester runs self-tests. Its methods are safe for concurrent use.
type Tester struct {
	cfg     Config
	res     Resolver
	rec     Records
	lst     Listing
	log     *slog.Logger
	metrics *metrics
	now     func() time.Time

	mu      sync.Mutex
	tests   map[string]*test // by id
	byLocal map[string]*test // by sender local part
	running int
	lastGC  time.Time // when gcLocked last scanned the tests

	// Rate limits (see Config), used under mu so that every limit of a
	// request is checked before any is taken.
	limReq  *ratelimit.Limiter[string]       // per requester per hour
	limDom  *ratelimit.Limiter[string]       // per domain per day
	limUnit *ratelimit.Limiter[netip.Prefix] // per listed unit per day
	limMX   *ratelimit.Limiter[netip.Addr]   // per MX address per hour

	stop chan struct{}
	wg   sync.WaitGroup
}

// New returns a Tester; res nil means a DNS resolver asking cfg.Resolver.
func New(cfg Config, res Resolver, rec Records, lst Listing, log *slog.Logger, reg prometheus.Registerer) *Tester {
	cfg.defaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if res == nil {
		res = NewDNSResolver(cfg.Resolver, cfg.DNSTimeout)
	}
	// FailClosed: these limits guard the MX hosts of a domain (somebody
	// else's, perhaps) against blowback sending it mail; an attacker must
	// not be able to reset them by sending many other keys.
	keys, closed := cfg.LimitKeys, ratelimit.FailClosed
	return &Tester{cfg: cfg, res: res, rec: rec, lst: lst, log: log.With("pkg", "selftest"), metrics: newMetrics(reg),
		now: time.Now, tests: map[string]*test{}, byLocal: map[string]*test{},
		limReq:  ratelimit.New[string](cfg.PerRequesterPerHour, time.Hour, keys, closed),
		limDom:  ratelimit.New[string](cfg.PerDomainPerDay, 24*time.Hour, keys, closed),
		limUnit: ratelimit.New[netip.Prefix](cfg.PerDomainPerDay, 24*time.Hour, keys, closed),
		limMX:   ratelimit.New[netip.Addr](cfg.PerMXPerHour, time.Hour, keys, closed),
		stop:    make(chan struct{})}
}

// Enabled reports whether tests may be started.
func (t *Tester) Enabled() bool { return t != nil && t.cfg.Enabled }

// Watch is how long an accepted probe is watched.
func (t *Tester) Watch() time.Duration { return t.cfg.Watch }

// Stop ends running tests (as errors) and waits for them.
func (t *Tester) Stop(ctx context.Context) error {
	select {
	case <-t.stop:
	default:
		close(t.stop)
	}
	return lifecycle.Wait(ctx, &t.wg)
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// localPrefix starts every test sender's local part.
const localPrefix = "bbst-"

// Start checks the request and its limits and starts the test; it
// returns the test's id at once.
func (t *Tester) Start(req Request) (string, error) {
	if !t.Enabled() {
		t.metrics.requests.WithLabelValues("disabled").Inc()
		return "", ErrDisabled
	}
	dom, err := NormalizeDomain(req.Domain)
	if err != nil {
		t.metrics.requests.WithLabelValues("rejected").Inc()
		return "", err
	}
	req.Domain = dom
	if !req.IP.IsValid() || !req.Unit.IsValid() {
		t.metrics.requests.WithLabelValues("rejected").Inc()
		return "", fmt.Errorf("%w: no address", ErrBadDomain)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.gcLocked()
	if t.running >= t.cfg.MaxRunning {
		t.metrics.requests.WithLabelValues("busy").Inc()
		return "", ErrBusy
	}
	// Check every limit before taking from any (under mu, so the takes
	// succeed). A pass delists: at most as many tests per listed unit a
	// day as per domain, whatever domains are named.
	now := t.now()
	if !t.limReq.Allowed(req.Requester, now) || !t.limDom.Allowed(dom, now) || !t.limUnit.Allowed(req.Unit, now) ||
		!t.limReq.Take(req.Requester, now) || !t.limDom.Take(dom, now) || !t.limUnit.Take(req.Unit, now) {
		t.metrics.requests.WithLabelValues("rate_limited").Inc()
		return "", ErrRateLimited
	}
	id := randHex(16)
	local := localPrefix + randHex(10)
	ts := &test{req: req, local: local, sender: local + "@" + t.cfg.TrapDomain,
		rcpt: "blowback-probe-" + randHex(6) + "@" + dom, reply: make(chan struct{})}
	ts.Result = Result{ID: id, IP: req.IP.String(), Unit: req.Unit.String(), Domain: dom, Started: t.now().UTC(),
		Verdict: Running, Summary: "Looking up the mail servers of " + dom + ".",
		Sender: localPrefix + "…@" + t.cfg.TrapDomain, Recipient: ts.rcpt,
		MX: []MXHost{}, Steps: []Step{}, Replies: []Reply{}, Delisted: []string{}}
	t.tests[id] = ts
	t.byLocal[local] = ts
	t.running++
	t.metrics.running.Set(float64(t.running))
	t.metrics.requests.WithLabelValues("started").Inc()
	t.wg.Add(1)
	go t.run(ts)
	t.log.Info("self-test started", "id", id, "domain", dom, "unit", req.Unit.String())
	return id, nil
}

// Get returns a copy of a test's state.
func (t *Tester) Get(id string) (Result, bool) {
	if t == nil {
		return Result{}, false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	ts, ok := t.tests[id]
	if !ok {
		return Result{}, false
	}
	r := ts.Result
	r.MX = append([]MXHost(nil), r.MX...)
	r.Steps = append([]Step(nil), r.Steps...)
	r.Replies = append([]Reply(nil), r.Replies...)
	r.Delisted = append([]string(nil), r.Delisted...)
	return r, true
}

// gcLocked forgets finished tests after Keep. It scans every kept test, so
// it runs at most once a minute, not on every Start.
func (t *Tester) gcLocked() {
	now := t.now()
	if !t.lastGC.IsZero() && now.Sub(t.lastGC) < time.Minute {
		return
	}
	t.lastGC = now
	for id, ts := range t.tests {
		if ts.Ended != nil && now.Sub(*ts.Ended) > t.cfg.Keep {
			delete(t.tests, id)
			delete(t.byLocal, ts.local)
		}
	}
}

// update changes a test's state under the lock.
func (t *Tester) update(ts *test, fn func(r *Result)) {
	t.mu.Lock()
	fn(&ts.Result)
	t.mu.Unlock()
}

// NormalizeDomain checks and lower-cases a mail domain: ASCII (A-labels
// for IDN), at least two labels, no address literal.
func NormalizeDomain(s string) (string, error) {
	d := strings.TrimSuffix(strings.ToLower(strings.TrimSpace(s)), ".")
	if d == "" || len(d) > 253 {
		return "", fmt.Errorf("%w: enter a domain name such as example.org", ErrBadDomain)
	}
	if _, err := netip.ParseAddr(strings.Trim(d, "[]")); err == nil {
		return "", fmt.Errorf("%w: enter a domain name, not an address", ErrBadDomain)
	}
	labels := strings.Split(d, ".")
	if len(labels) < 2 {
		return "", fmt.Errorf("%w: enter a full domain name such as example.org", ErrBadDomain)
	}
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return "", fmt.Errorf("%w: %q is not a valid domain name", ErrBadDomain, d)
		}
		for _, c := range l {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return "", fmt.Errorf("%w: %q is not a valid domain name (use the xn-- form for non-ASCII names)", ErrBadDomain, d)
			}
		}
	}
	return d, nil
}
