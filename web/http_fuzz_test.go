package web

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/blowback-dnsbl/blowback/intake"
	"github.com/blowback-dnsbl/blowback/listing/listingtest"
	"github.com/blowback-dnsbl/blowback/scoring"
)

const surfaceAdminTok, surfaceNodeTok = "fuzz-admin-token-0123456789", "fuzz-node-token-0123456789"

// FuzzHTTPSurface sends arbitrary requests (method, path, headers, body) to
// the whole HTTP surface of a real store and engine: no handler may panic
// (the recovered-panic counter stays 0), no answer is a 500, and API paths
// answer JSON.
func FuzzHTTPSurface(f *testing.F) {
	seeds := []struct{ method, path, auth, ctype, body string }{
		{"GET", "/api/v1/lookup/192.0.2.1", "", "", ""},
		{"GET", "/api/v1/lookup/2001:db8::1", "", "", ""},
		{"GET", "/api/v1/explain/127.0.0.2", "", "", ""},
		{"GET", "/api/v1/status", "", "", ""},
		{"POST", "/api/v1/delist", "", "application/json", `{"ip":"192.0.2.1","reason":"fixed"}`},
		{"POST", "/api/v1/evidence", "Bearer " + surfaceNodeTok, "application/json", `{"node":"trap1","events":[{"id":"00112233445566778899aabbccddeeff","time":"2026-01-01T00:00:00Z","client_ip":"192.0.2.9","kind":"bounce"}],"raw":{"00112233445566778899aabbccddeeff":"aGk="}}`},
		{"POST", "/api/v1/admin/list", "Bearer " + surfaceAdminTok, "application/json", `{"ip":"192.0.2.7","reason":"r","kinds":["bounce"]}`},
		{"GET", "/api/v1/admin/evidence/192.0.2.9", "Bearer " + surfaceAdminTok, "", ""},
		{"GET", "/api/v1/admin/audit", "Bearer " + surfaceAdminTok, "", ""},
		{"GET", "/lookup?ip=192.0.2.1", "", "", ""},
		{"POST", "/delist", "", "application/x-www-form-urlencoded", "ip=192.0.2.1&reason=x&token=AAAA"},
		{"GET", "/status", "", "", ""},
		{"GET", "/%zz", "", "", ""},
	}
	for _, s := range seeds {
		f.Add(s.method, s.path, s.auth, s.ctype, []byte(s.body))
	}
	reg := prometheus.NewRegistry()
	log := slog.New(slog.DiscardHandler)
	le := listingtest.Start(f, f.TempDir(), scoring.DefaultPolicy(), log, reg)
	srv := New(Config{AdminTokens: []string{surfaceAdminTok}, Intake: intake.Config{NodeTokens: map[string]string{"trap1": surfaceNodeTok}}}, le.Engine, le.Store, le.Current, log, reg, reg, nil)
	h := srv.Handler()
	f.Fuzz(func(t *testing.T, method, path, auth, ctype string, body []byte) {
		if !strings.HasPrefix(path, "/") || strings.ContainsAny(method, " \t\r\n") || method == "" {
			return
		}
		req, err := http.NewRequest(method, "http://blowback.test"+path, bytes.NewReader(body))
		if err != nil {
			return
		}
		req.RemoteAddr = "192.0.2.200:4000"
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if n := testutilCount(reg, "blowback_http_panics_total"); n != 0 {
			t.Fatalf("%s %q: %v panics recovered", method, path, n)
		}
		if rec.Code == http.StatusInternalServerError {
			t.Fatalf("%s %q: 500: %s", method, path, rec.Body.String())
		}
		if strings.HasPrefix(req.URL.Path, "/api/") && rec.Code >= 400 && !strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json") {
			t.Fatalf("%s %q: %d with Content-Type %q", method, path, rec.Code, rec.Header().Get("Content-Type"))
		}
	})
}
