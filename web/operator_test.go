package web

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/cookiejar"
	"net/netip"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/blowback-dnsbl/blowback/selftest"
	"github.com/blowback-dnsbl/blowback/store"
)

// ingest stores one event as the trap would, with the fields advice reads.
func (e *env) ingest(ip string, kind store.Kind, at time.Time, mta, subject, helo string) {
	e.t.Helper()
	ev := &store.Event{ID: store.NewEventID(), Time: at, ClientIP: netip.MustParseAddr(ip), HELO: helo,
		Rcpts: []string{"trapperson@trap.blowback.test"}, TrapDomain: "trap.blowback.test", Kind: kind, MTA: mta, Subject: subject,
		From: "MAILER-DAEMON@" + helo, DSN: &store.DSN{ReportingMTA: "dns; " + helo, Status: "5.1.1"}}
	if err := e.eng.Ingest(context.Background(), ev, nil); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) getJSON(path string, v any) {
	e.t.Helper()
	r := e.do(nil, "GET", path, "", nil)
	if r.code != 200 {
		e.t.Fatalf("%s: %d %s", path, r.code, r.body)
	}
	if err := json.Unmarshal([]byte(r.body), v); err != nil {
		e.t.Fatalf("%s: %v", path, err)
	}
}

func TestZoneCard(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		c.Card = CardConfig{Rsync: "rsync://rsync.example.org/blowback/", AXFR: "AXFR from ns1.example.org for mirrors", MirrorAbove: 100000, TTL: 5 * time.Minute}
	})
	e.served("127.0.0.2")
	var c Card
	e.getJSON("/api/v1/zone", &c)
	if c.Zone != "bl.blowback.test" || c.Serial == 0 || c.LastChange == nil || c.Contact != "postmaster@blowback.test" || c.TTLSeconds != 300 {
		t.Errorf("card head: %+v", c)
	}
	if len(c.ReturnCodes) != 4 || c.ReturnCodes[0].Address != "127.0.0.2" || c.ReturnCodes[0].Name != "bounce" {
		t.Errorf("codes %+v", c.ReturnCodes)
	}
	want := map[string]string{
		"127.0.0.2":     "2.0.0.127.bl.blowback.test",
		"127.0.0.1":     "1.0.0.127.bl.blowback.test",
		"::FFFF:7F00:2": "2.0.0.0.0.0.f.7.f.f.f.f.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.bl.blowback.test",
		"::FFFF:7F00:1": "1.0.0.0.0.0.f.7.f.f.f.f.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.bl.blowback.test",
	}
	for _, p := range c.TestPoints {
		if want[p.Address] != p.Query {
			t.Errorf("test point %s: query %s, want %s", p.Address, p.Query, want[p.Address])
		}
		if p.Listed != (len(p.Answer) == 4) || !p.Listed && p.Answer[0] != "NXDOMAIN" {
			t.Errorf("test point %+v", p)
		}
		delete(want, p.Address)
	}
	if len(want) != 0 {
		t.Errorf("missing test points %v", want)
	}
	policy := strings.Join(c.Policy.Summary, " ")
	for _, s := range []string{"One message of any counted kind", "7 days", "28 days", "about 14 days", "by /64", "180 days"} {
		if !strings.Contains(policy, s) {
			t.Errorf("policy lacks %q:\n%s", s, policy)
		}
	}
	if c.Policy.Settings["max_age"] != "28d" {
		t.Errorf("settings %v", c.Policy.Settings)
	}
	if !strings.Contains(c.Usage.Terms, "100,000 queries a day") || c.Mirroring.Rsync == "" || c.Mirroring.AXFR == "" {
		t.Errorf("terms/mirroring: %+v %+v", c.Usage, c.Mirroring)
	}
	var pf bool
	for _, s := range c.Usage.Consumers {
		if s.File == "deploy/consumers/postfix-main.cf" && strings.Contains(s.Text, "reject_rbl_client bl.blowback.test") {
			pf = true
		}
	}
	if !pf {
		t.Error("the card lacks the Postfix snippet")
	}
	if c.SelfTest || strings.Contains(strings.Join(c.API, " "), "selftest") {
		t.Errorf("self-test announced while off: %v", c.API)
	}
	if l := e.lookupJSON("127.0.0.2"); !l.Listed || l.History != nil {
		t.Errorf("test point: listed %v, history %+v", l.Listed, l.History)
	}
	if p := e.do(nil, "GET", "/lookup?ip=127.0.0.2", "", nil).body; strings.Contains(p, "never been listed") {
		t.Error("the test point's page says it was never listed")
	}

	// The page, and the link to it from every page.
	r := e.do(nil, "GET", "/zone", "", map[string]string{"Accept": "text/html"})
	for _, s := range []string{"2.0.0.127.bl.blowback.test", "Return codes", "Safe mode", "reject_rbl_client bl.blowback.test", "rsync://rsync.example.org/blowback/", "about 14 days"} {
		if !strings.Contains(r.body, s) {
			t.Errorf("/zone lacks %q", s)
		}
	}
	for _, p := range []string{"/", "/lookup?ip=192.0.2.1", "/status", "/zone", "/nothing"} {
		r := e.do(nil, "GET", p, "", map[string]string{"Accept": "text/html"})
		if !strings.Contains(r.body, `<a href="/zone"`) {
			t.Errorf("%s does not link to the card", p)
		}
	}
}

