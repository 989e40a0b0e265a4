package trap

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/blowback-dnsbl/blowback/internal/metric"
	"github.com/blowback-dnsbl/blowback/store"
)

func TestDeliveryRecordsEnvelope(t *testing.T) {
	sink := &FakeSink{}
	s := startTrap(t, Config{Node: "n1"}, sink)
	cl := dial(t, s)
	if !strings.HasPrefix(cl.gr, "220 blowback-trap ESMTP") {
		t.Fatalf("greeting %q", cl.gr)
	}
	cl.want("EHLO mx.example.net", "250")
	cl.want("MAIL FROM:<>", "250")
	cl.want("RCPT TO:<a@trap.blowback.test>", "250")
	cl.want("RCPT TO:<b@TRAP.Blowback.Test.>", "250")
	cl.want("DATA", "354")
	cl.send(testDSN + ".\r\n")
	if got := cl.reply(); !strings.HasPrefix(got, "250 2.0.0") {
		t.Fatalf("after DATA: %q", got)
	}
	cl.want("QUIT", "221")
	waitIdle(t, s)
	evs := sink.Snapshot()
	if len(evs) != 1 {
		t.Fatalf("want 1 event, got %d", len(evs))
	}
	ev := evs[0]
	want := store.Event{ClientIP: netip.MustParseAddr("127.0.0.1"), HELO: "mx.example.net", MailFrom: "", Node: "n1",
		TrapDomain: testDomain, Size: int64(len(testDSN))}
	if ev.ClientIP != want.ClientIP || ev.HELO != want.HELO || ev.MailFrom != want.MailFrom || ev.Node != want.Node ||
		ev.TrapDomain != want.TrapDomain || ev.TLS || ev.Size != want.Size {
		t.Errorf("event %+v", ev)
	}
	if !slices.Equal(ev.Rcpts, []string{"a@trap.blowback.test", "b@TRAP.Blowback.Test."}) {
		t.Errorf("rcpts %q", ev.Rcpts)
	}
	if ev.Kind != store.KindBounce {
		t.Errorf("kind %v", ev.Kind)
	}
	if string(sink.Raw[0]) != testDSN {
		t.Errorf("raw message not passed to the sink intact (%d bytes)", len(sink.Raw[0]))
	}
	if err := ev.Validate(); err != nil {
		t.Error(err)
	}
	noPanics(t, s)
}

// No relay, ever: only addresses at a trap domain are accepted, whatever
// their form (issue 9: an open-relay test with many address forms).
func TestNoRelay(t *testing.T) {
	sink := &FakeSink{}
	s := startTrap(t, Config{MaxErrors: 100}, sink)
	cl := dial(t, s)
	cl.want("EHLO relay.test", "250")
	cl.want("MAIL FROM:<spammer@example.com>", "250")
	for _, c := range []struct{ rcpt, reply string }{
		{"<victim@example.com>", "550 5.7.1"},
		{"<victim@example.com@trap.blowback.test>", "550 5.7.1"},
		{"<@trap.blowback.test:victim@example.com>", "550 5.7.1"}, // RFC 5321 §4.1.1.3 source route
		{"<victim@[127.0.0.1]>", "550 5.7.1"},
		{"<victim@trap.blowback.test.example.com>", "550 5.7.1"},
		{"<victim@sub.trap.blowback.test>", "550 5.7.1"},
		{"<victim@xtrap.blowback.test>", "550 5.7.1"},
		{"<victim>", "5"},
		{"<postmaster>", "5"},
		{"<\"victim@example.com\">", "5"},
		{"<victim@example.com%trap.blowback.test>", "550 5.7.1"},
		// go-smtp unquotes local parts, so this reads as x@y@trap: refused.
		{"<\"victim@example.com\"@trap.blowback.test>", "550 5.7.1"},
		{"victim@example.com", "5"},
		{"<victim@example.com> NOTIFY=NEVER", "5"},
		// Addresses at the trap domain are accepted; nothing is ever sent on.
		{"<victim%example.com@trap.blowback.test>", "250"},
		{"<example.com!victim@trap.blowback.test>", "250"},
		{"<\"victim\"@trap.blowback.test>", "250"},
		{"<\"quoted victim\"@trap.blowback.test>", "501 5.1.3"},
		{"<@relay.example:x@trap.blowback.test>", "250"},
		{"<X@Trap.Blowback.Test>", "250"},
	} {
		if got := cl.cmd("RCPT TO:" + c.rcpt); !strings.HasPrefix(got, c.reply) {
			t.Errorf("RCPT TO:%s: got %q, want %q", c.rcpt, got, c.reply)
		}
	}
	cl.want("DATA", "354")
	cl.send("Subject: x\r\n\r\nx\r\n.\r\n")
	cl.reply()
	cl.want("QUIT", "221")
	waitIdle(t, s)
	for _, ev := range sink.Snapshot() {
		for _, r := range ev.Rcpts {
			if _, ok := s.trapDomain(r); !ok {
				t.Errorf("non-trap recipient %q recorded", r)
			}
		}
	}
	if n := value(s.metrics.relayDenied); n < 7 {
		t.Errorf("relay_denied %v", n)
	}
}

