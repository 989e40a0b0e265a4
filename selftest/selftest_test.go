package selftest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/blowback-dnsbl/blowback/internal/testenv"
	"github.com/blowback-dnsbl/blowback/store"
)

// mx is a small SMTP server standing in for an operator's MX: it rejects
// unknown recipients at RCPT or accepts everything, and records the
// envelope.
type mx struct {
	rejectRcpt bool
	mu         sync.Mutex
	from       []string
	rcpt       []string
	data       []string
}

// seen is what m was sent: envelope senders, recipients and messages.
func (m *mx) seen() (from, rcpt, data []string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.from), slices.Clone(m.rcpt), slices.Clone(m.data)
}

func (m *mx) NewSession(*smtp.Conn) (smtp.Session, error) { return &mxSession{m: m}, nil }

type mxSession struct{ m *mx }

func (s *mxSession) AuthPlain(string, string) error { return smtp.ErrAuthUnsupported }
func (s *mxSession) Mail(from string, _ *smtp.MailOptions) error {
	s.m.mu.Lock()
	s.m.from = append(s.m.from, from)
	s.m.mu.Unlock()
	return nil
}
func (s *mxSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.m.mu.Lock()
	defer s.m.mu.Unlock()
	s.m.rcpt = append(s.m.rcpt, to)
	if s.m.rejectRcpt {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "User unknown"}
	}
	return nil
}
func (s *mxSession) Data(r io.Reader) error {
	b, _ := io.ReadAll(r)
	s.m.mu.Lock()
	s.m.data = append(s.m.data, string(b))
	s.m.mu.Unlock()
	return nil
}
func (s *mxSession) Reset()        {}
func (s *mxSession) Logout() error { return nil }

func startMX(t *testing.T, m *mx) int {
	t.Helper()
	srv := smtp.NewServer(m)
	srv.Domain = "mx.example.test"
	srv.ReadTimeout, srv.WriteTimeout = 10*time.Second, 10*time.Second
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return l.Addr().(*net.TCPAddr).Port
}

type fakeRecords struct {
	mu    sync.Mutex
	tests []store.SelfTestRecord
	audit []store.AuditEntry
}

func (f *fakeRecords) PutSelfTest(_ context.Context, r store.SelfTestRecord) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tests = append(f.tests, r)
	return nil
}

func (f *fakeRecords) Audit(_ context.Context, e store.AuditEntry) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.audit = append(f.audit, e)
	return nil
}

type fakeListing struct {
	mu       sync.Mutex
	listed   map[netip.Addr]bool
	delisted []store.Action
}

func (f *fakeListing) Listed(a netip.Addr) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.listed[a]
}

// actions are the delistings f was asked for.
func (f *fakeListing) actions() []store.Action {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.delisted)
}

func (f *fakeListing) Delist(_ context.Context, a store.Action) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.delisted = append(f.delisted, a)
	delete(f.listed, a.Prefix.Addr())
	return nil
}

type nopSink struct{ n int }

func (s *nopSink) Ingest(context.Context, *store.Event, []byte) error { s.n++; return nil }

type env struct {
	t   *testing.T
	ts  *Tester
	mx  *mx
	rec *fakeRecords
	lst *fakeListing
	reg *prometheus.Registry
}

var listedIP = netip.MustParseAddr("192.0.2.25")

func newTestEnv(t *testing.T, rejectRcpt bool, mod func(*Config)) *env {
	t.Helper()
	m := &mx{rejectRcpt: rejectRcpt}
	port := startMX(t, m)
	res := FakeResolver{MXs: map[string][]MX{"example.test": {{Host: "mx.example.test.", Pref: 10}}},
		Addrs: map[string][]netip.Addr{"mx.example.test": {netip.MustParseAddr("127.0.0.1")}}}
	cfg := Config{Enabled: true, Resolver: "unused:53", TrapDomain: "trap.blowback.test", SMTPPort: port, AllowPrivate: true,
		Watch: time.Minute, Grace: 50 * time.Millisecond}
	if mod != nil {
		mod(&cfg)
	}
	e := &env{t: t, mx: m, rec: &fakeRecords{}, lst: &fakeListing{listed: map[netip.Addr]bool{listedIP: true}}, reg: prometheus.NewRegistry()}
	e.ts = New(cfg, res, e.rec, e.lst, nil, e.reg)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		e.ts.Stop(ctx)
		if n := testenv.MetricValue(t, e.reg, "blowback_selftest_panics_total"); n != 0 {
			t.Errorf("%v panics", n)
		}
	})
	return e
}

