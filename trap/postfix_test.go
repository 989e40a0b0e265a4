package trap

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/blowback-dnsbl/blowback/internal/testenv"
	"github.com/blowback-dnsbl/blowback/store"
)

// Real MTAs make the backscatter: a throwaway Postfix instance (its own
// config, queue and data directories in a temp dir, loopback only, its
// smtpd on a free port) routes the trap domain to the trap and generates a
// real bounce, a real delay notice and a real sender-verification probe.
// The Postfix master must run as root; CI runs as root.

// postfix is one throwaway Postfix instance (testenv.Postfix) and the
// port of its smtpd.
type postfix struct {
	*testenv.Postfix
	t    *testing.T
	port int // smtpd
}

// startPostfix runs Postfix with the trap domain routed to trapAddr, the
// local domain pf.test (every local part accepted by smtpd, unknown ones
// bounced by local(8)), STARTTLS opportunistic, and main.cf lines extra.
func startPostfix(t *testing.T, trapAddr string, transports []string, extra ...string) *postfix {
	t.Helper()
	p := &postfix{Postfix: testenv.NewPostfix(t), t: t, port: testenv.FreePort(t)}
	host, port, _ := net.SplitHostPort(trapAddr)
	transports = append([]string{fmt.Sprintf("%s=smtp:[%s]:%s", testDomain, host, port)}, transports...)
	main := []string{
		"meta_directory = /etc/postfix",
		"setgid_group = postdrop",
		"syslog_name = postfix-blowback-test",
		"myhostname = pf.test",
		"mydomain = pf.test",
		"myorigin = pf.test",
		"mydestination = pf.test",
		"inet_interfaces = 127.0.0.1",
		"inet_protocols = ipv4",
		"mynetworks = 127.0.0.0/8",
		"relayhost =",
		"transport_maps = inline:{ " + strings.Join(wrapInline(transports), ", ") + " }",
		"alias_maps =",
		"alias_database =",
		"local_recipient_maps =",
		"biff = no",
		"smtputf8_enable = no",
		"smtp_tls_security_level = may",
		"smtp_connection_cache_on_demand = no",
		"queue_run_delay = 1s",
		"minimal_backoff_time = 1s",
		"maximal_backoff_time = 2s",
	}
	p.Configure(t, append(main, extra...), fmt.Sprintf("%s inet n - n - - smtpd\n", p.smtpd()))
	p.Start(t, p.smtpd()) // ready when smtpd greets
	return p
}

// wrapInline braces inline: map entries that hold spaces.
func wrapInline(kv []string) []string {
	out := make([]string, len(kv))
	for i, e := range kv {
		if strings.ContainsAny(e, " \t,") {
			e = "{" + e + "}"
		}
		out[i] = e
	}
	return out
}

func (p *postfix) smtpd() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(p.port)) }

// submit sends one message to Postfix's smtpd and returns the RCPT error
// (nil when accepted and queued).
func (p *postfix) submit(from, to, msg string) error {
	c, err := smtp.Dial(p.smtpd())
	if err != nil {
		return err
	}
	return testenv.Deliver(c, "client.example.org", from, to, msg)
}