func TestSplitAddress(t *testing.T) {
	for _, c := range []struct{ in, local, domain string }{
		{"a@b", "a", "b"},
		{`"a@x"@b`, `"a@x"`, "b"},
		{`"a\"@x"@b`, `"a\"@x"`, "b"},
		{"a@b@c", "", ""},
		{"a", "", ""},
		{"@b", "", ""},
		{"a@", "", ""},
		{`"unterminated@b`, "", ""},
	} {
		l, d, ok := splitAddress(c.in)
		if ok != (c.local != "") || l != c.local || d != c.domain {
			t.Errorf("splitAddress(%q) = %q, %q, %v; want %q, %q", c.in, l, d, ok, c.local, c.domain)
		}
	}
}

// Reply after DATA is configurable; evidence is recorded either way.
func TestRejectAfterData(t *testing.T) {
	for _, reject := range []bool{false, true} {
		sink := &FakeSink{}
		s := startTrap(t, Config{RejectAfterData: reject}, sink)
		cl := dial(t, s)
		cl.want("EHLO mx.example.net", "250")
		got := cl.message("", "x@trap.blowback.test", testDSN)
		want := map[bool]string{false: "250 2.0.0", true: "550 5.7.1"}[reject]
		if !strings.HasPrefix(got, want) {
			t.Errorf("reject=%v: %q, want %q", reject, got, want)
		}
		waitEvents(t, sink, 1)
	}
}

// A sink that fails gets 451 (the sender retries); nothing is acknowledged
// that is not durable.
func TestSinkErrorIs451(t *testing.T) {
	sink := &FakeSink{Err: errors.New("disk full")}
	s := startTrap(t, Config{}, sink)
	cl := dial(t, s)
	cl.want("EHLO mx.example.net", "250")
	if got := cl.message("", "x@trap.blowback.test", testDSN); !strings.HasPrefix(got, "451 4.3.0") {
		t.Fatalf("got %q", got)
	}
	if n := value(s.metrics.messages.WithLabelValues("error")); n != 1 {
		t.Errorf("messages{error} = %v", n)
	}
}

// A full store answers 452 4.3.1: the sender keeps the message and retries.
func TestDiskFullIs452(t *testing.T) {
	sink := &FakeSink{Err: fmt.Errorf("listing: ingest: %w", store.ErrDiskFull)}
	s := startTrap(t, Config{}, sink)
	cl := dial(t, s)
	cl.want("EHLO mx.example.net", "250")
	if got := cl.message("", "x@trap.blowback.test", testDSN); !strings.HasPrefix(got, "452 4.3.1") {
		t.Fatalf("got %q", got)
	}
	sink.mu.Lock()
	sink.Err = nil // space is back
	sink.mu.Unlock()
	if got := cl.message("", "x@trap.blowback.test", testDSN); !strings.HasPrefix(got, "250") {
		t.Fatalf("after recovery: %q", got)
	}
	noPanics(t, s)
}

