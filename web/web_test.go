package web

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/netip"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/blowback-dnsbl/blowback/intake"
	"github.com/blowback-dnsbl/blowback/internal/httpjson"
	"github.com/blowback-dnsbl/blowback/internal/testenv"
	"github.com/blowback-dnsbl/blowback/listing"
	"github.com/blowback-dnsbl/blowback/listing/listingtest"
	"github.com/blowback-dnsbl/blowback/scoring"
	"github.com/blowback-dnsbl/blowback/store"
	"github.com/blowback-dnsbl/blowback/zones"
)

const testToken = "admin-secret-token"

// jsonCT is the header every JSON POST needs.
var jsonCT = map[string]string{"Content-Type": "application/json"}

// env is a node without trap and DNS: store, listing engine, web server.
type env struct {
	t    *testing.T
	st   *store.Store
	eng  *listing.Engine
	cur  *zones.Current
	srv  *Server
	reg  *prometheus.Registry
	base string
}

func newEnv(t *testing.T, mod func(*Config)) *env {
	t.Helper()
	return newEnvWith(t, mod, nil)
}

// newEnvWith runs pre (e.g. evidence from before the web server started)
// between the engine's start and the web server's.
func newEnvWith(t *testing.T, mod func(*Config), pre func(*env)) *env {
	t.Helper()
	return newEnvPolicy(t, mod, pre, scoring.DefaultPolicy())
}

// newEnvPolicy is newEnvWith with a listing policy.
func newEnvPolicy(t *testing.T, mod func(*Config), pre func(*env), pol scoring.Policy) *env {
	t.Helper()
	log := slog.New(slog.DiscardHandler)
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	reg := prometheus.NewRegistry()
	le := listingtest.Start(t, t.TempDir(), pol, log, reg)
	st, eng, cur := le.Store, le.Engine, le.Current
	e := &env{t: t, st: st, eng: eng, cur: cur, reg: reg}
	if pre != nil {
		pre(e)
	}
	cfg := Config{AdminTokens: []string{testToken}, Intake: intake.Config{NodeTokens: map[string]string{"trap1": "node-token"}}, Contact: "postmaster@blowback.test"}
	if mod != nil {
		mod(&cfg)
	}
	srv := New(cfg, eng, st, cur, log, reg, reg, nil)
	if err := srv.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	e.srv, e.base = srv, "http://"+srv.Addr().String()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Stop(ctx)
		le.Stop()
		if n := testutilCount(reg, "blowback_http_panics_total"); n != 0 {
			t.Errorf("%v HTTP panics recovered", n)
		}
	})
	return e
}

// testutilCount sums every sample of a counter family in reg.
func testutilCount(reg prometheus.Gatherer, name string) float64 {
	mfs, _ := reg.Gather()
	var n float64
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				n += m.GetCounter().GetValue()
			}
		}
	}
	return n
}

// hit ingests one piece of evidence from ip to a trap address.
func (e *env) hit(ip string, kind store.Kind, at time.Time, rcpt, origID string) {
	e.t.Helper()
	_, dom, _ := strings.Cut(rcpt, "@")
	ev := &store.Event{ID: store.NewEventID(), Time: at, ClientIP: netip.MustParseAddr(ip), HELO: "mx.sender.example",
		MailFrom: "", Rcpts: []string{rcpt}, TrapDomain: dom, Kind: kind, MessageID: "<bounce-" + origID + "@mx.sender.example>",
		Original: store.Original{MessageID: "<" + origID + ">", From: rcpt, To: "victim@example.org"}}
	if err := e.eng.Ingest(context.Background(), ev, nil); err != nil {
		e.t.Fatal(err)
	}
}

type response struct {
	code int
	hdr  http.Header
	body string
}

