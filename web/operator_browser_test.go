package web

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/blowback-dnsbl/blowback/internal/testenv"
	"github.com/blowback-dnsbl/blowback/selftest"
	"github.com/blowback-dnsbl/blowback/store"
)

// TestBrowserOperator drives the operator pages in headless chromium: the
// list's card, a listed lookup with fix advice, history and the self-test
// form (submitted for real), and each state of a self-test's page. With
// BLOWBACK_UPDATE_DOCS=1 the screenshots are also written to
// docs/screenshots/ (committed; linked from docs/operator.md).
func TestBrowserOperator(t *testing.T) {
	now := time.Now().UTC()
	ft := &fakeTester{res: map[string]selftest.Result{}}
	e := newEnvWith(t, func(c *Config) {
		c.Title = "Example backscatter list"
		c.SelfTest = ft
		c.Card = CardConfig{Rsync: "rsync://rsync.example.org/blowback/", AXFR: "AXFR and IXFR over TCP from ns1.example.org for 192.0.2.53, 2001:db8::53 (TSIG required)", MirrorAbove: 100000, TTL: 5 * time.Minute}
	}, func(e *env) {
		for i := range 6 {
			e.ingest("192.0.2.30", store.KindBounce, now.Add(-time.Duration(3*i+1)*time.Hour), "postfix", "Undelivered Mail Returned to Sender", "mx.example.org")
		}
		e.ingest("192.0.2.30", store.KindAutoreply, now.Add(-30*time.Hour), "", "Automatic reply: Out of office", "mx.example.org")
		e.ingest("192.0.2.30", store.KindBounce, now.Add(-70*24*time.Hour), "postfix", "Undelivered Mail Returned to Sender", "mx.example.org")
		for i, at := range []time.Duration{2, 40, 60} {
			e.ingest(fmt.Sprintf("192.0.2.%d", 40+i), store.KindBounce, now.Add(-at*24*time.Hour), "exim", "", "mx.example.org")
		}
		if err := e.st.PutSelfTest(context.Background(), store.SelfTestRecord{ID: strings.Repeat("0", 31) + "9", Started: now.Add(-26 * time.Hour),
			Time: now.Add(-26 * time.Hour), Unit: netip.MustParsePrefix("192.0.2.30/32"), Domain: "example.org", Verdict: "fail",
			Summary: "example.org: fail, probe accepted, 1 replies (first: bounce)"}); err != nil {
			t.Fatal(err)
		}
	})
	e.served("192.0.2.30")
	b := startChromium(t)
	shots := func(name string, mobile bool) {
		p := b.screenshot(name, 1024, false)
		docs(t, p)
		if mobile {
			docs(t, b.screenshot(name+"-mobile", 390, true))
			if v := b.eval(`document.documentElement.scrollWidth <= window.innerWidth`); v != true {
				t.Errorf("%s scrolls sideways at 390 px", name)
			}
		}
		b.call("Emulation.clearDeviceMetricsOverride", nil, nil)
	}

	// The card, reached from the navigation.
	b.navigate(e.base + "/")
	b.drain()
	b.eval(`document.querySelector("a[href='/zone']").click()`)
	b.waitLoad()
	txt := b.text()
	for _, want := range []string{"About bl.blowback.test", "2.0.0.127.bl.blowback.test", "NXDOMAIN", "about 14 days", "Safe mode", "rsync://rsync.example.org/blowback/", "100,000 queries a day"} {
		if !strings.Contains(txt, want) {
			t.Errorf("card lacks %q", want)
		}
	}
	b.a11y("card")
	b.eval(`document.querySelector("details").open = true`)
	shots("operator-card", true)

	// Listed, with advice, history and the self-test form.
	b.navigate(e.base + "/lookup?ip=192.0.2.30")
	txt = b.text()
	for _, want := range []string{"How to fix it", "Postfix: reject unknown recipients at RCPT", "smtpd_reject_unlisted_recipient",
		"Mail software not recognised", "Prove the fix: self-test", "History", "192.0.2.0/24", "example.org fail"} {
		if !strings.Contains(txt, want) {
			t.Errorf("listed lookup lacks %q", want)
		}
	}
	b.a11y("lookup with advice")
	shots("operator-lookup-advice", true)

	// The self-test form, submitted by the browser; each verdict's page.
	for _, c := range []struct{ domain, name, want string }{
		{"running.example.org", "operator-selftest-running", "Running"},
		{"fail.example.org", "operator-selftest-fail", "Failed"},
		{"pass.example.org", "operator-selftest-pass", "Passed"},
		{"nomx.example.org", "operator-selftest-error", "Could not test"},
	} {
		b.navigate(e.base + "/lookup?ip=192.0.2.30")
		b.drain()
		b.eval(`document.getElementById("domain").value = "` + c.domain + `"; document.querySelector("form[action='/selftest'] button").click()`)
		b.waitLoad()
		if url, _ := b.eval(`location.pathname`).(string); !strings.HasPrefix(url, "/selftest/") {
			t.Fatalf("%s: after the form at %s:\n%s", c.domain, url, b.text())
		}
		if txt := b.text(); !strings.Contains(txt, c.want) || !strings.Contains(txt, "Self-test of "+c.domain) {
			t.Errorf("%s page:\n%s", c.domain, txt)
		}
		if c.want == "Running" {
			if v := b.eval(`document.querySelector("meta[http-equiv=refresh]") !== null`); v != true {
				t.Error("a running test's page does not reload")
			}
		}
		b.a11y(c.name)
		shots(c.name, c.want == "Failed")
	}
}

// docs copies a screenshot into docs/screenshots when BLOWBACK_UPDATE_DOCS=1.
func docs(t *testing.T, p string) {
	t.Helper()
	if os.Getenv("BLOWBACK_UPDATE_DOCS") != "1" {
		return
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(testenv.Root(t), "docs", "screenshots")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, filepath.Base(p)), b, 0o644); err != nil {
		t.Fatal(err)
	}
}