type panicSink struct{}

func (panicSink) Ingest(context.Context, *store.Event, []byte) error { panic("sink exploded") }

// A panic in a session is recovered, answered 451 and counted, and the
// server keeps serving.
func TestPanicRecovered(t *testing.T) {
	s := startTrap(t, Config{}, panicSink{})
	cl := dial(t, s)
	cl.want("EHLO mx.example.net", "250")
	if got := cl.message("", "x@trap.blowback.test", testDSN); !strings.HasPrefix(got, "451 4.3.0") {
		t.Fatalf("DATA with a panicking sink: %q", got)
	}
	if n := panics(s, "trap"); n != 1 {
		t.Fatalf("panics = %v after DATA, want 1", n)
	}
	// A callout commits at QUIT: that panic is recovered too.
	cl.want("MAIL FROM:<>", "250")
	cl.want("RCPT TO:<x@trap.blowback.test>", "250")
	cl.want("QUIT", "221")
	waitIdle(t, s)
	if n := panics(s, "trap"); n != 2 {
		t.Fatalf("panics = %v after callout, want 2", n)
	}
	cl2 := dial(t, s)
	cl2.want("EHLO again.example.net", "250")
}

// go-smtp's own recovery (421 and close) is counted as well.
func TestGoSMTPPanicCounted(t *testing.T) {
	s := startTrap(t, Config{}, nil)
	smtpLog{s}.Printf("panic serving %v: %v\n%s", "127.0.0.1:1", "boom", "stack")
	if n := panics(s, "go-smtp"); n != 1 {
		t.Fatalf("panics = %v", n)
	}
}

func TestCallouts(t *testing.T) {
	type tc struct {
		name    string
		script  []string // commands; "DROP" closes the connection
		events  int      // callout events expected
		signals []string // of the first
		sub     string
	}
	for _, c := range []tc{
		{"null sender then QUIT", []string{"MAIL FROM:<>", "RCPT TO:<a@trap.blowback.test>", "QUIT"}, 1,
			[]string{"no-data:quit", "callout-sender:null"}, "rcpt-without-data"},
		{"postfix double-bounce then RSET RSET QUIT", []string{"MAIL FROM:<double-bounce@mx.example.net>",
			"RCPT TO:<a@trap.blowback.test>", "RSET", "RSET", "QUIT"}, 1, []string{"no-data:rset", "callout-sender:double-bounce"}, ""},
		{"postmaster then drop", []string{"MAIL FROM:<postmaster@mx.example.net>", "RCPT TO:<a@trap.blowback.test>", "DROP"}, 1,
			[]string{"no-data:drop", "callout-sender:postmaster"}, ""},
		{"exim random local part first", []string{"MAIL FROM:<user@mx.example.net>",
			"RCPT TO:<mx.example.net-1712345678-testing@trap.blowback.test>", "RCPT TO:<a@trap.blowback.test>", "QUIT"}, 1,
			[]string{"no-data:quit", "random-local-part"}, "random-local-part"},
		{"two probes in one session: one event", []string{"MAIL FROM:<>", "RCPT TO:<a@trap.blowback.test>", "RSET",
			"MAIL FROM:<>", "RCPT TO:<b@trap.blowback.test>", "QUIT"}, 1, []string{"no-data:rset"}, ""},
		{"new MAIL ends the transaction", []string{"MAIL FROM:<>", "RCPT TO:<a@trap.blowback.test>",
			"MAIL FROM:<>", "QUIT"}, 1, []string{"no-data:mail"}, ""},
		{"normal sender gives up: not a callout", []string{"MAIL FROM:<user@mx.example.net>", "RCPT TO:<a@trap.blowback.test>", "QUIT"}, 0, nil, ""},
		{"no trap recipient", []string{"MAIL FROM:<>", "RCPT TO:<a@example.com>", "QUIT"}, 0, nil, ""},
		{"MAIL only", []string{"MAIL FROM:<>", "QUIT"}, 0, nil, ""},
		{"DATA refused for size: not a callout", []string{"MAIL FROM:<>", "RCPT TO:<a@trap.blowback.test>", "DATA", "BIG", "QUIT"}, 0, nil, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			sink := &FakeSink{}
			s := startTrap(t, Config{MaxMessageBytes: 100, KeepBytes: 100}, sink)
			cl := dial(t, s)
			cl.want("EHLO mx.example.net", "250")
			for _, cmd := range c.script {
				switch cmd {
				case "DROP":
					cl.c.Close()
				case "BIG":
					cl.send(strings.Repeat("x", 200) + "\r\n.\r\n")
					if got := cl.reply(); !strings.HasPrefix(got, "552 5.3.4") {
						t.Fatalf("oversize DATA: %q", got)
					}
				default:
					cl.cmd(cmd)
				}
			}
			waitIdle(t, s)
			evs := sink.Snapshot()
			if len(evs) != c.events {
				t.Fatalf("%d events, want %d: %+v", len(evs), c.events, evs)
			}
			if c.events == 0 {
				return
			}
			ev := evs[0]
			if ev.Kind != store.KindCallout || len(ev.Rcpts) == 0 || ev.TrapDomain != testDomain || ev.HELO != "mx.example.net" {
				t.Errorf("event %+v", ev)
			}
			for _, sig := range c.signals {
				if !slices.Contains(ev.Signals, sig) {
					t.Errorf("signals %q lack %q", ev.Signals, sig)
				}
			}
			if c.sub != "" && ev.SubKind != c.sub {
				t.Errorf("sub-kind %q, want %q", ev.SubKind, c.sub)
			}
			noPanics(t, s)
		})
	}
}