func (e *env) do(c *http.Client, method, path, body string, hdr map[string]string) response {
	e.t.Helper()
	req, err := http.NewRequest(method, e.base+path, strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	if c == nil {
		c = noRedirect(nil)
	}
	resp, err := c.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{resp.StatusCode, resp.Header, string(b)}
}

func noRedirect(jar http.CookieJar) *http.Client {
	return &http.Client{Jar: jar, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func (e *env) lookupJSON(ip string) Lookup {
	e.t.Helper()
	r := e.do(nil, "GET", "/api/v1/lookup/"+ip, "", nil)
	if r.code != 200 {
		e.t.Fatalf("lookup %s: %d %s", ip, r.code, r.body)
	}
	var l Lookup
	if err := json.Unmarshal([]byte(r.body), &l); err != nil {
		e.t.Fatal(err)
	}
	return l
}

func TestLookupAPI(t *testing.T) {
	e := newEnv(t, nil)
	now := time.Now().UTC()
	e.hit("192.0.2.10", store.KindBounce, now.Add(-2*time.Hour), "secretlocal@trap.blowback.test", "orig1@spam.example")
	e.hit("192.0.2.10", store.KindAutoreply, now.Add(-time.Hour), "secretlocal@trap.blowback.test", "secretlocal.x@spam.example")
	e.hit("2001:db8:1:2::5", store.KindCallout, now.Add(-time.Hour), "other@trap2.blowback.test", "o3@x")

	// Every field of CONTRACT.md "HTTP", as raw JSON keys.
	raw := e.do(nil, "GET", "/api/v1/lookup/192.0.2.10", "", nil)
	var m map[string]any
	if err := json.Unmarshal([]byte(raw.body), &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"ip", "listed", "codes", "score", "first_seen", "last_seen", "expires", "counts", "evidence"} {
		if _, ok := m[k]; !ok {
			t.Errorf("lookup JSON lacks %q: %s", k, raw.body)
		}
	}
	for _, ev := range m["evidence"].([]any) {
		for _, k := range []string{"time", "kind", "helo", "trap_domain"} {
			if _, ok := ev.(map[string]any)[k]; !ok {
				t.Errorf("evidence lacks %q", k)
			}
		}
	}
	if strings.Contains(raw.body, "secretlocal") {
		t.Errorf("trap local part shown publicly: %s", raw.body)
	}
	if ct := raw.hdr.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("content type %q", ct)
	}

	l := e.lookupJSON("192.0.2.10")
	if !l.Listed || strings.Join(l.Codes, " ") != "127.0.0.2 127.0.0.3" || l.Counts["bounce"] != 1 || l.Counts["autoreply"] != 1 {
		t.Errorf("listed lookup: %+v", l)
	}
	if l.Expires == nil || l.FirstSeen == nil || l.LastSeen == nil || !l.Expires.After(*l.LastSeen) {
		t.Errorf("times: %+v", l)
	}
	if l.FirstSeen.Location() != time.UTC || l.Expires.Nanosecond() != 0 {
		t.Errorf("times not whole UTC seconds: %v %v", l.FirstSeen, l.Expires)
	}
	if len(l.Grep.MessageIDs) != 2 || l.Grep.RecipientDomains[0] != "trap.blowback.test" || l.Grep.From == nil {
		t.Errorf("grep hints: %+v", l.Grep)
	}
	if l.QueryName != "10.2.0.192.bl.blowback.test" {
		t.Errorf("query name %q", l.QueryName)
	}
	l6 := e.lookupJSON("2001:db8:1:2:ffff::1") // same /64
	if !l6.Listed || l6.Unit != "2001:db8:1:2::/64" || strings.Join(l6.Codes, " ") != "127.0.0.4" {
		t.Errorf("IPv6 /64 lookup: %+v", l6)
	}
	un := e.lookupJSON("192.0.2.11")
	if un.Listed || un.Expires != nil || un.FirstSeen != nil || len(un.Codes) != 0 || un.Evidence == nil || un.Counts == nil {
		t.Errorf("unlisted lookup: %+v", un)
	}
	tp := e.lookupJSON("127.0.0.2")
	if !tp.Listed || !tp.TestPoint || len(tp.Codes) != 4 {
		t.Errorf("test point: %+v", tp)
	}
	if l := e.lookupJSON("::ffff:127.0.0.2"); !l.Listed {
		t.Errorf("mapped test point not listed: %+v", l)
	}
	if l := e.lookupJSON("127.0.0.1"); l.Listed {
		t.Errorf("127.0.0.1 listed: %+v", l)
	}
}

// TestErrorsAreJSON: one error shape everywhere, also for the router's 404/405.
func TestErrorsAreJSON(t *testing.T) {
	e := newEnv(t, nil)
	cases := []struct {
		method, path, body string
		hdr                map[string]string
		code               int
		allow              string
	}{
		{"GET", "/api/v1/lookup/not-an-ip", "", nil, 400, ""},
		{"GET", "/api/v1/lookup/fe80::1%25eth0", "", nil, 400, ""},
		{"GET", "/api/v1/nothing", "", nil, 404, ""},
		{"GET", "/nothing", "", nil, 404, ""},
		{"DELETE", "/api/v1/lookup/1.2.3.4", "", nil, 405, "GET, HEAD"},
		{"GET", "/api/v1/delist", "", nil, 405, "POST"},
		{"POST", "/api/v1/delist", "{", jsonCT, 400, ""},
		{"POST", "/api/v1/delist", `{"ip":"1.2.3.4","reason":"x","extra":1}`, jsonCT, 400, ""},
		{"POST", "/api/v1/delist", `{"ip":"1.2.3.4","reason":"  "}`, jsonCT, 400, ""},
		{"POST", "/api/v1/delist", `{"ip":"nope","reason":"fixed"}`, jsonCT, 400, ""},
		{"POST", "/api/v1/admin/list", `{"ip":"1.2.3.4","reason":"x"}`, nil, 401, ""},
		{"POST", "/api/v1/admin/list", `{"ip":"1.2.3.4","reason":"x"}`, map[string]string{"Authorization": "Bearer wrong"}, 401, ""},
		{"POST", "/api/v1/admin/list", `{"ip":"1.2.3.4"}`, map[string]string{"Authorization": "Bearer " + testToken, "Content-Type": "application/json"}, 400, ""},
		{"POST", "/api/v1/admin/list", `{"ip":"1.2.3.4","reason":"x","kinds":["nope"]}`, map[string]string{"Authorization": "Bearer " + testToken, "Content-Type": "application/json"}, 400, ""},
		{"GET", "/api/v1/admin/zone?format=xml", "", map[string]string{"Authorization": "Bearer " + testToken}, 400, ""},
		{"GET", "/api/v1/admin/audit?since=yesterday", "", map[string]string{"Authorization": "Bearer " + testToken}, 400, ""},
		{"POST", "/api/v1/evidence", `{"events":[]}`, jsonCT, 401, ""},
		{"POST", "/api/v1/delist", `{"ip":"1.2.3.4","reason":"x"}`, nil, 415, ""},
		{"GET", "/api/v1/explain/1.2.3.4?limit=x", "", nil, 400, ""},
		{"GET", "/api/v1/explain/1.2.3.4", "", map[string]string{"Authorization": "Bearer wrong"}, 401, ""},
		{"GET", "/static/nothing.css", "", nil, 404, ""},
	}
	for _, c := range cases {
		r := e.do(nil, c.method, c.path, c.body, c.hdr)
		var ae httpjson.ErrorBody
		err := json.Unmarshal([]byte(r.body), &ae)
		if r.code != c.code || err != nil || ae.Error == "" || !strings.HasPrefix(r.hdr.Get("Content-Type"), "application/json") {
			t.Errorf("%s %s: %d %q %q, want %d and {\"error\": ...}", c.method, c.path, r.code, r.hdr.Get("Content-Type"), r.body, c.code)
		}
		if c.allow != "" && r.hdr.Get("Allow") != c.allow {
			t.Errorf("%s %s: Allow %q, want %q", c.method, c.path, r.hdr.Get("Allow"), c.allow)
		}
	}
	// A browser asking for a page it cannot have gets the message as HTML.
	r := e.do(nil, "GET", "/nothing", "", map[string]string{"Accept": "text/html"})
	if r.code != 404 || !strings.Contains(r.body, "<html lang=\"en\">") || !strings.Contains(r.body, "not found: /nothing") {
		t.Errorf("HTML 404: %d %s", r.code, r.body)
	}
}

func TestAdminAPI(t *testing.T) {
	e := newEnv(t, nil)
	auth := map[string]string{"Authorization": "Bearer " + testToken, "Content-Type": "application/json"}
	r := e.do(nil, "POST", "/api/v1/admin/list", `{"ip":"198.51.100.7","reason":"seen in logs","who":"ops","kinds":["bounce","challenge"]}`, auth)
	if r.code != 200 {
		t.Fatalf("admin list: %d %s", r.code, r.body)
	}
	if snap := e.cur.Load(); snap.Lookup(netip.MustParseAddr("198.51.100.7")) != zones.CodeBounce|zones.CodeChallenge {
		t.Errorf("admin list not published")
	}
	if l := e.lookupJSON("198.51.100.7"); !l.Listed || l.Manual != "list" {
		t.Errorf("after admin list: %+v", l)
	}
	r = e.do(nil, "GET", "/api/v1/admin/audit", "", auth)
	if r.code != 200 || !strings.Contains(r.body, "seen in logs") {
		t.Errorf("audit: %d %s", r.code, r.body)
	}
	r = e.do(nil, "GET", "/api/v1/admin/zone?format=plain", "", auth)
	if r.code != 200 || !strings.Contains(r.body, "198.51.100.7") {
		t.Errorf("zone: %d %s", r.code, r.body)
	}
	r = e.do(nil, "GET", "/api/v1/admin/evidence/198.51.100.7", "", auth)
	if r.code != 200 || !strings.Contains(r.body, `"actions"`) {
		t.Errorf("evidence: %d %s", r.code, r.body)
	}
	r = e.do(nil, "POST", "/api/v1/admin/delist", `{"ip":"198.51.100.7","reason":"ok now"}`, auth)
	if r.code != 200 || e.cur.Load().Lookup(netip.MustParseAddr("198.51.100.7")) != 0 {
		t.Errorf("admin delist: %d %s", r.code, r.body)
	}
	if n := testutilCount(e.reg, "blowback_http_auth_failures_total"); n != 0 {
		t.Errorf("auth failures counted for good tokens: %v", n)
	}
	e.do(nil, "GET", "/api/v1/admin/zone", "", map[string]string{"Authorization": "Bearer " + testToken + "x"})
	if n := testutilCount(e.reg, "blowback_http_auth_failures_total"); n != 1 {
		t.Errorf("auth failures = %v, want 1", n)
	}
}

func TestTokenMatch(t *testing.T) {
	for _, c := range []struct {
		got    string
		tokens []string
		want   bool
	}{
		{"a", []string{"a"}, true},
		{"b", []string{"a", "b"}, true},
		{"", []string{""}, false},
		{"", nil, false},
		{"a", nil, false},
		{"ab", []string{"a"}, false},
		{"a", []string{"ab"}, false},
	} {
		if got := tokenMatch(c.got, c.tokens); got != c.want {
			t.Errorf("tokenMatch(%q, %q) = %v", c.got, c.tokens, got)
		}
	}
}

func TestPublicDelistAPI(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.DelistPerIPPerHour = 2 })
	e.hit("203.0.113.5", store.KindBounce, time.Now().Add(-time.Minute), "t1@trap.blowback.test", "m1@x")
	if !e.lookupJSON("203.0.113.5").Listed {
		t.Fatal("not listed")
	}
	r := e.do(nil, "POST", "/api/v1/delist", `{"ip":"203.0.113.5","reason":"fixed the bounce config"}`, jsonCT)
	if r.code != 200 || !strings.Contains(r.body, `"listed": false`) {
		t.Fatalf("delist: %d %s", r.code, r.body)
	}
	if e.cur.Load().Lookup(netip.MustParseAddr("203.0.113.5")) != 0 {
		t.Error("still in the zone after delist")
	}
	// Rate limit per requester: 2 an hour.
	e.hit("203.0.113.6", store.KindBounce, time.Now().Add(-time.Minute), "t1@trap.blowback.test", "m1@x")
	e.hit("203.0.113.7", store.KindBounce, time.Now().Add(-time.Minute), "t1@trap.blowback.test", "m1@x")
	if r := e.do(nil, "POST", "/api/v1/delist", `{"ip":"203.0.113.6","reason":"x"}`, jsonCT); r.code != 200 {
		t.Fatalf("second delist: %d %s", r.code, r.body)
	}
	r = e.do(nil, "POST", "/api/v1/delist", `{"ip":"203.0.113.7","reason":"x"}`, jsonCT)
	if r.code != 429 || r.hdr.Get("Retry-After") == "" {
		t.Errorf("third delist in an hour: %d %s", r.code, r.body)
	}
	// A new hit relists.
	e.hit("203.0.113.5", store.KindBounce, time.Now(), "t1@trap.blowback.test", "m2@x")
	if !e.lookupJSON("203.0.113.5").Listed {
		t.Error("new hit after delist did not relist")
	}
}

