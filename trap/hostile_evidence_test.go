package trap

import (
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/blowback-dnsbl/blowback/classify"
	"github.com/blowback-dnsbl/blowback/internal/testenv"
	"github.com/blowback-dnsbl/blowback/store"
)

// TestCalloutFloodOneEvent (issue 13, item 2): a client pipelining
// MAIL/RCPT/RSET writes one callout event per connection, not one per
// transaction; the rest are counted in limit_hits{callouts}.
//
// Before: every transaction was an event (~56k in 30 s from one source).
func TestCalloutFloodOneEvent(t *testing.T) {
	sink := &FakeSink{}
	s := startTrap(t, Config{MaxCommands: 10000}, sink)
	cl := dial(t, s)
	cl.want("EHLO probe.example.net", "250")
	const n = 500
	cl.send(strings.Repeat("MAIL FROM:<>\r\nRCPT TO:<a@trap.blowback.test>\r\nRSET\r\n", n) + "QUIT\r\n")
	if last := cl.drain(); !strings.HasPrefix(last, "221") {
		t.Fatalf("pipelined probes: last reply %q", last)
	}
	waitIdle(t, s)
	evs := sink.Snapshot()
	if len(evs) != 1 || evs[0].Kind != store.KindCallout {
		t.Fatalf("%d events after %d pipelined probes, want one callout", len(evs), n)
	}
	if got := limitHits(s, limitCallouts); got != n-1 {
		t.Errorf("limit_hits{callouts} = %v, want %d", got, n-1)
	}
	// A new connection records its own.
	cl = dial(t, s)
	cl.want("EHLO probe.example.net", "250")
	cl.want("MAIL FROM:<>", "250")
	cl.want("RCPT TO:<b@trap.blowback.test>", "250")
	cl.want("QUIT", "221")
	waitEvents(t, sink, 2)
}

// TestClassifierPanicCounted: a panic the classifier recovers (stored as
// "other" with the signal classifier-panic) is counted as a panic with
// source="classify", logged, and the message is kept in the quarantine
// directory; the sender still gets 250 and the evidence is stored.
//
// Before: it was stored as a plain "other" event, silently.
func TestClassifierPanicCounted(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "quarantine")
	sink := &FakeSink{}
	var logs testenv.Output
	s := New(Config{Domains: []string{testDomain}, QuarantineDir: dir, QuarantineMax: 2}, sink,
		slog.New(slog.NewTextHandler(&logs, nil)), prometheus.NewRegistry())
	s.classify = func([]byte, classify.Envelope) classify.Result {
		return classify.Result{Kind: store.KindOther, SubKind: "error", Signals: []string{"classifier-panic"}, Recovered: true}
	}
	if err := s.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Stop(t.Context()) })
	cl := dial(t, s)
	cl.want("EHLO mx.example.net", "250")
	for i := range 3 {
		if got := cl.message("", "x@trap.blowback.test", testDSN); !strings.HasPrefix(got, "250") {
			t.Fatalf("message %d: %q", i, got)
		}
	}
	evs := waitEvents(t, sink, 3)
	if !slices.Contains(evs[0].Signals, "classifier-panic") {
		t.Errorf("signals %q", evs[0].Signals)
	}
	if n := panics(s, panicClassify); n != 3 {
		t.Errorf("panics{classify} = %v, want 3", n)
	}
	if !strings.Contains(logs.String(), "classifier panic recovered") {
		t.Errorf("no log line:\n%s", logs.String())
	}
	// Kept for a look, at most QuarantineMax of them.
	b, err := os.ReadFile(filepath.Join(dir, evs[0].ID.String()+".eml"))
	if err != nil || string(b) != testDSN {
		t.Fatalf("quarantined message: %q, %v", b, err)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 2 {
		t.Errorf("%d quarantined files, want QuarantineMax=2", len(ents))
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("quarantine dir mode: %v %v", fi.Mode(), err)
	}
}