func TestLookupAdvice(t *testing.T) {
	now := time.Now()
	e := newEnv(t, nil)
	e.ingest("192.0.2.10", store.KindBounce, now.Add(-time.Hour), "postfix", "Undelivered Mail Returned to Sender", "mx.pf.example")
	e.ingest("192.0.2.10", store.KindBounce, now.Add(-2*time.Hour), "postfix", "Undelivered Mail Returned to Sender", "mx.pf.example")
	e.ingest("192.0.2.10", store.KindAutoreply, now.Add(-3*time.Hour), "", "Out of office", "mx.pf.example")
	e.ingest("192.0.2.11", store.KindBounce, now.Add(-time.Hour), "", "Mail delivery failed: returning message to sender", "mx.exim.example")
	e.ingest("192.0.2.12", store.KindCallout, now.Add(-time.Hour), "frobmail", "", "mx.frob.example")

	l := e.lookupJSON("192.0.2.10")
	if len(l.Advice) != 2 {
		t.Fatalf("advice %+v", l.Advice)
	}
	a := l.Advice[0]
	if a.MTA != "postfix" || !a.Known || a.Guessed || a.Kind != "bounce" || a.Count != 2 || !strings.Contains(a.Title, "Postfix") {
		t.Errorf("postfix advice %+v", a)
	}
	var setting, docs bool
	for _, s := range a.Steps {
		setting = setting || strings.Contains(s.Setting, "smtpd_reject_unlisted_recipient")
		docs = docs || s.Docs == "https://www.postfix.org/postconf.5.html#smtpd_reject_unlisted_recipient"
	}
	if !setting || !docs {
		t.Errorf("postfix advice lacks the setting or its documentation: %+v", a.Steps)
	}
	if b := l.Advice[1]; b.Known || b.MTA != "" || b.Kind != "autoreply" || !strings.Contains(b.Steps[1].Text, "Precedence") {
		t.Errorf("unknown-software autoreply advice %+v", b)
	}
	if a := e.lookupJSON("192.0.2.11").Advice; len(a) != 1 || a[0].MTA != "exim" || !a[0].Guessed || !a[0].Known {
		t.Errorf("exim from the subject: %+v", a)
	}
	if a := e.lookupJSON("192.0.2.12").Advice; len(a) != 1 || a[0].Known || a[0].MTAName != "frobmail" || a[0].Kind != "callout" {
		t.Errorf("unknown software: %+v", a)
	}
	if a := e.lookupJSON("192.0.2.99").Advice; a == nil || len(a) != 0 {
		t.Errorf("no evidence: advice %v", a)
	}
	page := e.do(nil, "GET", "/lookup?ip=192.0.2.10", "", nil).body
	for _, s := range []string{"How to fix it", "Sent by <strong>Postfix</strong>", "smtpd_reject_unlisted_recipient", "Mail software not recognised", "RFC 3834"} {
		if !strings.Contains(page, s) {
			t.Errorf("lookup page lacks %q", s)
		}
	}
	page = e.do(nil, "GET", "/lookup?ip=192.0.2.12", "", nil).body
	if !strings.Contains(page, "Sent by frobmail, for which we have no specific advice") {
		t.Error("the page does not say the software is unknown to us")
	}
}