// TestRequesterBehindProxy: who asked, behind a trusted proxy or not; and
// the self-test's rate-limit key of it, the listing unit (an IPv6
// requester's /64, so one allocation cannot pose as 2^64 requesters).
func TestRequesterBehindProxy(t *testing.T) {
	s := New(Config{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}, nil, nil, &zones.Current{}, nil, nil, nil, nil)
	for _, c := range []struct{ remote, xff, want, unit string }{
		{"192.0.2.1:5000", "", "192.0.2.1", "192.0.2.1/32"},
		{"192.0.2.1:5000", "198.51.100.1", "192.0.2.1", "192.0.2.1/32"},               // untrusted peer: header ignored
		{"10.1.1.1:5000", "198.51.100.1", "198.51.100.1", "198.51.100.1/32"},          // trusted proxy
		{"10.1.1.1:5000", "6.6.6.6, 198.51.100.1", "198.51.100.1", "198.51.100.1/32"}, // spoofed first hop ignored
		{"10.1.1.1:5000", "198.51.100.1, 10.2.2.2", "198.51.100.1", "198.51.100.1/32"},
		{"10.1.1.1:5000", "junk", "10.1.1.1", "10.1.1.1/32"},
		{"[::ffff:192.0.2.9]:5000", "", "192.0.2.9", "192.0.2.9/32"},
		{"[2001:db8:1:2:aaaa::1]:5000", "", "2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"},
		{"[2001:db8:1:2:bbbb::7]:5000", "", "2001:db8:1:2:bbbb::7", "2001:db8:1:2::/64"},
		{"10.1.1.1:5000", "2001:db8:9:9::5", "2001:db8:9:9::5", "2001:db8:9:9::/64"},
	} {
		r, _ := http.NewRequest("GET", "/", nil)
		r.RemoteAddr = c.remote
		if c.xff != "" {
			r.Header.Set("X-Forwarded-For", c.xff)
		}
		if got := s.requester(r); got != c.want {
			t.Errorf("requester(%s, XFF %q) = %s, want %s", c.remote, c.xff, got, c.want)
		}
		if got := s.selfTestRequester(r); got != c.unit {
			t.Errorf("selfTestRequester(%s, XFF %q) = %s, want %s", c.remote, c.xff, got, c.unit)
		}
	}
}

