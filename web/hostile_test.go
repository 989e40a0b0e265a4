package web

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/blowback-dnsbl/blowback/listing"
	"github.com/blowback-dnsbl/blowback/scoring"
	"github.com/blowback-dnsbl/blowback/store"
)

// Tests for the attacks of issue 13 on the web surface. Each names the
// attack it checks.

// TestCSRFJSONDelist (13.6): a text/plain form on any web site must not
// delist through its visitors; nor may a JSON post a browser marks as
// cross-site. Every state-changing JSON endpoint is guarded the same way.
func TestCSRFJSONDelist(t *testing.T) {
	e := newEnv(t, nil)
	e.hit("203.0.113.40", store.KindBounce, time.Now().Add(-time.Minute), "t1@trap.blowback.test", "m1@x")
	body := `{"ip":"203.0.113.40","reason":"csrf"}`
	for _, c := range []struct {
		name string
		hdr  map[string]string
		code int
	}{
		{"text/plain form", map[string]string{"Content-Type": "text/plain", "Origin": "http://evil.example"}, 415},
		{"text/plain same origin", map[string]string{"Content-Type": "text/plain"}, 415},
		{"form urlencoded", map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, 415},
		{"no content type", nil, 415},
		{"json lookalike", map[string]string{"Content-Type": "application/jsonp"}, 415},
		{"json from a foreign origin", map[string]string{"Content-Type": "application/json", "Origin": "http://evil.example"}, 403},
		{"json from a null origin", map[string]string{"Content-Type": "application/json", "Origin": "null"}, 403},
		{"json marked cross-site", map[string]string{"Content-Type": "application/json", "Sec-Fetch-Site": "cross-site"}, 403},
	} {
		if r := e.do(nil, "POST", "/api/v1/delist", body, c.hdr); r.code != c.code || !strings.Contains(r.body, `"error"`) {
			t.Errorf("%s: %d %s, want %d", c.name, r.code, r.body, c.code)
		}
	}
	if !e.lookupJSON("203.0.113.40").Listed {
		t.Fatal("a refused cross-site post delisted")
	}
	// The admin and intake endpoints: the same rule.
	for _, path := range []string{"/api/v1/admin/list", "/api/v1/admin/delist", "/api/v1/admin/nodes/x/revoke", "/api/v1/evidence"} {
		r := e.do(nil, "POST", path, `{"ip":"203.0.113.41","reason":"x"}`, map[string]string{"Content-Type": "text/plain", "Authorization": "Bearer " + testToken})
		if r.code != 415 {
			t.Errorf("%s with text/plain: %d %s", path, r.code, r.body)
		}
	}
	// Same origin (the browser's own fetch) and no Origin (curl) work.
	r := e.do(nil, "POST", "/api/v1/delist", body, map[string]string{"Content-Type": "application/json; charset=utf-8", "Origin": e.base})
	if r.code != 200 {
		t.Fatalf("same-origin JSON delist: %d %s", r.code, r.body)
	}
}

