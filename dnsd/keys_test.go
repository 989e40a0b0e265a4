package dnsd

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

func TestKeysAdminAPI(t *testing.T) {
	keys, path := testKeys(t)
	mux := http.NewServeMux()
	mux.Handle("/api/v1/admin/dns/keys", keys.Handler())
	mux.Handle("/api/v1/admin/dns/keys/{key}", keys.Handler())
	do := func(method, url, ctype, body string, want int) map[string]any {
		t.Helper()
		r := httptest.NewRequest(method, url, strings.NewReader(body))
		if ctype != "" {
			r.Header.Set("Content-Type", ctype)
		}
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, r)
		if w.Code != want {
			t.Fatalf("%s %s: %d %s, want %d", method, url, w.Code, w.Body, want)
		}
		var out map[string]any
		json.Unmarshal(w.Body.Bytes(), &out)
		return out
	}
	made := do("POST", "/api/v1/admin/dns/keys", "application/json", `{"note":"mx.example","budget":2}`, http.StatusCreated)
	k1, _ := made["key"].(string)
	if validKey(k1) != nil {
		t.Fatalf("made key %q", k1)
	}
	do("POST", "/api/v1/admin/dns/keys", "application/json", `{"key":"fixedkey99"}`, http.StatusCreated)
	do("POST", "/api/v1/admin/dns/keys", "text/plain", `{"key":"fixedkey98"}`, http.StatusUnsupportedMediaType)
	do("POST", "/api/v1/admin/dns/keys", "application/json", `{"key":"short"}`, http.StatusBadRequest)
	do("POST", "/api/v1/admin/dns/keys", "application/json", `{"key":"UPPERcase99"}`, http.StatusBadRequest)
	do("POST", "/api/v1/admin/dns/keys", "application/json", `{"bogus":1}`, http.StatusBadRequest)

	// Queries count per key; the list shows the busiest first.
	cur := serving(testSnapshot())
	s := New(Config{Keys: keys, RequireKey: true}, cur, nil, nil)
	name := keyedName("192.0.2.1", "fixedkey99")
	for range 3 {
		if u, _ := ask(t, s, "198.18.0.1", query(name, dns.TypeA)); len(u.Answer) != 2 {
			t.Fatalf("keyed query: %v", u)
		}
	}
	list := do("GET", "/api/v1/admin/dns/keys?top=1", "", "", http.StatusOK)
	top, _ := list["keys"].([]any)
	if len(top) != 1 || list["total"] != float64(2) {
		t.Fatalf("top=1: %v", list)
	}
	if first := top[0].(map[string]any); first["key"] != "fixedkey99" || first["queries"] != float64(6) {
		t.Errorf("top key %v, want fixedkey99 with 6 queries (3 over UDP, 3 over TCP)", first)
	}
	do("GET", "/api/v1/admin/dns/keys?top=x", "", "", http.StatusBadRequest)

	// The file keeps the keys (0600) and a new store reads them.
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", fi, err)
	}
	again, err := NewKeys(path, time.Hour)
	if err != nil || again.Len() != 2 {
		t.Fatalf("reloaded %d keys, %v", again.Len(), err)
	}
	do("DELETE", "/api/v1/admin/dns/keys/fixedkey99", "", "", http.StatusOK)
	do("DELETE", "/api/v1/admin/dns/keys/fixedkey99", "", "", http.StatusNotFound)
	if u, _ := ask(t, s, "198.18.0.1", query(name, dns.TypeA)); u.Rcode != dns.RcodeRefused {
		t.Errorf("deleted key still answered: %v", u)
	}
	do("PUT", "/api/v1/admin/dns/keys", "", "", http.StatusMethodNotAllowed)
}

// testKeys is a key store (its file in a temp dir) holding keys.
func testKeys(t *testing.T, keys ...KeyInfo) (*Keys, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "keys.json")
	k, err := NewKeys(path, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for _, ki := range keys {
		if err := k.Put(ki); err != nil {
			t.Fatal(err)
		}
	}
	return k, path
}

// keyedName is the DNSBL name of ip with key before the zone.
func keyedName(ip, key string) string {
	return strings.TrimSuffix(QueryName(netip.MustParseAddr(ip), zone), zone+".") + key + "." + zone + "."
}

// TestFastEqualsSlowKeyed: with keys on, keyed names answered on the fast
// path get the same answer from the slow path; refusals are left to it.
func TestFastEqualsSlowKeyed(t *testing.T) {
	keys, err := NewKeys("", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	keys.Put(KeyInfo{Key: "fastkey123"})
	s := New(Config{Keys: keys}, serving(testSnapshot()), nil, nil)
	for _, c := range []struct {
		m    *dns.Msg
		fast bool
	}{
		{query(keyedName("192.0.2.1", "fastkey123"), dns.TypeA), true},
		{query(keyedName("192.0.2.1", "FASTkey123"), dns.TypeTXT, edns(1232, false)), true},
		{query(keyedName("192.0.2.2", "fastkey123"), dns.TypeA), true},
		{query(keyedName("2001:db8:1:2::99", "fastkey123"), dns.TypeTXT), true},
		{query(v4name("192.0.2.1"), dns.TypeA), true}, // keys not required
		{query(keyedName("192.0.2.1", "otherkey12"), dns.TypeA), false},
		{query(keyedName("192.0.2.1", "9"), dns.TypeA), false},
		{query("fastkey123."+zone+".", dns.TypeA), false},
	} {
		if got := fastEqualsSlow(t, s, pack(t, c.m)); got != c.fast {
			t.Errorf("%v: fast path took it: %v, want %v", c.m.Question, got, c.fast)
		}
	}
}