var tokenRE = regexp.MustCompile(`name="token" value="([^"]+)"`)

// TestDelistForm: the no-JavaScript form flow, CSRF checks and
// POST-redirect-GET, driven over HTTP like a browser would.
func TestDelistForm(t *testing.T) {
	e := newEnv(t, nil)
	e.hit("203.0.113.9", store.KindBounce, time.Now().Add(-time.Minute), "t1@trap.blowback.test", "m1@x")
	jar, _ := cookiejar.New(nil)
	c := noRedirect(jar)
	page := e.do(c, "GET", "/lookup?ip=203.0.113.9", "", nil)
	m := tokenRE.FindStringSubmatch(page.body)
	if page.code != 200 || m == nil || !strings.Contains(page.body, `action="/delist"`) {
		t.Fatalf("lookup page has no delist form: %d\n%s", page.code, page.body)
	}
	token := m[1]
	form := func(ip, tok, reason string) string {
		return url.Values{"ip": {ip}, "token": {tok}, "reason": {reason}}.Encode()
	}
	ct := "application/x-www-form-urlencoded"
	origin := e.base
	cases := []struct {
		name   string
		client *http.Client
		body   string
		hdr    map[string]string
		code   int
		says   string
	}{
		{"no origin or referer", c, form("203.0.113.9", token, "fixed"), map[string]string{"Content-Type": ct}, 403, "neither Origin nor Referer"},
		{"foreign origin", c, form("203.0.113.9", token, "fixed"), map[string]string{"Content-Type": ct, "Origin": "http://evil.example"}, 403, "cross-site"},
		{"foreign referer", c, form("203.0.113.9", token, "fixed"), map[string]string{"Content-Type": ct, "Referer": "http://evil.example/x"}, 403, "cross-site"},
		{"null origin", c, form("203.0.113.9", token, "fixed"), map[string]string{"Content-Type": ct, "Origin": "null"}, 403, "neither"},
		{"no cookie", noRedirect(nil), form("203.0.113.9", token, "fixed"), map[string]string{"Content-Type": ct, "Origin": origin}, 403, "cookie"},
		{"bad token", c, form("203.0.113.9", token[:len(token)-4]+"AAAA", "fixed"), map[string]string{"Content-Type": ct, "Origin": origin}, 403, "token"},
		{"no token", c, form("203.0.113.9", "", "fixed"), map[string]string{"Content-Type": ct, "Origin": origin}, 403, "token"},
		{"no reason", c, form("203.0.113.9", token, " "), map[string]string{"Content-Type": ct, "Origin": origin}, 400, "reason is required"},
		{"bad ip", c, form("203.0.113", token, "fixed"), map[string]string{"Content-Type": ct, "Origin": origin}, 400, "not an IP address"},
	}
	for _, tc := range cases {
		r := e.do(tc.client, "POST", "/delist", tc.body, tc.hdr)
		if r.code != tc.code || !strings.Contains(r.body, tc.says) || !strings.Contains(r.body, "<html") {
			t.Errorf("%s: %d, want %d with %q\n%.400s", tc.name, r.code, tc.code, tc.says, r.body)
		}
	}
	if !e.lookupJSON("203.0.113.9").Listed {
		t.Fatal("a refused form delisted")
	}
	// The good post: 303 to the lookup page, which says it is done.
	r := e.do(c, "POST", "/delist", form("203.0.113.9", token, "fixed the bounce config"), map[string]string{"Content-Type": ct, "Origin": origin})
	if r.code != http.StatusSeeOther || r.hdr.Get("Location") != "/lookup?ip=203.0.113.9&done=delisted" {
		t.Fatalf("good post: %d %q %s", r.code, r.hdr.Get("Location"), r.body)
	}
	done := e.do(c, "GET", r.hdr.Get("Location"), "", nil)
	if !strings.Contains(done.body, "has been removed") || !strings.Contains(done.body, "is not listed") {
		t.Errorf("after delist:\n%s", done.body)
	}
	// The Referer alone (Origin stripped) is enough; the token of another
	// cookie is not.
	e.hit("203.0.113.9", store.KindBounce, time.Now(), "t1@trap.blowback.test", "m2@x")
	r = e.do(c, "POST", "/delist", form("203.0.113.9", token, "again"), map[string]string{"Content-Type": ct, "Referer": e.base + "/lookup?ip=203.0.113.9"})
	if r.code != http.StatusSeeOther {
		t.Errorf("post with Referer only: %d", r.code)
	}
	jar2, _ := cookiejar.New(nil)
	c2 := noRedirect(jar2)
	e.do(c2, "GET", "/lookup?ip=203.0.113.9", "", nil) // gets its own cookie
	r = e.do(c2, "POST", "/delist", form("203.0.113.9", token, "x"), map[string]string{"Content-Type": ct, "Origin": origin})
	if r.code != 403 {
		t.Errorf("token replayed with another cookie: %d", r.code)
	}
}