func (e *env) start(domain string) string {
	e.t.Helper()
	id, err := e.ts.Start(Request{IP: listedIP, Unit: netip.PrefixFrom(listedIP, 32), Domain: domain, Requester: "198.51.100.1",
		Hosts: []string{"mail.example.test"}})
	if err != nil {
		e.t.Fatal(err)
	}
	return id
}

func (e *env) wait(id string, cond func(Result) bool) Result {
	e.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		r, ok := e.ts.Get(id)
		if ok && cond(r) {
			return r
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("test %s: condition not reached: %+v", id, r)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func ended(r Result) bool { return r.Ended != nil }

// run tests domain and waits until the test ended.
func (e *env) run(domain string) Result {
	e.t.Helper()
	return e.wait(e.start(domain), ended)
}

// A server that rejects the unknown recipient at RCPT passes; the pass
// delists the listed unit and is recorded and audited.
func TestRejectAtRcptPasses(t *testing.T) {
	e := newTestEnv(t, true, nil)
	r := e.run("Example.TEST.")
	if r.Verdict != Pass || r.Probe != ProbeRejectedRcpt {
		t.Fatalf("verdict %s probe %s: %s", r.Verdict, r.Probe, r.Summary)
	}
	if !r.Tied || len(r.Delisted) != 1 || r.Delisted[0] != "192.0.2.25/32" {
		t.Errorf("tied %v (%s), delisted %v", r.Tied, r.TieReason, r.Delisted)
	}
	if acts := e.lst.actions(); len(acts) != 1 || acts[0].Who != "selftest" || !strings.Contains(acts[0].Reason, r.ID) {
		t.Errorf("delist actions %+v", acts)
	}
	from, rcpt, data := e.mx.seen()
	if len(from) != 1 || !strings.HasPrefix(from[0], localPrefix) || !strings.HasSuffix(from[0], "@trap.blowback.test") {
		t.Errorf("envelope senders %v", from)
	}
	if len(rcpt) != 1 || !strings.HasSuffix(rcpt[0], "@example.test") || len(data) != 0 {
		t.Errorf("recipients %v, messages %d", rcpt, len(data))
	}
	e.rec.mu.Lock()
	if len(e.rec.tests) != 1 || !e.rec.tests[0].Delisted || e.rec.tests[0].Verdict != Pass || len(e.rec.audit) != 1 {
		t.Errorf("records %+v audit %+v", e.rec.tests, e.rec.audit)
	}
	e.rec.mu.Unlock()
	if strings.Contains(r.Sender, strings.TrimPrefix(from[0], localPrefix)[:6]) {
		t.Errorf("the result shows the sender's local part: %s", r.Sender)
	}
	if n := testenv.MetricValue(t, e.reg, "blowback_selftest_tests_total", "verdict", Pass); n != 1 {
		t.Errorf("pass counter %v", n)
	}
}

// A server that accepts and then bounces fails: the bounce comes back
// through the trap's sink (Tap), is shown, and is not evidence.
func TestAcceptThenBounceFails(t *testing.T) {
	e := newTestEnv(t, false, nil)
	id := e.start("example.test")
	r := e.wait(id, func(r Result) bool { return r.Probe == ProbeAccepted })
	from, _, data := e.mx.seen()
	sender, body := from[0], data[0]
	if !strings.Contains(body, "X-Blowback-Selftest: "+id) || !strings.Contains(body, "one-off test message") {
		t.Errorf("probe text:\n%s", body)
	}
	next := &nopSink{}
	sink := e.ts.Tap(next)
	bounce := &store.Event{ID: store.NewEventID(), Time: time.Now(), ClientIP: netip.MustParseAddr("127.0.0.1"), HELO: "mx.example.test",
		Rcpts: []string{strings.ToUpper(sender)}, Kind: store.KindBounce, MTA: "postfix", Subject: "Undelivered Mail Returned to Sender"}
	if err := sink.Ingest(context.Background(), bounce, nil); err != nil {
		t.Fatal(err)
	}
	other := &store.Event{ID: store.NewEventID(), Time: time.Now(), ClientIP: netip.MustParseAddr("127.0.0.1"),
		Rcpts: []string{localPrefix + "0000@trap.blowback.test"}, Kind: store.KindBounce}
	sink.Ingest(context.Background(), other, nil)
	if e.ts.Divert(other) {
		t.Error("Divert took mail to an address of no test")
	}
	late := *bounce
	late.Kind = store.KindAutoreply
	if !e.ts.Divert(&late) {
		t.Error("Divert did not take a reply to the test's address")
	}
	if next.n != 1 {
		t.Errorf("%d events passed on, want 1 (the reply to the test is not evidence, the unknown address is)", next.n)
	}
	r = e.wait(id, ended)
	if r.Verdict != Fail || len(r.Replies) < 1 || r.Replies[0].MTA != "postfix" || len(r.Delisted) != 0 {
		t.Fatalf("result %+v", r)
	}
	if len(e.lst.actions()) != 0 {
		t.Error("a failed test delisted")
	}
}

// Accepted and nothing back within the watch: pass, with the caveat.
func TestAcceptAndSilencePasses(t *testing.T) {
	e := newTestEnv(t, false, func(c *Config) { c.Watch = 100 * time.Millisecond })
	r := e.run("example.test")
	if r.Verdict != Pass || r.Probe != ProbeAccepted || !strings.Contains(r.Summary, "nothing came back") {
		t.Fatalf("result %+v", r)
	}
}

func TestLimits(t *testing.T) {
	e := newTestEnv(t, true, func(c *Config) { c.PerDomainPerDay = 2; c.PerRequesterPerHour = 3 })
	e.run("example.test")
	e.run("example.test")
	_, err := e.ts.Start(Request{IP: listedIP, Unit: netip.PrefixFrom(listedIP, 32), Domain: "example.test", Requester: "x"})
	if !errors.Is(err, ErrRateLimited) {
		t.Errorf("third test of a domain: %v", err)
	}
	// A listed unit gets no more tests a day than a domain, whatever the domain.
	_, err = e.ts.Start(Request{IP: listedIP, Unit: netip.PrefixFrom(listedIP, 32), Domain: "other.test", Requester: "y"})
	if !errors.Is(err, ErrRateLimited) {
		t.Errorf("third test of a unit: %v", err)
	}
	other := netip.MustParseAddr("192.0.2.26")
	id, err := e.ts.Start(Request{IP: other, Unit: netip.PrefixFrom(other, 32), Domain: "other.test", Requester: "198.51.100.1"})
	if err != nil {
		t.Fatal(err)
	}
	e.wait(id, ended) // the requester's third
	_, err = e.ts.Start(Request{IP: other, Unit: netip.PrefixFrom(other, 32), Domain: "third.test", Requester: "198.51.100.1"})
	if !errors.Is(err, ErrRateLimited) {
		t.Errorf("fourth test of a requester: %v", err)
	}
	if n := testenv.MetricValue(t, e.reg, "blowback_selftest_requests_total", "result", "rate_limited"); n != 3 {
		t.Errorf("rate_limited %v", n)
	}
}

func TestMXLimitAndPrivate(t *testing.T) {
	e := newTestEnv(t, true, func(c *Config) { c.PerMXPerHour = 1 })
	e.run("example.test")
	r := e.run("example.test")
	if r.Verdict != Error || !strings.Contains(r.Summary, "tested too often") {
		t.Errorf("second probe of one MX address: %+v", r)
	}
	p := newTestEnv(t, true, func(c *Config) { c.AllowPrivate = false })
	r = p.run("example.test")
	if r.Verdict != Error || !strings.Contains(r.Summary, "no usable address") {
		t.Errorf("loopback MX without allow_private: %+v", r)
	}
	if _, rcpt, _ := p.mx.seen(); len(rcpt) != 0 {
		t.Error("probed a loopback MX")
	}
}

func TestNoTie(t *testing.T) {
	e := newTestEnv(t, true, nil)
	id, err := e.ts.Start(Request{IP: listedIP, Unit: netip.PrefixFrom(listedIP, 32), Domain: "example.test", Requester: "r",
		Hosts: []string{"mail.elsewhere.example"}})
	if err != nil {
		t.Fatal(err)
	}
	r := e.wait(id, ended)
	if r.Verdict != Pass || r.Tied || len(r.Delisted) != 0 || !strings.Contains(r.TieReason, "Nothing ties") {
		t.Errorf("untied pass: %+v", r)
	}
}

func TestNormalizeDomain(t *testing.T) {
	good := map[string]string{"Example.ORG.": "example.org", " mail.example.co.uk ": "mail.example.co.uk", "xn--bcher-kva.example": "xn--bcher-kva.example"}
	for in, want := range good {
		if got, err := NormalizeDomain(in); err != nil || got != want {
			t.Errorf("%q: %q %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "localhost", "192.0.2.1", "[192.0.2.1]", "a..b", "-a.example", "bü.example", "a b.example",
		strings.Repeat("a", 64) + ".example", strings.Repeat("a.", 130) + "example", "<script>.example"} {
		if _, err := NormalizeDomain(bad); !errors.Is(err, ErrBadDomain) {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestDisabled(t *testing.T) {
	ts := New(Config{}, FakeResolver{}, nil, nil, nil, nil)
	next := &nopSink{}
	if ts.Tap(next) != Sink(next) {
		t.Error("a disabled tester wraps the sink")
	}
	if _, err := ts.Start(Request{IP: listedIP, Unit: netip.PrefixFrom(listedIP, 32), Domain: "example.test"}); !errors.Is(err, ErrDisabled) {
		t.Errorf("disabled: %v", err)
	}
	var nilT *Tester
	if nilT.Enabled() || nilT.Divert(&store.Event{Rcpts: []string{localPrefix + "x@trap.blowback.test"}}) {
		t.Error("nil tester enabled")
	}
}

func FuzzNormalizeDomain(f *testing.F) {
	for _, s := range []string{"example.org", "a.b", "", "..", "xn--x.example"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := NormalizeDomain(s)
		if err != nil {
			return
		}
		if len(d) > 253 || strings.ContainsAny(d, " <>\"'@[]\r\n") || d != strings.ToLower(d) {
			t.Errorf("%q -> %q", s, d)
		}
		if d2, err := NormalizeDomain(d); err != nil || d2 != d {
			t.Errorf("not idempotent: %q -> %q -> %q %v", s, d, d2, err)
		}
	})
}

// TestLimitsBoundedUnderFlood: a flood of distinct requesters, domains and
// units (one IPv6 requester has 2^64 addresses) leaves each limit at its
// capacity of keys, and cannot reset a domain's limit: the limits fail
// closed, refusing new keys while full of live ones.
func TestLimitsBoundedUnderFlood(t *testing.T) {
	const keys = 500
	e := newTestEnv(t, true, func(c *Config) { c.LimitKeys = keys; c.MaxRunning = 2 * keys })
	clk := testenv.NewManualClock(time.Now())
	e.ts.now = clk.Now
	for range 3 { // example.test at its limit of 3 a day
		e.run("example.test")
	}
	started := 0
	for i := range 200000 {
		a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		_, err := e.ts.Start(Request{IP: a, Unit: netip.PrefixFrom(a, 32), Domain: fmt.Sprintf("d%d.test", i),
			Requester: fmt.Sprintf("2001:db8::%x", i)})
		switch {
		case err == nil:
			started++
		case !errors.Is(err, ErrRateLimited):
			t.Fatalf("flood %d: %v", i, err)
		}
	}
	if started != keys-1 {
		t.Errorf("%d tests of the flood started, want %d (till each limit held its %d keys)", started, keys-1, keys)
	}
	for name, n := range map[string]int{"requester": e.ts.limReq.Len(), "domain": e.ts.limDom.Len(), "unit": e.ts.limUnit.Len()} {
		if n != keys {
			t.Errorf("the %s limit holds %d keys, want its capacity %d", name, n, keys)
		}
	}
	// A requester and a unit that still have allowance (kept: live) ask
	// for example.test: its limit was kept too, and refuses.
	unit := netip.MustParsePrefix("10.0.0.1/32")
	_, err := e.ts.Start(Request{IP: unit.Addr(), Unit: unit, Domain: "example.test", Requester: "198.51.100.1"})
	if !errors.Is(err, ErrRateLimited) {
		t.Errorf("example.test after the flood: %v, want rate limited", err)
	}
	if _, err := e.ts.Start(Request{IP: unit.Addr(), Unit: unit, Domain: "d2.test", Requester: "198.51.100.1"}); err != nil {
		t.Errorf("the same requester and unit for another known domain: %v", err)
	}
	if _, rcpt, _ := e.mx.seen(); len(rcpt) != 3 {
		t.Errorf("example.test's MX was probed %d times, want 3", len(rcpt))
	}
}

// TestFinishedTestsForgotten: a finished test is kept for Keep, then
// forgotten by a later Start; the scan runs at most once a minute.
func TestFinishedTestsForgotten(t *testing.T) {
	e := newTestEnv(t, true, func(c *Config) { c.Keep = time.Hour })
	clk := testenv.NewManualClock(time.Now())
	e.ts.now = clk.Now
	first := e.run("example.test")
	clk.Add(30 * time.Minute)
	e.run("example.test") // within Keep: the first is kept
	if _, ok := e.ts.Get(first.ID); !ok {
		t.Fatal("a test finished 30 min ago was forgotten (Keep 1 h)")
	}
	clk.Add(45 * time.Minute) // 75 min after the first ended
	e.run("example.test")
	if _, ok := e.ts.Get(first.ID); ok {
		t.Error("a test finished 75 min ago is still kept (Keep 1 h)")
	}
}