// TestDelistOnlyListed (13.7): delisting what is not listed, a test point
// or an allowlisted address charges nothing, writes no audit entry and
// answers 409 with why; the real owner can still delist afterwards.
func TestDelistOnlyListed(t *testing.T) {
	pol := scoring.DefaultPolicy()
	pol.Allow = []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")}
	e := newEnvPolicy(t, func(c *Config) { c.DelistPerIPPerHour, c.DelistPerAddrPerDay = 2, 1 }, nil, pol)
	e.hit("198.51.100.5", store.KindBounce, time.Now().Add(-time.Minute), "t1@trap.blowback.test", "m1@x") // allowlisted
	e.hit("203.0.113.50", store.KindBounce, time.Now().Add(-time.Minute), "t1@trap.blowback.test", "m1@x")
	e.hit("203.0.113.51", store.KindBounce, time.Now().Add(-time.Minute), "t1@trap.blowback.test", "m1@x")
	cases := []struct{ ip, says string }{
		{"192.0.2.99", "not listed"},
		{"203.0.113.50", ""}, // a real one, in the middle
		{"203.0.113.50", "not listed"},
		{"127.0.0.2", "test point"},
		{"::ffff:127.0.0.2", "test point"},
		{"127.0.0.1", "never listed"},
		{"::1", "never listed"},
		{"224.0.0.1", "never listed"},
		{"198.51.100.5", "allowlisted"},
		{"192.0.2.99", "not listed"},
		{"192.0.2.99", "not listed"},
	}
	for _, c := range cases {
		r := e.do(nil, "POST", "/api/v1/delist", `{"ip":"`+c.ip+`","reason":"please"}`, jsonCT)
		if c.says == "" {
			if r.code != 200 {
				t.Fatalf("real delist of %s: %d %s", c.ip, r.code, r.body)
			}
			continue
		}
		if r.code != http.StatusConflict || !strings.Contains(r.body, c.says) {
			t.Errorf("delist %s: %d %s, want 409 saying %q", c.ip, r.code, r.body, c.says)
		}
	}
	// The requester has one real delist left of 2: the refusals cost nothing.
	if r := e.do(nil, "POST", "/api/v1/delist", `{"ip":"203.0.113.51","reason":"fixed"}`, jsonCT); r.code != 200 {
		t.Errorf("second real delist after refusals: %d %s", r.code, r.body)
	}
	log, err := e.st.AuditLog(time.Time{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(log) != 2 {
		t.Errorf("audit log has %d entries, want the 2 real delists: %+v", len(log), log)
	}
	if !e.lookupJSON("127.0.0.2").Listed {
		t.Error("test point 127.0.0.2 not listed")
	}
	// The page offers no form where the API would refuse.
	for _, ip := range []string{"127.0.0.2", "127.0.0.1", "198.51.100.5", "192.0.2.99"} {
		if r := e.do(nil, "GET", "/lookup?ip="+ip, "", nil); strings.Contains(r.body, `action="/delist"`) {
			t.Errorf("lookup page of %s offers a delist form", ip)
		}
	}
}

// TestNoPublicFreeText (13.8): the public delist reason shows nowhere
// public; the public explain API shows no requester address, no allowlist
// entry; the admin sees them; ?done= echoes nothing.
func TestNoPublicFreeText(t *testing.T) {
	pol := scoring.DefaultPolicy()
	pol.Allow = []netip.Prefix{netip.MustParsePrefix("198.51.100.0/28")}
	e := newEnvPolicy(t, nil, nil, pol)
	e.hit("203.0.113.60", store.KindBounce, time.Now().Add(-time.Minute), "t1@trap.blowback.test", "m1@x")
	e.hit("198.51.100.3", store.KindBounce, time.Now().Add(-time.Minute), "t1@trap.blowback.test", "m1@x")
	const evil = "CALL-0800-SCAM \x1b[2J visit evil.example"
	if r := e.do(nil, "POST", "/api/v1/delist", `{"ip":"203.0.113.60","reason":"`+strings.ReplaceAll(evil, "\x1b", `\u001b`)+`"}`, jsonCT); r.code != 200 {
		t.Fatalf("delist: %d %s", r.code, r.body)
	}
	public := map[string]string{
		"page":    e.do(nil, "GET", "/lookup?ip=203.0.113.60", "", nil).body,
		"lookup":  e.do(nil, "GET", "/api/v1/lookup/203.0.113.60", "", nil).body,
		"explain": e.do(nil, "GET", "/api/v1/explain/203.0.113.60", "", nil).body,
	}
	for name, body := range public {
		if strings.Contains(body, "SCAM") || strings.Contains(body, "127.0.0.1") && name == "explain" {
			t.Errorf("public %s shows the delist reason or the requester:\n%s", name, body)
		}
	}
	if !strings.Contains(public["page"], "self-service") {
		t.Errorf("page does not say how it was delisted:\n%s", public["page"])
	}
	admin := e.do(nil, "GET", "/api/v1/explain/203.0.113.60", "", map[string]string{"Authorization": "Bearer " + testToken}).body
	if !strings.Contains(admin, "SCAM") || !strings.Contains(admin, "public:127.0.0.1") {
		t.Errorf("admin explain lacks the reason or requester:\n%s", admin)
	}
	al := e.do(nil, "GET", "/api/v1/explain/198.51.100.3", "", nil).body
	if strings.Contains(al, "198.51.100.0/28") {
		t.Errorf("public explain shows the allowlist entry:\n%s", al)
	}
	if al := e.do(nil, "GET", "/lookup?ip=198.51.100.3", "", nil).body; strings.Contains(al, "198.51.100.0/28") {
		t.Errorf("lookup page shows the allowlist entry")
	}
	// ?done= and ?ip= never reach the notice as text.
	for _, q := range []string{
		"ip=Your+account+is+locked.+Call+0800&done=delisted",
		"ip=192.0.2.1&done=Your+account+is+locked",
		"ip=192.0.2.1&done=%3Cb%3Ebold",
	} {
		body := e.do(nil, "GET", "/lookup?"+q, "", nil).body
		if strings.Contains(body, "locked") && strings.Contains(body, "removed") || strings.Contains(body, "has been removed") && !strings.Contains(q, "done=delisted") {
			t.Errorf("/lookup?%s echoes text in the notice:\n%s", q, body)
		}
		if strings.Contains(body, "locked") && strings.Contains(q, "done=Your") {
			t.Errorf("/lookup?%s shows the done text", q)
		}
	}
	if body := e.do(nil, "GET", "/lookup?ip=192.0.2.1&done=delisted", "", nil).body; !strings.Contains(body, "192.0.2.1 has been removed") {
		t.Errorf("the fixed notice is gone")
	}
}

// TestDelistLimiterPer64 (13.10): IPv6 requesters are counted per /64, and
// the limiter stays bounded however many keys come.
func TestDelistLimiterPer64(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.DelistPerIPPerHour = 2 })
	for i := range 3 {
		e.hit(fmt.Sprintf("203.0.113.%d", 70+i), store.KindBounce, time.Now().Add(-time.Minute), "t1@trap.blowback.test", "m1@x")
	}
	ctx := context.Background()
	for i, req := range []string{"2001:db8:9:9::1", "2001:db8:9:9:ffff::2", "2001:db8:9:9:1234:5678:9abc:def0"} {
		code, msg := e.srv.Delist(ctx, netip.MustParseAddr(fmt.Sprintf("203.0.113.%d", 70+i)), "fixed", netip.MustParseAddr(req))
		want := 200
		if i == 2 {
			want = 429 // a third address in the same /64
		}
		if code != want {
			t.Errorf("delist %d from %s: %d %s, want %d", i, req, code, msg, want)
		}
	}
	// Another /64 has its own allowance.
	if code, msg := e.srv.Delist(ctx, netip.MustParseAddr("203.0.113.72"), "fixed", netip.MustParseAddr("2001:db8:9:a::1")); code != 200 {
		t.Errorf("other /64: %d %s", code, msg)
	}

	l := newLimiter(2, time.Hour, 1000)
	now := time.Now()
	for i := range 100000 {
		k := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), 32)
		l.Take(k, now)
	}
	if n := l.Len(); n != 1000 {
		t.Errorf("limiter holds %d keys, want its capacity 1000", n)
	}
	k := netip.MustParsePrefix("192.0.2.1/32")
	first, second, third := l.Take(k, now), l.Take(k, now), l.Take(k, now)
	if !first || !second || third {
		t.Errorf("2 per hour not enforced: %v %v %v", first, second, third)
	}
	if !l.Take(k, now.Add(31*time.Minute)) {
		t.Error("allowance does not recover")
	}
}

