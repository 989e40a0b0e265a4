package web

import (
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/blowback-dnsbl/blowback/store"
	"github.com/blowback-dnsbl/blowback/zones"
)

// TestPagesWithFake: the public pages and APIs over the in-memory fake,
// without a store or an engine: lookup, public delist, the delisted page.
func TestPagesWithFake(t *testing.T) {
	f := NewFakeListing()
	a := netip.MustParseAddr("192.0.2.44")
	f.List(a, store.KindBounce, store.KindCallout)
	f.AddEvent(store.Event{ID: store.NewEventID(), Time: time.Now().Add(-time.Minute), ClientIP: a, HELO: "mx.secretlocal.example",
		Rcpts: []string{"secretlocal@trap.blowback.test"}, TrapDomain: "trap.blowback.test", Kind: store.KindBounce})
	srv := NewWith(Config{}, f, f, &zones.Current{}, nil, nil, nil, nil)
	if err := srv.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Stop(t.Context()) })
	e := &env{t: t, srv: srv, base: "http://" + srv.Addr().String()}

	l := e.lookupJSON(a.String())
	if !l.Listed || strings.Join(l.Codes, " ") != "127.0.0.2 127.0.0.4" || len(l.Evidence) != 1 || l.Evidence[0].HELO != "mx.….example" {
		t.Fatalf("lookup over the fake: %+v", l)
	}
	page := e.do(nil, "GET", "/lookup?ip="+a.String(), "", nil)
	if page.code != 200 || !strings.Contains(page.body, `action="/delist"`) || strings.Contains(page.body, "secretlocal") {
		t.Errorf("page over the fake: %d\n%s", page.code, page.body)
	}
	r := e.do(nil, "POST", "/api/v1/delist", `{"ip":"192.0.2.44","reason":"fixed"}`, jsonCT)
	if r.code != 200 || !strings.Contains(r.body, `"listed": false`) {
		t.Fatalf("delist over the fake: %d %s", r.code, r.body)
	}
	if acts := f.Actions(a); len(acts) != 1 || acts[0].Op != store.OpDelist || !acts[0].Public || acts[0].Who != "public:127.0.0.1" {
		t.Errorf("actions recorded: %+v", acts)
	}
	if r := e.do(nil, "POST", "/api/v1/delist", `{"ip":"192.0.2.44","reason":"again"}`, jsonCT); r.code != http.StatusConflict {
		t.Errorf("second delist of an unlisted address: %d %s", r.code, r.body)
	}
	if r := e.do(nil, "GET", "/api/v1/admin/audit", "", map[string]string{"Authorization": "Bearer x"}); r.code != http.StatusServiceUnavailable {
		t.Errorf("admin API on a pages-only server: %d", r.code)
	}
}
