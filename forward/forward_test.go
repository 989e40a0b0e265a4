package forward_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/blowback-dnsbl/blowback/forward"
	"github.com/blowback-dnsbl/blowback/forward/forwardtest"
	"github.com/blowback-dnsbl/blowback/internal/metric"
	"github.com/blowback-dnsbl/blowback/internal/testenv"
	"github.com/blowback-dnsbl/blowback/store"
)

const token = "node-token-0123456789abcdef"

func testLog(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

func event(i int) *store.Event {
	return &store.Event{ID: store.NewEventID(), Time: time.Now().UTC().Truncate(time.Microsecond),
		ClientIP: netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}), HELO: fmt.Sprintf("mx%d.example", i),
		Rcpts: []string{fmt.Sprintf("t%d@trap.example", i)}, TrapDomain: "trap.example", Kind: store.KindBounce}
}

// central is a fake central node: it authenticates, decodes batches and
// records every event id it acknowledged, with how often it saw it.
type central struct {
	mu       sync.Mutex
	seen     map[store.EventID]int
	raw      map[string][]byte
	requests int
	gzipped  int
	// answer decides the reply to request n (from 1); nil: 200.
	answer func(n int, b *forward.Batch) (int, []forward.Rejection)
}

func newCentral() *central {
	return &central{seen: map[store.EventID]int{}, raw: map[string][]byte{}}
}

func (c *central) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != forward.Path || r.Method != http.MethodPost {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	if r.Header.Get("Authorization") != "Bearer "+token {
		http.Error(w, "node token required", http.StatusUnauthorized)
		return
	}
	var body io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		body = zr
	}
	var b forward.Batch
	if err := json.NewDecoder(body).Decode(&b); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	c.mu.Lock()
	c.requests++
	n := c.requests
	if r.Header.Get("Content-Encoding") == "gzip" {
		c.gzipped++
	}
	answer := c.answer
	c.mu.Unlock()
	code, rejected := http.StatusOK, []forward.Rejection(nil)
	if answer != nil {
		code, rejected = answer(n, &b)
	}
	if code != http.StatusOK {
		http.Error(w, "no", code)
		return
	}
	skip := map[int]bool{}
	for _, rj := range rejected {
		skip[rj.Index] = true
	}
	c.mu.Lock()
	for i, ev := range b.Events {
		if !skip[i] {
			c.seen[ev.ID]++
			if raw, ok := b.Raw[ev.ID.String()]; ok {
				c.raw[ev.ID.String()] = raw
			}
		}
	}
	c.mu.Unlock()
	json.NewEncoder(w).Encode(forward.Result{Accepted: len(b.Events) - len(rejected), Rejected: rejected})
}

func (c *central) count() (unique, total int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, n := range c.seen {
		unique++
		total += n
	}
	return
}

func (c *central) has(id store.EventID) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.seen[id] > 0
}

// rig is a spool and the forwarder draining it.
type rig struct {
	sp  *forward.Spool
	fw  *forward.Forwarder
	reg *prometheus.Registry
}

// start runs a spool in dir and a forwarder to url; both stop at cleanup.
func start(t *testing.T, dir, url string, mod func(*forward.Config)) *rig {
	t.Helper()
	sp, err := forward.OpenSpool(dir, forward.SpoolOptions{RawMax: 1 << 10}, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg := forward.Config{URL: url, Token: token, Node: "trap-test", BackoffMin: 5 * time.Millisecond,
		BackoffMax: 40 * time.Millisecond, Poll: 20 * time.Millisecond, BatchEvents: 50}
	if mod != nil {
		mod(&cfg)
	}
	reg := prometheus.NewRegistry()
	fw, err := forward.New(cfg, sp, testLog(t), reg)
	if err != nil {
		t.Fatal(err)
	}
	fw.Start()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		fw.Stop(ctx)
		sp.Close()
	})
	return &rig{sp: sp, fw: fw, reg: reg}
}