func TestHistory(t *testing.T) {
	now := time.Now().UTC()
	day := 24 * time.Hour
	e := newEnv(t, nil)
	ip := "192.0.2.5"
	e.ingest(ip, store.KindBounce, now.Add(-60*day), "", "", "mx.example")
	e.ingest(ip, store.KindBounce, now.Add(-10*day), "", "", "mx.example")
	if _, err := e.eng.Act(context.Background(), store.Action{Time: now.Add(-5 * day), Prefix: netip.MustParsePrefix(ip + "/32"),
		Op: store.OpDelist, Who: "198.51.100.77", Reason: "fixed the relay", Public: true}); err != nil {
		t.Fatal(err)
	}
	e.ingest(ip, store.KindAutoreply, now.Add(-day), "", "", "mx.example")
	e.ingest("192.0.2.7", store.KindBounce, now.Add(-2*day), "", "", "mx.example")
	e.ingest("192.0.2.8", store.KindBounce, now.Add(-50*day), "", "", "mx.example")
	e.ingest("192.0.2.9", store.KindBounce, now.Add(-200*day), "", "", "mx.example")
	e.ingest("192.0.3.1", store.KindBounce, now.Add(-day), "", "", "mx.example") // another /24
	if err := e.st.PutSelfTest(context.Background(), store.SelfTestRecord{ID: strings.Repeat("ab", 16), Started: now.Add(-6 * day),
		Time: now.Add(-6 * day), Unit: netip.MustParsePrefix(ip + "/32"), Domain: "example.org", Verdict: "fail", Summary: "example.org: fail"}); err != nil {
		t.Fatal(err)
	}

	var h History
	e.getJSON("/api/v1/history/"+ip, &h)
	var got []string
	for _, ev := range h.Events {
		got = append(got, fmt.Sprintf("%s@%dd", ev.Event, int(now.Sub(ev.Time).Hours()/24+0.5)))
	}
	want := "listed@1d delisted@5d listed@10d expired@46d listed@60d"
	if strings.Join(got, " ") != want {
		t.Errorf("history %v, want %s", got, want)
	}
	// Issue 13.8: the requester's reason is free text from the public: not shown.
	if !strings.Contains(h.Events[1].Why, "self-service removal") || strings.Contains(h.Events[1].Why, "fixed the relay") || strings.Contains(h.Events[1].Why, "198.51.100.77") {
		t.Errorf("delist why %q", h.Events[1].Why)
	}
	if !strings.Contains(h.Events[3].Why, "score fell below") {
		t.Errorf("expiry why %q", h.Events[3].Why)
	}
	if len(h.SelfTests) != 1 || h.SelfTests[0].Domain != "example.org" || h.SelfTests[0].Verdict != "fail" {
		t.Errorf("self-tests %+v", h.SelfTests)
	}
	n := h.Network
	if n == nil || n.Prefix != "192.0.2.0/24" || n.ListedNow != 2 || n.Listed90d != 3 || n.WithEvid != 4 || n.Partial {
		t.Errorf("network %+v", n)
	}
	l := e.lookupJSON(ip)
	if l.History == nil || len(l.History.Events) != 5 || l.History.Network.ListedNow != 2 {
		t.Errorf("lookup history %+v", l.History)
	}
	page := e.do(nil, "GET", "/lookup?ip="+ip, "", nil).body
	if strings.Contains(page, "fixed the relay") {
		t.Errorf("lookup page shows the public delist reason")
	}
	for _, s := range []string{"History", "self-service removal", "192.0.2.0/24 listed now", "<strong>3</strong> in the last 90 days", "example.org</a> <strong>fail</strong>"} {
		if !strings.Contains(page, s) {
			t.Errorf("lookup page lacks %q", s)
		}
	}
	// IPv6: the /48.
	e.ingest("2001:db8:1:2::5", store.KindBounce, now.Add(-day), "", "", "mx.example")
	e.ingest("2001:db8:1:3::5", store.KindBounce, now.Add(-day), "", "", "mx.example")
	e.ingest("2001:db8:2::5", store.KindBounce, now.Add(-day), "", "", "mx.example")
	e.getJSON("/api/v1/history/2001:db8:1:2::77", &h)
	if h.Unit != "2001:db8:1:2::/64" || h.Network.Prefix != "2001:db8:1::/48" || h.Network.ListedNow != 2 {
		t.Errorf("IPv6 history %+v %+v", h, h.Network)
	}
	if r := e.do(nil, "GET", "/api/v1/history/not-an-ip", "", nil); r.code != 400 {
		t.Errorf("bad address: %d", r.code)
	}
}

func TestHistoryRateLimited(t *testing.T) {
	e := newEnv(t, nil)
	var last int
	for range 125 {
		last = e.do(nil, "GET", "/api/v1/history/192.0.2.1", "", nil).code
	}
	if last != http.StatusTooManyRequests {
		t.Errorf("125th history request: %d", last)
	}
}

