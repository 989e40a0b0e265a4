package intake

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/blowback-dnsbl/blowback/forward"
	"github.com/blowback-dnsbl/blowback/forward/forwardtest"
	"github.com/blowback-dnsbl/blowback/internal/httpjson"
	"github.com/blowback-dnsbl/blowback/internal/metric"
	"github.com/blowback-dnsbl/blowback/internal/testenv"
	"github.com/blowback-dnsbl/blowback/listing"
	"github.com/blowback-dnsbl/blowback/listing/listingtest"
	"github.com/blowback-dnsbl/blowback/scoring"
	"github.com/blowback-dnsbl/blowback/store"
)

const (
	intakeAdmin = "admin-token-for-intake-tests"
	tokA        = "node-a-token-0123456789"
	tokB        = "node-b-token-0123456789"
)

type intakeEnv struct {
	t      *testing.T
	st     *store.Store
	eng    *listing.Engine
	in     *Intake
	reg    *prometheus.Registry
	base   string
	client *http.Client
	logs   *testenv.Output
	stop   func()
}

// startIntake runs store, engine and the intake behind an HTTP server
// routed as the web server routes it (admin calls behind intakeAdmin);
// dir holds the store (so a second server can reopen it). tc, when set,
// makes the server HTTPS.
func startIntake(t *testing.T, dir string, mod func(*Config)) *intakeEnv {
	t.Helper()
	return startIntakeTLS(t, dir, mod, nil)
}

func startIntakeTLS(t *testing.T, dir string, mod func(*Config), tc *tls.Config) *intakeEnv {
	t.Helper()
	logs := &testenv.Output{} // to check that no token is ever logged
	var w io.Writer = logs
	if testing.Verbose() {
		w = io.MultiWriter(logs, os.Stderr)
	}
	log := slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
	reg := prometheus.NewRegistry()
	le := listingtest.Start(t, dir, scoring.DefaultPolicy(), log, reg)
	st, eng := le.Store, le.Engine
	isAdmin := func(tok string) bool { return tok == intakeAdmin }
	cfg := Config{NodeTokens: map[string]string{"trap-a": tokA}, IsAdmin: isAdmin}
	if mod != nil {
		mod(&cfg)
	}
	in := New(cfg, eng, st, log, reg)
	admin := func(h http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if !isAdmin(httpjson.Bearer(r)) {
				httpjson.Error(w, http.StatusUnauthorized, "admin token required")
				return
			}
			h(w, r)
		}
	}
	mux := http.NewServeMux()
	mux.Handle("POST "+forward.Path, in)
	mux.HandleFunc("GET /api/v1/admin/nodes", admin(in.ServeNodes))
	mux.HandleFunc("POST /api/v1/admin/nodes/{node}/revoke", admin(in.ServeRevoke))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + ln.Addr().String()
	if tc != nil {
		ln, base = tls.NewListener(ln, tc), "https://"+ln.Addr().String()
	}
	srv := &http.Server{Handler: mux, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	go srv.Serve(ln)
	e := &intakeEnv{t: t, st: st, eng: eng, in: in, reg: reg, base: base, client: &http.Client{}, logs: logs}
	var once sync.Once
	e.stop = func() {
		once.Do(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			srv.Shutdown(ctx)
			le.Stop()
		})
	}
	t.Cleanup(func() {
		e.stop()
		for _, tok := range []string{tokA, tokB, intakeAdmin} {
			if strings.Contains(logs.String(), tok) {
				t.Errorf("a token was logged")
			}
		}
	})
	return e
}

func intakeEvent(ip string) store.Event {
	return store.Event{ID: store.NewEventID(), Time: time.Now().UTC(), ClientIP: netip.MustParseAddr(ip),
		HELO: "mx.sender.example", Rcpts: []string{"x@trap.blowback.test"}, TrapDomain: "trap.blowback.test",
		Kind: store.KindBounce}
}