// forwardTo starts a forwarder on dir's spool sending to a central node
// served by h (stopped after the forwarder).
func forwardTo(t *testing.T, dir string, h http.Handler, mod func(*forward.Config)) *rig {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return start(t, dir, srv.URL, mod)
}

// drained waits until the central node has acknowledged every spooled
// event.
func (r *rig) drained(t *testing.T) {
	t.Helper()
	testenv.Eventually(t, "backlog drained", func() bool { return r.fw.Backlog() == 0 })
}

func (r *rig) put(t *testing.T, n int) []*store.Event {
	t.Helper()
	var out []*store.Event
	for i := 0; i < n; i++ {
		ev := event(i)
		if err := r.fw.Ingest(context.Background(), ev, []byte("raw message "+ev.ID.String())); err != nil {
			t.Fatal(err)
		}
		out = append(out, ev)
	}
	return out
}

func TestSpoolDurableAcrossReopen(t *testing.T) {
	dir := t.TempDir()
	sp, err := forward.OpenSpool(dir, forward.SpoolOptions{RawMax: 8}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var evs []*store.Event
	for i := 0; i < 5; i++ {
		ev := event(i)
		if err := sp.Put(context.Background(), ev, []byte("0123456789")); err != nil {
			t.Fatal(err)
		}
		evs = append(evs, ev)
	}
	if err := sp.Put(context.Background(), &store.Event{}, nil); err == nil {
		t.Fatal("invalid event spooled")
	}
	items, err := sp.Peek(nil, 2, 0)
	if err != nil || len(items) != 2 {
		t.Fatalf("peek: %d items, %v", len(items), err)
	}
	if err := sp.Ack(items); err != nil {
		t.Fatal(err)
	}
	sp.Close()

	sp, err = forward.OpenSpool(dir, forward.SpoolOptions{RawMax: 8}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	if sp.Len() != 3 {
		t.Fatalf("backlog after reopen = %d, want 3", sp.Len())
	}
	items, err = sp.Peek(nil, 0, 0)
	if err != nil || len(items) != 3 {
		t.Fatalf("peek after reopen: %d items, %v", len(items), err)
	}
	for i, it := range items {
		want := evs[i+2]
		var got store.Event
		if err := json.Unmarshal(it.Event, &got); err != nil {
			t.Fatal(err)
		}
		if it.ID != want.ID || got.ID != want.ID || got.ClientIP != want.ClientIP || !it.Time.Equal(want.Time) {
			t.Errorf("item %d = %s %v %s, want %s %v", i, it.ID, got.ClientIP, it.Time, want.ID, want.ClientIP)
		}
		if string(it.Raw) != "01234567" {
			t.Errorf("raw = %q, want it cut at RawMax", it.Raw)
		}
	}
	// The sequence continues after the reopen: a new event sorts last.
	late := event(9)
	if err := sp.Put(context.Background(), late, nil); err != nil {
		t.Fatal(err)
	}
	items, _ = sp.Peek(items[len(items)-1].Key, 0, 0)
	if len(items) != 1 || items[0].ID != late.ID || items[0].Raw != nil {
		t.Fatalf("after cursor: %+v", items)
	}
	if age := sp.OldestAge(); age <= 0 {
		t.Errorf("oldest age = %v with a backlog", age)
	}
}

func TestSpoolConcurrentPutsAndLimit(t *testing.T) {
	sp, err := forward.OpenSpool(t.TempDir(), forward.SpoolOptions{MaxEvents: 400}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	var wg sync.WaitGroup
	var full atomic.Int64
	for g := 0; g < 20; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 25; i++ {
				err := sp.Put(context.Background(), event(i), nil)
				switch {
				case err == nil:
				case err == forward.ErrSpoolFull:
					full.Add(1)
				default:
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	items, err := sp.Peek(nil, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	ids := map[store.EventID]bool{}
	for _, it := range items {
		ids[it.ID] = true
	}
	if int64(len(items)) != sp.Len() || len(ids) != len(items) || sp.Len()+full.Load() != 500 || full.Load() == 0 {
		t.Fatalf("items %d unique %d backlog %d full %d", len(items), len(ids), sp.Len(), full.Load())
	}
	if sp.Len() < 400 {
		t.Fatalf("backlog %d: the bound refused too early", sp.Len())
	}
}

func TestForwardDeliversAll(t *testing.T) {
	c := newCentral()
	r := forwardTo(t, t.TempDir(), c, nil)
	evs := r.put(t, 120)
	r.drained(t)
	unique, _ := c.count()
	if unique != len(evs) {
		t.Fatalf("central has %d events, want %d", unique, len(evs))
	}
	for _, ev := range evs {
		if string(c.raw[ev.ID.String()]) != "raw message "+ev.ID.String() {
			t.Fatalf("raw message of %s not forwarded", ev.ID)
		}
	}
	if c.gzipped == 0 {
		t.Error("bodies not gzipped")
	}
	if got := testenv.MetricValue(t, r.reg, "blowback_forward_sent_events_total"); got != float64(len(evs)) {
		t.Errorf("sent = %v, want %d", got, len(evs))
	}
	if got := testenv.MetricValue(t, r.reg, "blowback_forward_backlog_events"); got != 0 {
		t.Errorf("backlog metric = %v", got)
	}
	if err := metric.Lint(r.reg); err != nil {
		t.Error(err)
	}
}

// The central node fails (transport errors, then 503, then an answer lost
// after the commit): the trap keeps the evidence, retries, and every event
// arrives; resent ones are the only duplicates.
func TestForwardRetriesUntilCentralReturns(t *testing.T) {
	c := newCentral()
	var down atomic.Bool
	down.Store(true)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			// A dead central node: the connection closes without an answer.
			hj, ok := w.(http.Hijacker)
			if !ok {
				t.Error("no hijacker")
				return
			}
			conn, _, _ := hj.Hijack()
			conn.Close()
			return
		}
		c.ServeHTTP(w, r)
	})
	c.answer = func(n int, b *forward.Batch) (int, []forward.Rejection) {
		if n <= 3 {
			return http.StatusServiceUnavailable, nil
		}
		return http.StatusOK, nil
	}
	r := forwardTo(t, t.TempDir(), h, nil)
	evs := r.put(t, 30)
	testenv.Eventually(t, "network failures", func() bool {
		return testenv.MetricValue(t, r.reg, "blowback_forward_failed_batches_total", "reason", "network") >= 3
	})
	if r.fw.Backlog() != int64(len(evs)) {
		t.Fatalf("backlog %d while central is down, want %d", r.fw.Backlog(), len(evs))
	}
	more := r.put(t, 10) // the trap keeps accepting
	down.Store(false)
	r.drained(t)
	for _, ev := range append(evs, more...) {
		if !c.has(ev.ID) {
			t.Fatalf("event %s lost", ev.ID)
		}
	}
	if got := testenv.MetricValue(t, r.reg, "blowback_forward_failed_batches_total", "reason", "throttled"); got != 3 {
		t.Errorf("throttled failures = %v, want 3", got)
	}
}

func TestForwardAckLostResends(t *testing.T) {
	c := newCentral()
	var lose atomic.Int32
	lose.Store(1)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := httptest.NewRecorder()
		c.ServeHTTP(rec, r) // committed...
		if lose.Add(-1) >= 0 {
			w.WriteHeader(http.StatusBadGateway) // ...but the answer is lost
			return
		}
		w.WriteHeader(rec.Code)
		w.Write(rec.Body.Bytes())
	})
	r := forwardTo(t, t.TempDir(), h, nil)
	evs := r.put(t, 5)
	r.drained(t)
	unique, total := c.count()
	if unique != len(evs) || total <= unique {
		t.Fatalf("unique %d total %d: want %d unique and a resend (at-least-once)", unique, total, len(evs))
	}
}

// A batch the central node refuses (400) is split until the bad event is
// alone; it goes to the dead-letter queue and the others are delivered.
// Events listed as rejected in a 200 answer are dead-lettered too.
func TestForwardIsolatesRefusedEvents(t *testing.T) {
	c := newCentral()
	var poison, rejected atomic.Value
	poison.Store(store.EventID{})
	rejected.Store(store.EventID{})
	c.answer = func(n int, b *forward.Batch) (int, []forward.Rejection) {
		var rj []forward.Rejection
		for i, ev := range b.Events {
			if ev.ID == poison.Load().(store.EventID) {
				return http.StatusBadRequest, nil
			}
			if ev.ID == rejected.Load().(store.EventID) {
				rj = append(rj, forward.Rejection{Index: i, ID: ev.ID.String(), Error: "bad"})
			}
		}
		return http.StatusOK, rj
	}
	// Spool first, forward after: the first batch holds them all.
	dir := t.TempDir()
	evs := spoolBacklog(t, dir, 40)
	poison.Store(evs[17].ID)
	rejected.Store(evs[30].ID)
	r := forwardTo(t, dir, c, nil)
	r.drained(t)
	for i, ev := range evs {
		if got, want := c.has(ev.ID), i != 17 && i != 30; got != want {
			t.Errorf("event %d delivered = %v, want %v", i, got, want)
		}
	}
	if c.requests < 5 {
		t.Errorf("%d requests: the refused batch was not split", c.requests)
	}
	dead, err := r.sp.DeadLetters(0)
	if err != nil || len(dead) != 2 || r.sp.Dead() != 2 {
		t.Fatalf("dead letters %d (%v), count %d, want 2", len(dead), err, r.sp.Dead())
	}
	if got := testenv.MetricValue(t, r.reg, "blowback_forward_dead_lettered_events_total"); got != 2 {
		t.Errorf("dead-lettered = %v", got)
	}
}

func TestForwardWrongTokenKeepsEvidence(t *testing.T) {
	c := newCentral()
	r := forwardTo(t, t.TempDir(), c, func(c *forward.Config) { c.Token = "wrong-token-0123456789" })
	r.put(t, 3)
	testenv.Eventually(t, "unauthorized failures", func() bool {
		return testenv.MetricValue(t, r.reg, "blowback_forward_failed_batches_total", "reason", "unauthorized") >= 2
	})
	if r.fw.Backlog() != 3 {
		t.Fatalf("backlog %d, want 3 kept", r.fw.Backlog())
	}
	if u, _ := c.count(); u != 0 {
		t.Fatalf("central took %d events with a wrong token", u)
	}
}

// The forward link over TLS: the central node's certificate is checked
// against the configured CA, and the trap presents a client certificate.
func TestForwardTLS(t *testing.T) {
	pki := forwardtest.NewPKI(t, t.TempDir())
	c := newCentral()
	srv := httptest.NewUnstartedServer(c)
	cert, err := tls.LoadX509KeyPair(pki.ServerCert, pki.ServerKey)
	if err != nil {
		t.Fatal(err)
	}
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pki.Pool()}
	srv.StartTLS()
	defer srv.Close()
	url := strings.Replace(srv.URL, "https://127.0.0.1", "https://localhost", 1)

	for _, tc := range []struct {
		name         string
		ca, crt, key string
		ok           bool
	}{
		{"ca and client cert", pki.CAFile, pki.ClientCert, pki.ClientKey, true},
		{"no client cert", pki.CAFile, "", "", false},
		{"system roots", "", pki.ClientCert, pki.ClientKey, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tcfg, err := forward.TLSConfig(tc.ca, tc.crt, tc.key, "")
			if err != nil {
				t.Fatal(err)
			}
			r := start(t, t.TempDir(), url, func(c *forward.Config) { c.TLS = tcfg })
			evs := r.put(t, 3)
			if tc.ok {
				r.drained(t)
				for _, ev := range evs {
					if !c.has(ev.ID) {
						t.Fatalf("event %s not delivered", ev.ID)
					}
				}
				return
			}
			testenv.Eventually(t, "failed handshakes", func() bool {
				return testenv.MetricValue(t, r.reg, "blowback_forward_failed_batches_total", "reason", "network") >= 2
			})
			if r.fw.Backlog() != 3 {
				t.Fatalf("backlog %d, want 3", r.fw.Backlog())
			}
		})
	}
	if _, err := forward.TLSConfig(pki.CAFile, pki.ClientCert, "", ""); err == nil {
		t.Error("certificate without key accepted")
	}
	if _, err := forward.TLSConfig(pki.ServerKey, "", "", ""); err == nil {
		t.Error("CA file without certificates accepted")
	}
}