// fakeTester is a SelfTester that records requests and finishes tests as told.
type fakeTester struct {
	mu   sync.Mutex
	reqs []selftest.Request
	res  map[string]selftest.Result
}

var _ SelfTester = (*fakeTester)(nil)

func (f *fakeTester) Start(req selftest.Request) (string, error) {
	d, err := selftest.NormalizeDomain(req.Domain)
	if err != nil {
		return "", err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if req.Domain == "limited.example" {
		return "", selftest.ErrRateLimited
	}
	f.reqs = append(f.reqs, req)
	id := fmt.Sprintf("%032x", len(f.reqs))
	end := time.Now().UTC()
	r := selftest.Result{ID: id, IP: req.IP.String(), Unit: req.Unit.String(), Domain: d, Started: end.Add(-95 * time.Second), Ended: &end,
		Verdict: selftest.Fail, Summary: "Something came back to the test's sender address: your server sends backscatter. See the replies below and the advice on the lookup page.", Probe: selftest.ProbeAccepted, ProbedAt: "192.0.2.30:25",
		Sender: "bbst-…@trap.blowback.test", Recipient: "blowback-probe-4f1c2a9e0b7d@" + d,
		Replies: []selftest.Reply{{Time: end, Kind: "bounce", ClientIP: "192.0.2.30", HELO: "mx." + d, MTA: "exim", Subject: "Mail delivery failed: returning message to sender", Status: "5.1.1"}},
		MX:      []selftest.MXHost{{Host: "mx." + d, Pref: 10, Addrs: []string{"192.0.2.30"}}, {Host: "mx2." + d, Pref: 20, Addrs: []string{"198.51.100.9"}}},
		Steps: []selftest.Step{{Addr: "192.0.2.30:25", Command: "EHLO blowback-selftest.invalid", Reply: "accepted"},
			{Addr: "192.0.2.30:25", Command: "MAIL FROM:<bbst-…@trap.blowback.test>", Reply: "accepted"},
			{Addr: "192.0.2.30:25", Command: "RCPT TO:<blowback-probe-4f1c2a9e0b7d@" + d + ">", Reply: "accepted"},
			{Addr: "192.0.2.30:25", Command: "DATA (message)", Reply: "accepted"}}}
	switch {
	case d == "example.org": // hostile strings, to check escaping
		r.Summary, r.Replies[0].HELO = "Something came back <b>", "<script>x</script>"
	case strings.HasPrefix(d, "pass."):
		r.Verdict, r.Probe, r.Replies, r.Tied = selftest.Pass, selftest.ProbeRejectedRcpt, nil, true
		r.Summary = "The server rejected the unknown recipient during the SMTP session (at RCPT TO) and sent nothing back: no backscatter."
		r.Steps = append(r.Steps[:2], selftest.Step{Addr: "192.0.2.30:25", Command: "RCPT TO:<blowback-probe-4f1c2a9e0b7d@" + d + ">",
			Reply: "SMTP error 550: 5.1.1 <blowback-probe-4f1c2a9e0b7d@" + d + ">: Recipient address rejected: User unknown in local recipient table"})
		r.Delisted = []string{req.Unit.String()}
	case strings.HasPrefix(d, "running."):
		till := end.Add(8 * time.Minute)
		r.Verdict, r.Ended, r.Replies, r.WatchTill = selftest.Running, nil, nil, &till
		r.Summary = "Probe accepted; watching for a bounce, reply or callout until " + till.Format("15:04:05 UTC") + "."
	case strings.HasPrefix(d, "nomx."):
		r.Verdict, r.Probe, r.Replies, r.Steps, r.MX = selftest.Error, "", nil, nil, []selftest.MXHost{{Host: ".", Addrs: []string{}}}
		r.Summary = d + " publishes a null MX (RFC 7505): it accepts no mail, so it cannot be tested."
	}
	f.res[id] = r
	return id, nil
}

func (f *fakeTester) Get(id string) (selftest.Result, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r, ok := f.res[id]
	return r, ok
}

func (f *fakeTester) Watch() time.Duration { return 10 * time.Minute }

func TestSelfTestPages(t *testing.T) {
	ft := &fakeTester{res: map[string]selftest.Result{}}
	e := newEnv(t, func(c *Config) { c.SelfTest = ft })
	e.ingest("192.0.2.30", store.KindBounce, time.Now().Add(-time.Hour), "exim", "", "mx.example.org")
	e.served("192.0.2.30")
	jar, _ := cookiejar.New(nil)
	c := noRedirect(jar)
	page := e.do(c, "GET", "/lookup?ip=192.0.2.30", "", nil)
	if !strings.Contains(page.body, "Prove the fix: self-test") || !strings.Contains(page.body, "10 min") {
		t.Fatalf("no self-test form on the listed page")
	}
	tok := regexp.MustCompile(`name="token" value="([^"]+)"`).FindStringSubmatch(page.body)
	if tok == nil {
		t.Fatal("no token")
	}
	form := url.Values{"ip": {"192.0.2.30"}, "domain": {"Example.ORG"}, "token": {tok[1]}}.Encode()
	hdr := map[string]string{"Content-Type": "application/x-www-form-urlencoded", "Origin": e.base}
	r := e.do(c, "POST", "/selftest", form, hdr)
	if r.code != http.StatusSeeOther || !strings.HasPrefix(r.hdr.Get("Location"), "/selftest/") {
		t.Fatalf("form: %d %s %s", r.code, r.hdr.Get("Location"), r.body)
	}
	ft.mu.Lock()
	req := ft.reqs[0]
	ft.mu.Unlock()
	if req.Unit.String() != "192.0.2.30/32" || req.Domain != "Example.ORG" || req.Requester != "127.0.0.1/32" || len(req.Hosts) == 0 || req.Hosts[0] != "mx.example.org" {
		t.Errorf("request %+v", req)
	}
	res := e.do(c, "GET", r.hdr.Get("Location"), "", nil)
	for _, s := range []string{"Self-test of example.org", "Failed", "Something came back &lt;b&gt;", "&lt;script&gt;", "Exim: verify recipients in the RCPT ACL", "mx.example.org"} {
		if !strings.Contains(res.body, s) {
			t.Errorf("result page lacks %q", s)
		}
	}
	if strings.Contains(res.body, "<script>") {
		t.Error("unescaped HELO on the result page")
	}
	// Cross-site: refused.
	if r := e.do(c, "POST", "/selftest", form, map[string]string{"Content-Type": "application/x-www-form-urlencoded", "Origin": "https://evil.example"}); r.code != http.StatusForbidden {
		t.Errorf("cross-site form: %d", r.code)
	}
	// API.
	api := func(body, ct string) response {
		return e.do(nil, "POST", "/api/v1/selftest", body, map[string]string{"Content-Type": ct})
	}
	if r := api(`{"ip":"192.0.2.30","domain":"example.net"}`, "text/plain"); r.code != http.StatusUnsupportedMediaType {
		t.Errorf("text/plain: %d", r.code)
	}
	if r := api(`{"ip":"192.0.2.30","domain":"example.net"}`, "application/json"); r.code != http.StatusAccepted || !strings.Contains(r.body, `"id"`) {
		t.Errorf("API start: %d %s", r.code, r.body)
	}
	if r := api(`{"ip":"192.0.2.31","domain":"example.net"}`, "application/json"); r.code != http.StatusConflict {
		t.Errorf("unlisted address: %d %s", r.code, r.body)
	}
	if r := api(`{"ip":"192.0.2.30","domain":"no domain"}`, "application/json"); r.code != http.StatusBadRequest {
		t.Errorf("bad domain: %d %s", r.code, r.body)
	}
	if r := api(`{"ip":"192.0.2.30","domain":"limited.example"}`, "application/json"); r.code != http.StatusTooManyRequests || r.hdr.Get("Retry-After") == "" {
		t.Errorf("rate limited: %d", r.code)
	}
	if r := e.do(nil, "GET", "/api/v1/selftest/"+strings.Repeat("0", 31)+"1", "", nil); r.code != 200 || !strings.Contains(r.body, `"verdict": "fail"`) {
		t.Errorf("API get: %d %s", r.code, r.body)
	}
	for _, id := range []string{"x", strings.Repeat("f", 32), "../../etc/passwd"} {
		if r := e.do(nil, "GET", "/api/v1/selftest/"+url.PathEscape(id), "", nil); r.code != 404 {
			t.Errorf("test %q: %d", id, r.code)
		}
	}
	// Off: no form, 404.
	off := newEnv(t, nil)
	off.ingest("192.0.2.30", store.KindBounce, time.Now().Add(-time.Hour), "", "", "mx")
	if strings.Contains(off.do(nil, "GET", "/lookup?ip=192.0.2.30", "", nil).body, "Prove the fix") {
		t.Error("self-test form shown while off")
	}
	if r := off.do(nil, "POST", "/api/v1/selftest", `{"ip":"192.0.2.30","domain":"example.net"}`, map[string]string{"Content-Type": "application/json"}); r.code != 404 {
		t.Errorf("off: %d", r.code)
	}
}