func TestCSRFTokenExpires(t *testing.T) {
	s := New(Config{}, nil, nil, &zones.Current{}, nil, nil, nil, nil)
	now := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	s.now = func() time.Time { return now }
	tok := s.csrfToken("cookievalue-cookievalue")
	post := func() error {
		r, _ := http.NewRequest("POST", "http://bl.example/delist", strings.NewReader(url.Values{"token": {tok}}.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r.Header.Set("Origin", "http://bl.example")
		r.AddCookie(&http.Cookie{Name: csrfCookie, Value: "cookievalue-cookievalue"})
		return s.checkForm(r)
	}
	if err := post(); err != nil {
		t.Fatalf("fresh token refused: %v", err)
	}
	now = now.Add(csrfMaxAge + time.Second)
	if err := post(); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Errorf("old token: %v", err)
	}
}

func TestPagesHideTrapLocalPart(t *testing.T) {
	e := newEnv(t, nil)
	e.hit("192.0.2.20", store.KindBounce, time.Now().Add(-time.Minute), "hiddenname@trap.blowback.test", "hiddenname-42@spam.example")
	r := e.do(nil, "GET", "/lookup?ip=192.0.2.20", "", nil)
	if r.code != 200 || strings.Contains(r.body, "hiddenname") || !strings.Contains(r.body, "…@trap.blowback.test") {
		t.Errorf("lookup page shows the trap local part or no domain:\n%s", r.body)
	}
	for _, want := range []string{"<html lang=\"en\">", "is <strong>listed</strong>", "127.0.0.2", "What to look for in your own logs",
		"grep -E &#39;to=&lt;[^&gt;]*@trap\\.blowback\\.test&gt;&#39; /var/log/mail.log", "<label for=\"reason\">"} {
		if !strings.Contains(r.body, want) {
			t.Errorf("lookup page lacks %q", want)
		}
	}
	if csp := r.hdr.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("CSP %q", csp)
	}
	r = e.do(nil, "GET", "/lookup?ip=bogus", "", nil)
	if r.code != 400 || !strings.Contains(r.body, "role=\"alert\"") {
		t.Errorf("bad address page: %d", r.code)
	}
	css := e.do(nil, "GET", "/static/style.css?v="+cssVersion, "", nil)
	if css.code != 200 || !strings.HasPrefix(css.hdr.Get("Content-Type"), "text/css") || !strings.Contains(css.hdr.Get("Cache-Control"), "immutable") {
		t.Errorf("css: %d %v", css.code, css.hdr)
	}
}