// post sends a batch; enc "gzip" compresses it, "gzip-raw" sends it as
// gzip as it is.
func (e *intakeEnv) post(token string, body []byte, enc string) (int, forward.Result, string) {
	e.t.Helper()
	if enc == "gzip" {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		zw.Write(body)
		zw.Close()
		body = buf.Bytes()
	}
	if enc == "gzip-raw" {
		enc = "gzip"
	}
	req, _ := http.NewRequest("POST", e.base+"/api/v1/evidence", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if enc != "" {
		req.Header.Set("Content-Encoding", enc)
	}
	resp, err := e.client.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var res forward.Result
	if resp.StatusCode == 200 {
		if err := json.Unmarshal(b, &res); err != nil {
			e.t.Fatalf("answer %s: %v", b, err)
		}
	}
	return resp.StatusCode, res, string(b)
}

func batchJSON(t *testing.T, b forward.Batch) []byte {
	t.Helper()
	js, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

func (e *intakeEnv) events(ip string) []store.Event {
	e.t.Helper()
	evs, err := e.st.Events(scoring.Unit(netip.MustParseAddr(ip)), 0)
	if err != nil {
		e.t.Fatal(err)
	}
	return evs
}

func TestEvidenceAuthentication(t *testing.T) {
	e := startIntake(t, t.TempDir(), nil)
	for i, tc := range []struct {
		token    string
		code     int
		wantNode string
	}{
		{"", 401, ""},
		{"wrong-token-0123456789", 401, ""},
		{tokA + "x", 401, ""},
		{tokA[:len(tokA)-1], 401, ""},
		{tokA, 200, "trap-a"},
		{intakeAdmin, 200, "claimed"},
	} {
		ip := fmt.Sprintf("198.51.100.%d", i+1)
		ev := intakeEvent(ip)
		ev.Node = "claimed" // the body's claim counts only for an admin
		code, res, body := e.post(tc.token, batchJSON(t, forward.Batch{Node: "claimed", Events: []store.Event{ev}}), "")
		if code != tc.code {
			t.Errorf("token %d: status %d (%s), want %d", i, code, body, tc.code)
			continue
		}
		evs := e.events(ip)
		if tc.code != 200 {
			if len(evs) != 0 {
				t.Errorf("token %d: refused but stored", i)
			}
			continue
		}
		if res.Accepted != 1 || len(evs) != 1 || evs[0].Node != tc.wantNode {
			t.Errorf("token %d: accepted %d, stored %+v, want node %q", i, res.Accepted, evs, tc.wantNode)
		}
	}
}

// A batch delivered twice (an acknowledgement lost) is stored once.
func TestEvidenceIdempotent(t *testing.T) {
	e := startIntake(t, t.TempDir(), nil)
	b := forward.Batch{Events: []store.Event{intakeEvent("203.0.113.5"), intakeEvent("203.0.113.5"), intakeEvent("203.0.113.6")}}
	for round := 0; round < 3; round++ {
		if code, res, body := e.post(tokA, batchJSON(t, b), "gzip"); code != 200 || res.Accepted != 3 {
			t.Fatalf("round %d: %d %s", round, code, body)
		}
	}
	if n := len(e.events("203.0.113.5")); n != 2 {
		t.Fatalf("203.0.113.5 has %d events, want 2", n)
	}
	if n := len(e.events("203.0.113.6")); n != 1 {
		t.Fatalf("203.0.113.6 has %d events, want 1", n)
	}
	d, _, _, err := e.eng.Decide(netip.MustParseAddr("203.0.113.5"))
	if err != nil || !d.Listed {
		t.Fatalf("forwarded evidence not scored: %+v %v", d, err)
	}
}

func TestEvidenceRawAndRejections(t *testing.T) {
	e := startIntake(t, t.TempDir(), nil)
	good := intakeEvent("192.0.2.10")
	noID := intakeEvent("192.0.2.11")
	noID.ID = store.EventID{}
	future := intakeEvent("192.0.2.12")
	future.Time = time.Now().Add(48 * time.Hour)
	raw := []byte("From: MAILER-DAEMON\r\n\r\nundeliverable\r\n")
	b := forward.Batch{Events: []store.Event{good, noID, future}, Raw: map[string][]byte{good.ID.String(): raw}}
	code, res, body := e.post(tokA, batchJSON(t, b), "gzip")
	if code != 200 || res.Accepted != 1 || len(res.Rejected) != 2 || res.Rejected[0].Index != 1 || res.Rejected[1].Index != 2 ||
		res.Rejected[1].ID != future.ID.String() {
		t.Fatalf("%d %s", code, body)
	}
	got, err := e.st.Raw(good.ID)
	if err != nil || !bytes.Equal(got, raw) {
		t.Fatalf("raw = %q, %v", got, err)
	}
	if len(e.events("192.0.2.12")) != 0 {
		t.Fatal("event from the future stored")
	}
}

func TestEvidenceBadBodies(t *testing.T) {
	e := startIntake(t, t.TempDir(), func(c *Config) { c.MaxBody, c.MaxInflate = 1<<20, 4<<20 })
	zeros := bytes.Repeat([]byte(" "), 4<<20+1) // compresses to little, inflates past the limit
	for _, tc := range []struct {
		name string
		body []byte
		enc  string
		code int
	}{
		{"not JSON", []byte("{"), "", 400},
		{"gzip header but plain body", []byte(`{"events":[]}`), "gzip-raw", 400},
		{"unknown encoding", []byte(`{"events":[]}`), "br", 400},
		{"inflates too far", zeros, "gzip", 413},
		{"too big", bytes.Repeat([]byte(" "), 1<<20+1), "", 413},
		{"empty batch", []byte(`{"events":[]}`), "", 200},
	} {
		if code, _, body := e.post(tokA, tc.body, tc.enc); code != tc.code {
			t.Errorf("%s: %d %s, want %d", tc.name, code, body, tc.code)
		}
	}
}

// Tokens from the file are re-read when it changes: removing a node's line
// revokes it without a restart.
func TestEvidenceTokensFileReload(t *testing.T) {
	file := filepath.Join(t.TempDir(), "nodes")
	write := func(s string) {
		t.Helper()
		if err := os.WriteFile(file, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("# trap nodes\ntrap-b " + tokB + "\n")
	e := startIntake(t, t.TempDir(), func(c *Config) { c.TokensFile = file })
	var mu sync.Mutex
	clock := time.Now()
	e.in.mu.Lock()
	e.in.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	e.in.mu.Unlock()
	advance := func() { mu.Lock(); clock = clock.Add(2 * time.Second); mu.Unlock() }
	send := func(tok, ip string) int {
		code, _, _ := e.post(tok, batchJSON(t, forward.Batch{Events: []store.Event{intakeEvent(ip)}}), "")
		return code
	}
	if c := send(tokB, "192.0.2.20"); c != 200 {
		t.Fatalf("file token: %d", c)
	}
	if evs := e.events("192.0.2.20"); len(evs) != 1 || evs[0].Node != "trap-b" {
		t.Fatalf("stored %+v", evs)
	}
	write("trap-c " + tokB + "-renewed\n") // trap-b removed
	advance()
	if c := send(tokB, "192.0.2.21"); c != 401 {
		t.Fatalf("removed token: %d, want 401", c)
	}
	if c := send(tokB+"-renewed", "192.0.2.22"); c != 200 {
		t.Fatalf("added token: %d", c)
	}
	write("broken line with three fields\n")
	advance()
	if c := send(tokB+"-renewed", "192.0.2.23"); c != 200 {
		t.Fatalf("a broken file dropped the previous tokens: %d", c)
	}
	if c := send(tokA, "192.0.2.24"); c != 200 {
		t.Fatalf("config token: %d", c)
	}
}

// The admin API revokes a node's token; the revocation survives a restart
// and a new token for the node works.
func TestEvidenceRevokeNode(t *testing.T) {
	dir := t.TempDir()
	e := startIntake(t, dir, func(c *Config) { c.NodeTokens["trap-b"] = tokB })
	admin := func(method, path, body string) (int, string) {
		req, _ := http.NewRequest(method, e.base+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+intakeAdmin)
		req.Header.Set("Content-Type", "application/json")
		resp, err := e.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	send := func(e *intakeEnv, tok string) int {
		code, _, _ := e.post(tok, batchJSON(t, forward.Batch{Events: []store.Event{intakeEvent("192.0.2.30")}}), "")
		return code
	}
	if c := send(e, tokA); c != 200 {
		t.Fatalf("before revocation: %d", c)
	}
	if c, body := admin("POST", "/api/v1/admin/nodes/trap-a/revoke", `{"reason":"host decommissioned"}`); c != 200 {
		t.Fatalf("revoke: %d %s", c, body)
	}
	if c, _ := admin("POST", "/api/v1/admin/nodes/trap-a/revoke", ""); c != 404 {
		t.Fatalf("second revoke: %d, want 404", c)
	}
	if c, _ := admin("POST", "/api/v1/admin/nodes/nosuch/revoke", ""); c != 404 {
		t.Fatalf("unknown node: %d, want 404", c)
	}
	if c := send(e, tokA); c != 401 {
		t.Fatalf("revoked token: %d, want 401", c)
	}
	if c := send(e, tokB); c != 200 {
		t.Fatalf("other node: %d", c)
	}
	c, body := admin("GET", "/api/v1/admin/nodes", "")
	var nodes struct{ Nodes []NodeInfo }
	if c != 200 || json.Unmarshal([]byte(body), &nodes) != nil || len(nodes.Nodes) != 2 ||
		!nodes.Nodes[0].Revoked || nodes.Nodes[0].Node != "trap-a" || nodes.Nodes[1].Revoked || nodes.Nodes[1].Accepted != 1 ||
		strings.Contains(body, tokA) {
		t.Fatalf("nodes: %d %s", c, body)
	}
	if c, _, _ := e.post("", nil, ""); c != 401 {
		t.Fatal("no token accepted")
	}
	audit, err := e.st.AuditLog(time.Time{}, 0)
	if err != nil || len(audit) == 0 || audit[len(audit)-1].Action != "revoke-node" {
		t.Fatalf("audit %+v %v", audit, err)
	}
	e.stop()

	e2 := startIntake(t, dir, func(c *Config) { c.NodeTokens["trap-a2"] = "node-a-token-renewed-0123" })
	if c := send(e2, tokA); c != 401 {
		t.Fatalf("revoked token after restart: %d, want 401", c)
	}
	if c := send(e2, "node-a-token-renewed-0123"); c != 200 {
		t.Fatalf("new token: %d", c)
	}
	if err := metric.Lint(e2.reg); err != nil {
		t.Error(err)
	}
}

// HTTPS with client certificates: the connection needs none, evidence
// needs a verified one when RequireClientCert is set.
func TestEvidenceClientCertificate(t *testing.T) {
	pki := forwardtest.NewPKI(t, t.TempDir())
	tc, err := forward.ServerTLS(pki.ServerCert, pki.ServerKey, pki.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	e := startIntakeTLS(t, t.TempDir(), func(c *Config) { c.RequireClientCert = true }, tc)
	e.client = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pki.Pool()}}}
	// The handshake needs no client certificate (the public pages on the
	// same listener keep working); the evidence call does.
	resp, err := e.client.Get(e.base + "/api/v1/admin/nodes")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Fatalf("admin call without client cert or token: %d, want 401", resp.StatusCode)
	}
	body := batchJSON(t, forward.Batch{Events: []store.Event{intakeEvent("192.0.2.40")}})
	if c, _, _ := e.post(tokA, body, ""); c != 403 {
		t.Fatalf("no client cert: %d, want 403", c)
	}
	cc, err := forward.TLSConfig(pki.CAFile, pki.ClientCert, pki.ClientKey, "")
	if err != nil {
		t.Fatal(err)
	}
	e.client = &http.Client{Transport: &http.Transport{TLSClientConfig: cc}}
	if c, _, b := e.post(tokA, body, ""); c != 200 {
		t.Fatalf("with client cert: %d %s", c, b)
	}
}

func TestParseNodeTokens(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int // nodes; -1: error
	}{
		{"", 0},
		{"# only a comment\n\n", 0},
		{"a 0123456789abcdef\nb 0123456789abcdeg # two\n", 2},
		{"a short\n", -1},
		{"a 0123456789abcdef extra\n", -1},
		{"a 0123456789abcdef\na 0123456789abcdeg\n", -1},
		{"admin 0123456789abcdef\n", -1},
		{"trap/1 0123456789abcdef\n", -1},
		{"trap-1.ams_2 0123456789abcdef\n", 1},
	} {
		m, err := ParseNodeTokens(strings.NewReader(tc.in))
		if got := len(m); (err != nil) != (tc.want < 0) || (err == nil && got != tc.want) {
			t.Errorf("ParseNodeTokens(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
}

// BenchmarkEvidenceIntake posts b.N events (batches of 500, one address
// each, from two concurrent clients) into a central node's intake with a
// synced on-disk store: the central side of forwarding, without TLS.
//
//	go test ./intake -run '^$' -bench EvidenceIntake -benchtime 20000x
func BenchmarkEvidenceIntake(b *testing.B) {
	b.Run("raw=none", func(b *testing.B) { benchIntake(b, false) })
	b.Run("raw=1KB", func(b *testing.B) { benchIntake(b, true) })
}

func benchIntake(b *testing.B, withRaw bool) {
	raw := bytes.Repeat([]byte("Final-Recipient: rfc822; nobody@example.net\r\n"), 24)
	t := &testing.T{}
	e := startIntake(t, b.TempDir(), nil)
	e.t = t
	defer e.stop()
	const per = 500
	var bodies [][]byte
	for i := 0; i < b.N; i += per {
		var batch forward.Batch
		for j := i; j < min(i+per, b.N); j++ {
			ev := intakeEvent(netip.AddrFrom4([4]byte{10, byte(j >> 16), byte(j >> 8), byte(j)}).String())
			batch.Events = append(batch.Events, ev)
			if withRaw {
				if batch.Raw == nil {
					batch.Raw = map[string][]byte{}
				}
				batch.Raw[ev.ID.String()] = raw
			}
		}
		bodies = append(bodies, batchJSON(t, batch))
	}
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	next := make(chan []byte)
	for w := 0; w < 2; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for body := range next {
				if code, _, msg := e.post(tokA, body, "gzip"); code != 200 {
					b.Errorf("%d %s", code, msg)
				}
			}
		}()
	}
	for _, body := range bodies {
		next <- body
	}
	close(next)
	wg.Wait()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
}

// FuzzParseNodeTokens: every accepted file yields nodes with tokens of 16
// characters or more, without white space.
func FuzzParseNodeTokens(f *testing.F) {
	for _, s := range []string{"", "a 0123456789abcdef\n", "# c\nb 0123456789abcdef # x\r\n", "a b c", "a\x00 0123456789abcdef"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ParseNodeTokens(strings.NewReader(s))
		if err != nil {
			return
		}
		for n, tok := range m {
			if !ValidNodeID(n) || len(tok) < 16 || strings.ContainsAny(tok, " \t\n") {
				t.Fatalf("accepted node %q token %q", n, tok)
			}
		}
	})
}

// countingReader counts the bytes read through it.
type countingReader struct {
	io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (n int, err error) {
	n, err = c.Reader.Read(p)
	c.n += int64(n)
	return
}

// A gzip bomb stops at the decompressed limit while it is read (issue 13
// item 9): the default limit is the plain body limit, the answer is 413,
// and the rest of the compressed body is never inflated.
func TestEvidenceGzipBomb(t *testing.T) {
	e := startIntake(t, t.TempDir(), nil)
	// Valid JSON that inflates past DefaultMaxBody: accepted if nothing
	// bounds the inflated size below it.
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	zw.Write([]byte(`{"node":"`))
	chunk := bytes.Repeat([]byte("a"), 1<<20)
	for i := 0; i < 4*DefaultMaxBody>>20; i++ {
		zw.Write(chunk)
	}
	zw.Write([]byte(`","events":[]}`))
	zw.Close()
	bomb := buf.Bytes()

	body := &countingReader{Reader: bytes.NewReader(bomb)}
	req := httptest.NewRequest("POST", forward.Path, body)
	req.Header.Set("Authorization", "Bearer "+tokA)
	req.Header.Set("Content-Encoding", "gzip")
	rec := httptest.NewRecorder()
	e.in.ServeHTTP(rec, req)
	if rec.Code != http.StatusRequestEntityTooLarge {
		t.Errorf("bomb of %d bytes (%d inflated): %d %s, want 413", len(bomb), 4*DefaultMaxBody, rec.Code, rec.Body)
	}
	if body.n > int64(len(bomb))/2 {
		t.Errorf("read %d of %d compressed bytes: inflated past the limit", body.n, len(bomb))
	}
	// Over HTTP too, and the node can still post.
	if code, _, msg := e.post(tokA, bomb, "gzip-raw"); code != http.StatusRequestEntityTooLarge {
		t.Errorf("over HTTP: %d %s", code, msg)
	}
	if code, _, msg := e.post(tokA, batchJSON(t, forward.Batch{Events: []store.Event{intakeEvent("192.0.2.50")}}), "gzip"); code != 200 {
		t.Errorf("after the bomb: %d %s", code, msg)
	}
}

// At most MaxInFlight batches are read at once; one more gets 503 with
// Retry-After (a trap retries it) until a slot frees (issue 13 item 9).
func TestEvidenceInFlightCap(t *testing.T) {
	e := startIntake(t, t.TempDir(), func(c *Config) { c.MaxInFlight = 1 })
	// The first batch holds the slot: its body arrives in two parts.
	pr, pw := io.Pipe()
	req, _ := http.NewRequest("POST", e.base+forward.Path, pr)
	req.Header.Set("Authorization", "Bearer "+tokA)
	first := make(chan int, 1)
	go func() {
		resp, err := e.client.Do(req)
		if err != nil {
			first <- 0
			return
		}
		resp.Body.Close()
		first <- resp.StatusCode
	}()
	body := batchJSON(t, forward.Batch{Events: []store.Event{intakeEvent("192.0.2.51")}})
	pw.Write(body[:10])
	testenv.Eventually(t, "the first batch to take its slot", func() bool { return len(e.in.slots) == 1 })
	req2, _ := http.NewRequest("POST", e.base+forward.Path, bytes.NewReader(body))
	req2.Header.Set("Authorization", "Bearer "+tokA)
	resp, err := e.client.Do(req2)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Errorf("second batch in flight: %d Retry-After %q, want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	pw.Write(body[10:])
	pw.Close()
	if c := <-first; c != 200 {
		t.Fatalf("first batch: %d", c)
	}
	if c, _, msg := e.post(tokA, body, ""); c != 200 {
		t.Errorf("after the slot freed: %d %s", c, msg)
	}
	var m dto.Metric
	e.in.m.batches.WithLabelValues("busy").Write(&m)
	if v := m.GetCounter().GetValue(); v != 1 {
		t.Errorf("busy batches counted %v, want 1", v)
	}
}

// ingestFunc is a fake Ingester.
type ingestFunc func(ctx context.Context, e *store.Event, raw []byte) error

func (f ingestFunc) Ingest(ctx context.Context, e *store.Event, raw []byte) error {
	return f(ctx, e, raw)
}

var _ Ingester = ingestFunc(nil)

// A panic while ingesting one event is recovered, counted in the host's
// panic counter, and answered 503 (the trap retries the batch); without a
// store the intake still authenticates configured nodes.
func TestEvidencePanicRecovered(t *testing.T) {
	panics := prometheus.NewCounter(prometheus.CounterOpts{Name: "test_panics_total", Help: "x"})
	var calls int
	in := New(Config{NodeTokens: map[string]string{"trap-a": tokA}, Panics: panics},
		ingestFunc(func(context.Context, *store.Event, []byte) error {
			calls++
			panic("boom")
		}), nil, nil, nil)
	req := httptest.NewRequest("POST", forward.Path, bytes.NewReader(batchJSON(t, forward.Batch{Events: []store.Event{intakeEvent("192.0.2.60")}})))
	req.Header.Set("Authorization", "Bearer "+tokA)
	rec := httptest.NewRecorder()
	in.ServeHTTP(rec, req)
	var m dto.Metric
	panics.Write(&m)
	if rec.Code != http.StatusServiceUnavailable || calls != 1 || m.GetCounter().GetValue() != 1 {
		t.Errorf("status %d, %d calls, %v panics counted; want 503, 1, 1", rec.Code, calls, m.GetCounter().GetValue())
	}
}