// waitKind waits (at most 60s) for an event of kind in sink; it fails with
// the Postfix log when none comes.
func (p *postfix) waitKind(sink *FakeSink, kind store.Kind) *store.Event {
	p.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		for _, ev := range sink.Snapshot() {
			if ev.Kind == kind {
				return ev
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	var got []string
	for _, ev := range sink.Snapshot() {
		got = append(got, ev.Kind.String()+"/"+ev.SubKind)
	}
	p.t.Fatalf("no %v event from Postfix in 60s (got %v)\n%s", kind, got, p.Log())
	return nil
}

func spam(from, to, id string) string {
	return "From: " + from + "\r\nTo: " + to + "\r\nSubject: cheap pills\r\nMessage-ID: <" + id + ">\r\n" +
		"Date: Mon, 1 Jan 2024 00:00:00 +0000\r\n\r\nbuy now\r\n"
}

// The trap every Postfix test talks to: STARTTLS on (Postfix uses it
// opportunistically), limits at their defaults.
func postfixTrap(t *testing.T) (*Server, *FakeSink) {
	t.Helper()
	sink := &FakeSink{}
	return startTrap(t, Config{TLS: selfSignedConfig(t)}, sink), sink
}

func checkPostfixEnvelope(t *testing.T, ev *store.Event, mailFrom, rcpt string) {
	t.Helper()
	if ev.ClientIP.String() != "127.0.0.1" || ev.HELO != "pf.test" || ev.MailFrom != mailFrom ||
		!slices.Equal(ev.Rcpts, []string{rcpt}) || ev.TrapDomain != testDomain || !ev.TLS {
		t.Errorf("envelope: ip=%v helo=%q from=%q rcpts=%q domain=%q tls=%v", ev.ClientIP, ev.HELO, ev.MailFrom,
			ev.Rcpts, ev.TrapDomain, ev.TLS)
	}
}

// (1) Mail to an unknown local user with a forged sender at the trap domain:
// Postfix accepts it, local(8) bounces it, the bounce goes to the trap.
func TestPostfixBounce(t *testing.T) {
	s, sink := postfixTrap(t)
	p := startPostfix(t, s.Addr().String(), nil)
	forged := "victim@" + testDomain
	if err := p.submit(forged, "nosuchuser@pf.test", spam(forged, "nosuchuser@pf.test", "spam-1@spam.example")); err != nil {
		t.Fatalf("submit: %v\n%s", err, p.Log())
	}
	ev := p.waitKind(sink, store.KindBounce)
	checkPostfixEnvelope(t, ev, "", forged)
	if ev.DSN == nil {
		t.Fatalf("no DSN fields recorded: %+v", ev)
	}
	t.Logf("bounce: sub=%q signals=%q dsn=%+v original=%+v", ev.SubKind, ev.Signals, ev.DSN, ev.Original)
	if ev.Original.MessageID != "<spam-1@spam.example>" {
		t.Errorf("original Message-ID %q", ev.Original.MessageID)
	}
	noPanics(t, s)
}

// (2) A delay notice: the next hop refuses connections (a free port nobody
// listens on), the mail is deferred, delay_warning_time passes.
func TestPostfixDelayNotice(t *testing.T) {
	s, sink := postfixTrap(t)
	p := startPostfix(t, s.Addr().String(), []string{fmt.Sprintf("slow.example=smtp:[127.0.0.1]:%d", testenv.FreePort(t))},
		"delay_warning_time = 1s", "relay_domains = slow.example")
	forged := "victim@" + testDomain
	if err := p.submit(forged, "someone@slow.example", spam(forged, "someone@slow.example", "spam-2@spam.example")); err != nil {
		t.Fatalf("submit: %v\n%s", err, p.Log())
	}
	ev := p.waitKind(sink, store.KindBounce)
	checkPostfixEnvelope(t, ev, "", forged)
	t.Logf("delay notice: sub=%q signals=%q dsn=%+v", ev.SubKind, ev.Signals, ev.DSN)
	if ev.SubKind != "delayed" {
		t.Errorf("sub-kind %q, want delayed", ev.SubKind)
	}
	if ev.DSN == nil || ev.DSN.Action != "delayed" {
		t.Errorf("DSN %+v", ev.DSN)
	}
	noPanics(t, s)
}

// (3) reject_unverified_sender: Postfix probes the forged sender at the trap
// (MAIL FROM:<double-bounce@pf.test>, RCPT, QUIT): a callout.
func TestPostfixSenderVerification(t *testing.T) {
	s, sink := postfixTrap(t)
	p := startPostfix(t, s.Addr().String(), nil,
		"smtpd_sender_restrictions = reject_unverified_sender",
		"address_verify_map =", // in-memory cache: every run probes
		"address_verify_poll_count = 10", "address_verify_poll_delay = 1s")
	forged := "probe-me@" + testDomain
	err := p.submit(forged, "user@pf.test", spam(forged, "user@pf.test", "spam-3@spam.example"))
	var se *smtp.SMTPError
	if err != nil && !(errors.As(err, &se) && se.Code == 450) {
		t.Fatalf("submit: %v\n%s", err, p.Log())
	}
	t.Logf("Postfix answered the forged sender: %v", err)
	ev := p.waitKind(sink, store.KindCallout)
	checkPostfixEnvelope(t, ev, "double-bounce@pf.test", forged)
	if !slices.Contains(ev.Signals, "callout-sender:double-bounce") {
		t.Errorf("signals %q", ev.Signals)
	}
	noPanics(t, s)
}

// (4) A real vacation responder: Debian's vacation(1) answers a message
// (as Postfix local(8) would hand it to a "| vacation" pipe, with From_ line
// and Return-Path) and sends its reply through the Postfix instance, which
// delivers it to the trap. vacation runs as root here: as a pipe it would run
// as the user, and Postfix's postdrop refuses a non-default config dir to
// non-root users unless /etc/postfix/main.cf lists it.
func TestPostfixVacation(t *testing.T) {
	vac := testenv.Tool(t, "vacation")
	s, sink := postfixTrap(t)
	p := startPostfix(t, s.Addr().String(), nil)
	forged := "victim@" + testDomain
	db, msgFile := filepath.Join(p.Dir, "vacation.db"), filepath.Join(p.Dir, "vacation.msg")
	if err := os.WriteFile(msgFile, []byte("From: Holiday User <root@pf.test>\nSubject: away from my mail\n\n"+
		"I am away until Monday and will read your mail when I return.\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	in := "From " + forged + "  Mon Jan  1 00:00:00 2024\n" +
		"Return-Path: <" + forged + ">\nDelivered-To: root@pf.test\n" +
		strings.ReplaceAll(spam(forged, "root@pf.test", "spam-4@spam.example"), "\r\n", "\n")
	env := append(os.Environ(), "MAIL_CONFIG="+p.Etc)
	for _, args := range [][]string{{"-i", "-f", db}, {"-f", db, "-m", msgFile, "-j", "root"}} {
		cmd := exec.Command(vac, args...)
		cmd.Env = env
		if args[0] != "-i" {
			cmd.Stdin = strings.NewReader(in)
		}
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			t.Fatalf("vacation %v: %v\n%s", args, err, out.String())
		}
	}
	ev := p.waitKind(sink, store.KindAutoreply)
	t.Logf("vacation reply: from=%q sub=%q signals=%q subject=%q\n%s", ev.MailFrom, ev.SubKind, ev.Signals, ev.Subject, sink.Raw[0])
	if ev.ClientIP.String() != "127.0.0.1" || ev.HELO != "pf.test" || !slices.Equal(ev.Rcpts, []string{forged}) || !ev.TLS {
		t.Errorf("envelope %+v", ev)
	}
	noPanics(t, s)
}