func TestStatus(t *testing.T) {
	now := time.Now().UTC()
	e := newEnvWith(t, nil, func(e *env) {
		// Before the server started: found by the seeding scan.
		e.hit("192.0.2.30", store.KindBounce, now.Add(-3*time.Hour), "a@trap.blowback.test", "1@x")
		e.hit("192.0.2.31", store.KindBounce, now.Add(-3*time.Hour), "a@trap.blowback.test", "2@x")
		e.hit("192.0.2.32", store.KindMDN, now.Add(-50*time.Hour), "a@trap.blowback.test", "3@x") // daily only
	})
	e.waitCounted()
	// A new hit is counted through the engine's counter.
	e.hit("192.0.2.33", store.KindCallout, now, "a@trap.blowback.test", "4@x")
	e.served("192.0.2.33")
	st := e.status()
	sum := func(v []uint64) (n uint64) {
		for _, x := range v {
			n += x
		}
		return n
	}
	if sum(st.Hourly["bounce"]) != 2 || sum(st.Hourly["callout"]) != 1 || sum(st.Hourly["mdn"]) != 0 || sum(st.Daily["mdn"]) != 1 || sum(st.Daily["bounce"]) != 2 {
		t.Errorf("counts: hourly %v daily %v", st.Hourly, st.Daily)
	}
	if st.Hourly["callout"][hourlyBuckets-1] != 1 || st.Hourly["bounce"][hourlyBuckets-4] != 2 {
		t.Errorf("buckets: %v", st.Hourly)
	}
	if st.Entries != 4 || st.Zone != "bl.blowback.test" || st.Serial == 0 || !st.Fresh || st.Built == nil {
		t.Errorf("zone status: %+v", st)
	}
	r := e.do(nil, "GET", "/status", "", nil)
	for _, want := range []string{"<svg class=\"chart\" id=\"hourly\"", "role=\"img\"", "<desc id=\"hourly-desc\">", "bounce: 2", "callout: 1", "<dt>Serial</dt>", "current"} {
		if !strings.Contains(r.body, want) {
			t.Errorf("status page lacks %q", want)
		}
	}
	if n := strings.Count(r.body, "<rect x="); n < 3 {
		t.Errorf("status chart has %d bars", n)
	}
}