// spoolBacklog leaves n events in a spool in dir, as a stopped trap does,
// and returns them.
func spoolBacklog(t *testing.T, dir string, n int) []*store.Event {
	t.Helper()
	sp, err := forward.OpenSpool(dir, forward.SpoolOptions{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	var evs []*store.Event
	for i := range n {
		evs = append(evs, event(i))
		if err := sp.Put(context.Background(), evs[i], nil); err != nil {
			t.Fatal(err)
		}
	}
	return evs
}

// A spool left with a backlog by a stopped trap is sent at the next start.
func TestForwardBacklogSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	evs := spoolBacklog(t, dir, 7)
	c := newCentral()
	r := forwardTo(t, dir, c, nil)
	r.drained(t)
	for _, ev := range evs {
		if !c.has(ev.ID) {
			t.Fatalf("event %s lost across the restart", ev.ID)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	sp, err := forward.OpenSpool("", forward.SpoolOptions{InMemory: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	for _, tc := range []struct{ url, token string }{
		{"", token},
		{"ftp://central", token},
		{"http://", token},
		{"http://central:8080", ""},
		{"http://central:8080", "two words"},
	} {
		if _, err := forward.New(forward.Config{URL: tc.url, Token: tc.token}, sp, nil, nil); err == nil {
			t.Errorf("New(%q, %q) accepted", tc.url, tc.token)
		}
	}
	for in, want := range map[string]string{
		"http://c:1":                      "http://c:1/api/v1/evidence",
		"https://c/":                      "https://c/api/v1/evidence",
		"https://c/blowback/evidence":     "https://c/blowback/evidence",
		" https://c:8443/api/v1/evidence": "https://c:8443/api/v1/evidence",
	} {
		u, err := forward.EvidenceURL(in)
		if err != nil || u.String() != want {
			t.Errorf("EvidenceURL(%q) = %v, %v; want %s", in, u, err, want)
		}
	}
}

// The body is what the central node's decoder reads (forward.Batch).
func TestWireFormatRoundTrip(t *testing.T) {
	var got bytes.Buffer
	central := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(&got, r.Body)
		json.NewEncoder(w).Encode(forward.Result{Accepted: 1})
	})
	r := forwardTo(t, t.TempDir(), central, func(c *forward.Config) { c.NoGzip = true })
	ev := event(1)
	ev.DSN = &store.DSN{Status: "5.1.1", Action: "failed"}
	ev.Signals = []string{"dsn"}
	if err := r.fw.Ingest(context.Background(), ev, []byte("From: x\r\n\r\nbody")); err != nil {
		t.Fatal(err)
	}
	r.drained(t)
	var b forward.Batch
	if err := json.Unmarshal(got.Bytes(), &b); err != nil {
		t.Fatal(err)
	}
	if b.Node != "trap-test" || len(b.Events) != 1 || b.Events[0].ID != ev.ID || b.Events[0].DSN.Status != "5.1.1" ||
		string(b.Raw[ev.ID.String()]) != "From: x\r\n\r\nbody" {
		t.Fatalf("batch = %+v", b)
	}
}