// TestNeverListedAgree (13.11): evidence from never-listable addresses is
// refused at intake, and page, APIs and DNS agree on the test points.
func TestNeverListedAgree(t *testing.T) {
	e := newEnv(t, nil)
	now := time.Now().Add(-time.Minute)
	never := []string{"127.0.0.1", "::ffff:127.0.0.1", "::1", "0.0.0.0", "255.255.255.255", "224.0.0.5", "169.254.3.3", "fe80::1", "ff02::1"}
	for _, ip := range never {
		e.hit(ip, store.KindBounce, now, "t1@trap.blowback.test", "m1@x")
		e.hit(ip, store.KindAutoreply, now, "t2@trap.blowback.test", "m2@x")
	}
	e.hit("127.0.0.9", store.KindBounce, now, "t1@trap.blowback.test", "m1@x") // loopback stand-in: listable
	e.served("127.0.0.9")
	for _, ip := range never {
		a := netip.MustParseAddr(ip)
		evs, err := e.st.Events(scoring.Unit(a), 0)
		if err != nil || len(evs) != 0 {
			t.Errorf("%s: %d events stored", ip, len(evs))
		}
		l := e.lookupJSON(ip)
		if l.Listed || len(l.Codes) != 0 || e.cur.Load().Lookup(a) != 0 {
			t.Errorf("%s: lookup %+v, DNS %v", ip, l, e.cur.Load().Lookup(a))
		}
		if page := e.do(nil, "GET", "/lookup?ip="+ip, "", nil).body; strings.Contains(page, "is <strong>listed</strong>") {
			t.Errorf("%s: page says listed", ip)
		}
	}
	if n := testutilCount(e.reg, "blowback_listing_refused_events_total"); n != float64(2*len(never)) {
		t.Errorf("refused events counted %v, want %d", n, 2*len(never))
	}
	for _, ip := range []string{"127.0.0.2", "::ffff:127.0.0.2", "127.0.0.9"} {
		a := netip.MustParseAddr(ip)
		if l := e.lookupJSON(ip); !l.Listed || e.cur.Load().Lookup(a) == 0 {
			t.Errorf("%s: lookup %+v, DNS %v", ip, l, e.cur.Load().Lookup(a))
		}
	}
	tp := e.lookupJSON("127.0.0.1")
	if !tp.TestPoint || !strings.Contains(tp.Reason, "never") {
		t.Errorf("127.0.0.1: %+v", tp)
	}
}