func (e *env) status() Status {
	e.t.Helper()
	r := e.do(nil, "GET", "/api/v1/status", "", nil)
	var st Status
	if err := json.Unmarshal([]byte(r.body), &st); err != nil || r.code != 200 {
		e.t.Fatalf("status: %d %v %s", r.code, err, r.body)
	}
	return st
}

// served waits until ip is in the published zone (publication is
// asynchronous, a few ms after an ingest).
func (e *env) served(ip string) {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for e.cur.Load().Lookup(netip.MustParseAddr(ip)) == 0 {
		if time.Now().After(deadline) {
			e.t.Fatalf("%s never published", ip)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (e *env) waitCounted() Status {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st := e.status()
		if !st.Counting {
			return st
		}
		if time.Now().After(deadline) {
			e.t.Fatal("hit statistics never finished seeding")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestMetricsLint runs promlint over everything the web server and the
// listing engine register, after traffic.
func TestMetricsLint(t *testing.T) {
	e := newEnv(t, nil)
	e.do(nil, "GET", "/api/v1/lookup/192.0.2.1", "", nil)
	e.do(nil, "GET", "/nothing", "", nil)
	r := e.do(nil, "GET", "/metrics", "", nil)
	if r.code != 200 || !strings.Contains(r.body, `blowback_http_requests_total{code="404",handler="unmatched"} 1`) {
		t.Fatalf("metrics: %d\n%s", r.code, r.body)
	}
	testenv.Promlint(t, []byte(r.body))
}

func TestChartAxis(t *testing.T) {
	for _, c := range []struct {
		peak      uint64
		top, step float64
	}{
		{0, 1, 1}, {1, 1, 1}, {3, 3, 1}, {4, 4, 1}, {5, 6, 2}, {7, 8, 2}, {9, 10, 5}, {20, 20, 5}, {21, 30, 10}, {950, 1000, 500},
	} {
		top, step := axis(c.peak)
		if top != c.top || step != c.step {
			t.Errorf("axis(%d) = %v, %v; want %v, %v", c.peak, top, step, c.top, c.step)
		}
	}
}

// TestAdminEvidenceCaps: the admin evidence of an address shows what the
// caps summarised for its unit and its network (store.UnitSummary), not
// only the events stored.
func TestAdminEvidenceCaps(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	ip := netip.MustParseAddr("198.51.100.9")
	max := store.DefaultOptions().UnitMaxEvents
	t0 := time.Now().Add(-10 * time.Minute).Truncate(time.Hour)
	for i := range max + 20 {
		ev := &store.Event{ID: store.NewEventID(), Time: t0.Add(time.Duration(i) * time.Millisecond), ClientIP: ip, Kind: store.KindBounce,
			Rcpts: []string{"x@trap.blowback.test"}, TrapDomain: "trap.blowback.test", HELO: "flood.example.net"}
		if err := e.st.Put(ctx, ev, nil); err != nil {
			t.Fatal(err)
		}
	}
	r := e.do(nil, "GET", "/api/v1/admin/evidence/198.51.100.9?limit=1", "", map[string]string{"Authorization": "Bearer " + testToken})
	if r.code != 200 {
		t.Fatalf("evidence: %d %s", r.code, r.body)
	}
	var out struct {
		Events           []store.Event       `json:"events"`
		Summaries        []store.UnitSummary `json:"summaries"`
		Network          string              `json:"network"`
		NetworkSummaries []store.UnitSummary `json:"network_summaries"`
	}
	if err := json.Unmarshal([]byte(r.body), &out); err != nil {
		t.Fatal(err)
	}
	if len(out.Events) != 1 || out.Network != "198.51.100.0/24" {
		t.Errorf("events %d (want 1, ?limit=1), network %q", len(out.Events), out.Network)
	}
	if len(out.Summaries) != 1 || out.Summaries[0].Events != max || out.Summaries[0].Summarised[store.KindBounce] != 20 {
		t.Errorf("unit summaries %+v, want %d stored and 20 bounces summarised", out.Summaries, max)
	}
	if len(out.NetworkSummaries) != 1 || out.NetworkSummaries[0].Unit.String() != "198.51.100.0/24" ||
		out.NetworkSummaries[0].Events+out.NetworkSummaries[0].SummarisedTotal() != max+20 {
		t.Errorf("network summaries %+v, want the network's %d events counted", out.NetworkSummaries, max+20)
	}
}