// A callout that times out is recorded when the idle timeout closes it.
func TestCalloutTimeout(t *testing.T) {
	sink := &FakeSink{}
	s := startTrap(t, Config{ReadTimeout: 200 * time.Millisecond}, sink)
	cl := dial(t, s)
	// Pipelined, so that no step before the idle wait depends on the test
	// answering within the 200ms read timeout on a loaded machine.
	cl.send("EHLO mx.example.net\r\nMAIL FROM:<>\r\nRCPT TO:<a@trap.blowback.test>\r\n")
	for _, want := range []string{"250", "250", "250"} {
		if got := cl.reply(); !strings.HasPrefix(got, want) {
			t.Fatalf("pipelined EHLO, MAIL, RCPT: got %q, want %s", got, want)
		}
	}
	if got := cl.reply(); !strings.HasPrefix(got, "421 4.4.2") {
		t.Fatalf("idle: %q", got)
	}
	evs := waitEvents(t, sink, 1)
	if !slices.Contains(evs[0].Signals, "no-data:timeout") {
		t.Errorf("signals %q", evs[0].Signals)
	}
}

func TestCalloutSender(t *testing.T) {
	for _, c := range []struct {
		from string
		want bool
	}{
		{"", true}, {"postmaster@x.example", true}, {"double-bounce@mx.example", true},
		{"MAILER-DAEMON@x", true}, {"user@x.example", false}, {"bounces+123@x.example", false},
	} {
		if got := CalloutSender(c.from); got != c.want {
			t.Errorf("CalloutSender(%q) = %v", c.from, got)
		}
	}
	for _, c := range []struct {
		local string
		want  bool
	}{
		{"mx.example.net-1712345678-testing", true}, {"host-123456789-testing", true},
		{"user-testing", false}, {"host-12-testing", false}, {"host-1712345678-test", false}, {"-1712345678-testing", false},
	} {
		if got := eximRandom(c.local); got != c.want {
			t.Errorf("eximRandom(%q) = %v", c.local, got)
		}
	}
}

// The trap's metrics follow the Prometheus naming rules.
func TestMetricsLint(t *testing.T) {
	reg := prometheus.NewRegistry()
	New(Config{Domains: []string{testDomain}}, &FakeSink{}, nil, reg)
	if err := metric.Lint(reg); err != nil {
		t.Error(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if !strings.HasPrefix(mf.GetName(), "blowback_trap_") {
			t.Errorf("metric %s outside blowback_trap_", mf.GetName())
		}
	}
}