// TestBoundedReads (13.2): one address with 50,000 stored events; the
// lookup and explain answers and the memory one request allocates stay
// bounded, and explain pages through the evidence.
func TestBoundedReads(t *testing.T) {
	if testing.Short() {
		t.Skip("stores 50,000 events")
	}
	e := newEnv(t, nil)
	const n = 50000
	ip := netip.MustParseAddr("192.0.2.77")
	// 8 s apart over 111 hours: under the store's per-unit cap (500 an
	// hour), all stored one by one, as 400 days of retention allow.
	t0 := time.Now().Add(-120 * time.Hour)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for w := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 64 {
				ev := &store.Event{ID: store.NewEventID(), Time: t0.Add(time.Duration(i) * 8 * time.Second), ClientIP: ip,
					HELO: "mx.flood.example", Rcpts: []string{fmt.Sprintf("r%d@trap.blowback.test", i)}, TrapDomain: "trap.blowback.test", Kind: store.KindCallout}
				if err := e.st.Put(context.Background(), ev, nil); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if _, err := e.eng.Rescore(context.Background(), scoring.Unit(ip)); err != nil {
		t.Fatal(err)
	}
	h := e.srv.Handler()
	took := map[string]time.Duration{}
	get := func(path string) (*httptest.ResponseRecorder, uint64) {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		rec := httptest.NewRecorder()
		start := time.Now()
		h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		took[path] = time.Since(start) // reported, not judged
		runtime.ReadMemStats(&after)
		return rec, after.TotalAlloc - before.TotalAlloc
	}
	const maxBody, maxAlloc = 512 << 10, 48 << 20
	for _, path := range []string{"/api/v1/lookup/192.0.2.77", "/api/v1/explain/192.0.2.77", "/api/v1/explain/192.0.2.77?limit=100000", "/lookup?ip=192.0.2.77"} {
		rec, alloc := get(path)
		if rec.Code != 200 || rec.Body.Len() > maxBody || alloc > maxAlloc {
			t.Errorf("%s: %d, %d bytes, %d MB allocated (want <= %d KB, %d MB)", path, rec.Code, rec.Body.Len(), alloc>>20, maxBody>>10, maxAlloc>>20)
		}
		t.Logf("%s: %d bytes, %.1f MB allocated, %v", path, rec.Body.Len(), float64(alloc)/(1<<20), took[path].Round(time.Millisecond))
	}
	rec, _ := get("/api/v1/explain/192.0.2.77?offset=4000&limit=200")
	var x listing.Explanation
	if err := json.Unmarshal(rec.Body.Bytes(), &x); err != nil {
		t.Fatal(err)
	}
	if !x.Listed || x.EvidenceTotal != listing.DefaultMaxRefs || !x.EvidencePartial || len(x.Evidence) != listing.DefaultMaxRefs-4000 ||
		x.NextOffset != nil || len(x.Summary) != 1 || x.Summary[0].Events != listing.DefaultMaxRefs {
		t.Errorf("explain page: total %d partial %v evidence %d next %v summary %+v", x.EvidenceTotal, x.EvidencePartial, len(x.Evidence), x.NextOffset, x.Summary)
	}
	// The admin's raw evidence is paged too.
	req := httptest.NewRequest("GET", "/api/v1/admin/evidence/192.0.2.77", nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	arec := httptest.NewRecorder()
	h.ServeHTTP(arec, req)
	var ae struct{ Events []store.Event }
	if err := json.Unmarshal(arec.Body.Bytes(), &ae); err != nil || len(ae.Events) != 1000 {
		t.Errorf("admin evidence: %d events, %d bytes, %v", len(ae.Events), arec.Body.Len(), err)
	}
	var l Lookup
	rec, _ = get("/api/v1/lookup/192.0.2.77")
	json.Unmarshal(rec.Body.Bytes(), &l)
	if !l.Listed || !l.CountsPartial || len(l.Evidence) != maxEvidenceShown {
		t.Errorf("lookup: listed %v partial %v evidence %d", l.Listed, l.CountsPartial, len(l.Evidence))
	}
}

// TestSummarisedShown: evidence past the store's per-unit cap is counted,
// not kept; the lookup and explain say how much.
func TestSummarisedShown(t *testing.T) {
	e := newEnv(t, nil)
	ip := netip.MustParseAddr("192.0.2.78")
	base := time.Now().UTC().Truncate(time.Hour).Add(-2 * time.Hour)
	for i := range 600 {
		ev := &store.Event{ID: store.NewEventID(), Time: base.Add(time.Duration(i) * time.Second), ClientIP: ip,
			Rcpts: []string{"a@trap.blowback.test"}, TrapDomain: "trap.blowback.test", Kind: store.KindCallout}
		if err := e.st.Put(context.Background(), ev, nil); err != nil {
			t.Fatal(err)
		}
	}
	l := e.lookupJSON(ip.String())
	if l.Counts["callout"]+l.Summarised["callout"] != 600 || l.Summarised["callout"] == 0 {
		t.Errorf("counts %v, summarised %v: want 600 in all", l.Counts, l.Summarised)
	}
	r := e.do(nil, "GET", "/api/v1/explain/"+ip.String(), "", nil)
	var x listing.Explanation
	json.Unmarshal([]byte(r.body), &x)
	if x.Summarised["callout"] != l.Summarised["callout"] {
		t.Errorf("explain summarised %v, lookup %v", x.Summarised, l.Summarised)
	}
	if page := e.do(nil, "GET", "/lookup?ip="+ip.String(), "", nil).body; !strings.Contains(page, `<td class="num">600</td>`) {
		t.Errorf("lookup page does not count 600 messages")
	}
}
