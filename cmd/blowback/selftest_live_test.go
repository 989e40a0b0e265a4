package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/miekg/dns"

	"github.com/blowback-dnsbl/blowback/internal/testenv"
	"github.com/blowback-dnsbl/blowback/store"
	"github.com/blowback-dnsbl/blowback/web"
)

// TestSelfTestPostfix runs the operator story end to end with a real
// Postfix on loopback: it backscatters into the trap (accepting mail for
// unknown local users, then bouncing it), which lists its address; the
// lookup names Postfix and its fix; a self-test against its domain (MX
// served by a local authoritative DNS server) fails with the bounce as
// evidence; the fixed Postfix (unknown recipients rejected at RCPT)
// passes, and the pass delists the address at once.
func TestSelfTestPostfix(t *testing.T) {
	const listed = "127.0.0.20" // Postfix's outgoing address: the backscatter source
	pf := newLivePostfix(t)
	n, base := selfTestNode(t, listed, "pf.test", pf.port)
	defer n.Stop()

	// 1. Misconfigured: Postfix accepts mail for anyone at pf.test and
	// bounces the unknown ones to the (forged) sender at the trap.
	pf.start(t, n.trap.Addr().String(), "local_recipient_maps =")
	if err := pf.submit("victim@trap.blowback.test", "no-such-user@pf.test"); err != nil {
		t.Fatalf("misconfigured Postfix refused the message: %v", err)
	}
	waitMTA(t, pf.Log, time.Minute, "the bounce lists "+listed, func() bool { return check(t, n.dns.Addr().String(), listed).Listed })
	var l web.Lookup
	getJSON(t, base+"/api/v1/lookup/"+listed, &l)
	if len(l.Advice) == 0 || l.Advice[0].MTA != "postfix" || !l.Advice[0].Known || l.Advice[0].Guessed || l.Advice[0].Kind != "bounce" {
		t.Fatalf("advice for the real Postfix bounce: %+v", l.Advice)
	}
	page := getBody(t, base+"/lookup?ip="+listed)
	for _, s := range []string{"Sent by <strong>Postfix</strong>", "smtpd_reject_unlisted_recipient", "Prove the fix: self-test"} {
		if !strings.Contains(page, s) {
			t.Errorf("lookup page lacks %q", s)
		}
	}
	events := func() int {
		evs, err := n.st.Events(netip.MustParsePrefix(listed+"/32"), 0)
		if err != nil {
			t.Fatal(err)
		}
		return len(evs)
	}
	before := events()

	// 2. Self-test against the misconfigured Postfix: fails with the bounce.
	res := runSelfTest(t, pf.Log, base, listed, "pf.test")
	if res.Verdict != "fail" || res.Probe != "accepted" || len(res.Replies) == 0 || res.Replies[0].Kind != "bounce" || len(res.Delisted) != 0 {
		t.Fatalf("misconfigured Postfix: %+v", res)
	}
	if !check(t, n.dns.Addr().String(), listed).Listed {
		t.Error("a failed self-test delisted")
	}
	if got := events(); got != before {
		t.Errorf("the bounce of our own probe was stored as evidence: %d events, was %d", got, before)
	}
	page = getBody(t, base+"/selftest/"+res.ID)
	for _, s := range []string{"Failed", "What came back", "bounce", "Postfix: reject unknown recipients at RCPT"} {
		if !strings.Contains(page, s) {
			t.Errorf("failed self-test page lacks %q", s)
		}
	}

	// 3. Fixed: unknown recipients rejected at RCPT. The test passes and
	// delists at once.
	pf.reconfigure(t, "local_recipient_maps = proxy:unix:passwd.byname")
	if err := pf.submit("victim@trap.blowback.test", "no-such-user@pf.test"); err == nil || !strings.Contains(err.Error(), "550") {
		t.Fatalf("fixed Postfix: %v, want 550 at RCPT", err)
	}
	res = runSelfTest(t, pf.Log, base, listed, "pf.test")
	if res.Verdict != "pass" || res.Probe != "rejected_rcpt" || len(res.Replies) != 0 || !res.Tied {
		t.Fatalf("fixed Postfix: %+v", res)
	}
	if len(res.Delisted) != 1 || res.Delisted[0] != listed+"/32" {
		t.Fatalf("delisted %v (tie: %s)", res.Delisted, res.TieReason)
	}
	if check(t, n.dns.Addr().String(), listed).Listed {
		t.Error("still listed after a passed self-test")
	}
	audit, err := n.st.AuditLog(time.Time{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	var delist, tests int
	for _, a := range audit {
		if a.Action == store.OpDelist && a.Who == "selftest" && strings.Contains(a.Reason, res.ID) {
			delist++
		}
		if a.Action == "selftest" {
			tests++
		}
	}
	if delist != 1 || tests != 2 {
		t.Errorf("audit: %d self-test delists, %d self-test entries:\n%+v", delist, tests, audit)
	}
	var h web.History
	getJSON(t, base+"/api/v1/history/"+listed, &h)
	if len(h.SelfTests) != 2 || h.SelfTests[0].Verdict != "pass" || !h.SelfTests[0].Delisted || h.Events[0].Event != "delisted" ||
		!strings.Contains(h.Events[0].Why, "self-test passed") {
		t.Errorf("history %+v", h)
	}
	if testing.Verbose() {
		t.Logf("postfix log:\n%s", pf.Log())
	}
}

// selfTestNode starts a node for a self-test story with a real MTA:
// listed, the MTA's outgoing address (the backscatter source), must be one
// this host can bind; domain's MX, mx.<domain>, is 127.0.0.1 on a local
// authoritative DNS server the self-test resolves through, and the
// self-test probes smtpPort there. It returns the node (the caller stops
// it) and its web base URL.
func selfTestNode(t *testing.T, listed, domain string, smtpPort int) (*node, string) {
	t.Helper()
	needBind(t, listed)
	dnsAddr := serveTestZone(t, map[string][]dns.RR{
		domain + ".":         {mustRR(t, domain+". 60 IN MX 10 mx."+domain+".")},
		"mx." + domain + ".": {mustRR(t, "mx."+domain+". 60 IN A 127.0.0.1")},
	})
	cfg := testConfig(t.TempDir())
	cfg.SelfTest = SelfTestConfig{Enabled: true, Resolver: dnsAddr, SMTPPort: smtpPort, AllowPrivate: true,
		Watch: Duration(90 * time.Second), Grace: Duration(2 * time.Second)}
	if err := cfg.validate(); err != nil {
		t.Fatal(err)
	}
	n := startNodeConfig(t, cfg)
	return n, "http://" + n.web.Addr().String()
}

type selfTestResult struct {
	ID        string `json:"id"`
	Verdict   string `json:"verdict"`
	Summary   string `json:"summary"`
	Probe     string `json:"probe"`
	Tied      bool   `json:"tied"`
	TieReason string `json:"tie_reason"`
	Replies   []struct {
		Kind string `json:"kind"`
	} `json:"replies"`
	Delisted []string `json:"delisted"`
}

// runSelfTest starts a test through the API and waits for its verdict;
// log is the MTA's, for failures.
func runSelfTest(t *testing.T, log func() string, base, ip, domain string) selfTestResult {
	t.Helper()
	resp, err := http.Post(base+"/api/v1/selftest", "application/json", strings.NewReader(fmt.Sprintf(`{"ip":%q,"domain":%q}`, ip, domain)))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("start self-test: %d %s", resp.StatusCode, b)
	}
	var started struct{ ID string }
	json.Unmarshal(b, &started)
	var res selfTestResult
	deadline := time.Now().Add(2 * time.Minute)
	for {
		getJSON(t, base+"/api/v1/selftest/"+started.ID, &res)
		if res.Verdict != "running" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no self-test verdict\n%s", log())
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("self-test %s: %s: %s", res.ID, res.Verdict, res.Summary)
	return res
}

// waitMTA polls cond until it holds or d passes (then fails with log, the
// MTA's).
func waitMTA(t *testing.T, log func() string, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s\nMTA log:\n%s", what, log())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// livePostfix is a throwaway Postfix instance: mx.pf.test for pf.test on
// 127.0.0.1:<port>, its outgoing mail from 127.0.0.20, the trap domain
// routed to the trap (trap/postfix_test.go does the same).
type livePostfix struct {
	*testenv.Postfix
	port    int
	release func() // the port's reservation, held until Postfix starts
	trap    string
}

func newLivePostfix(t *testing.T) *livePostfix {
	t.Helper()
	// The port is held until Postfix starts (testenv.ReservePort): the
	// node made in between listens on :0 and must not be given it.
	port, release := testenv.ReservePort(t)
	return &livePostfix{Postfix: testenv.NewPostfix(t), port: port, release: release}
}

func (p *livePostfix) writeConfig(t *testing.T, recipients string) {
	t.Helper()
	host, port, _ := net.SplitHostPort(p.trap)
	p.Configure(t, []string{
		"meta_directory = /etc/postfix",
		"setgid_group = postdrop",
		"syslog_name = postfix-blowback-selftest",
		"myhostname = mx.pf.test",
		"mydomain = pf.test",
		"myorigin = pf.test",
		"mydestination = pf.test",
		"inet_interfaces = 127.0.0.1",
		"inet_protocols = ipv4",
		"mynetworks = 127.0.0.1/32",
		"smtp_bind_address = 127.0.0.20",
		"relayhost =",
		fmt.Sprintf("transport_maps = inline:{ trap.blowback.test=smtp:[%s]:%s }", host, port),
		"alias_maps =",
		"alias_database =",
		recipients,
		"biff = no",
		"smtputf8_enable = no",
		"smtp_connection_cache_on_demand = no",
		"queue_run_delay = 1s",
		"minimal_backoff_time = 1s",
		"maximal_backoff_time = 2s",
	}, fmt.Sprintf("127.0.0.1:%d inet n - n - - smtpd\n", p.port))
}

func (p *livePostfix) addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(p.port)) }

func (p *livePostfix) start(t *testing.T, trap, recipients string) {
	t.Helper()
	p.trap = trap
	p.writeConfig(t, recipients)
	p.release()
	p.Start(t, p.addr())
}

func (p *livePostfix) reconfigure(t *testing.T, recipients string) {
	t.Helper()
	p.writeConfig(t, recipients)
	if out, err := p.Command("reload"); err != nil {
		t.Fatalf("postfix reload: %v\n%s", err, out)
	}
	// smtpd processes pick the new setting up as they are replaced: wait
	// until a fresh session answers with it.
	waitMTA(t, p.Log, 30*time.Second, "the reloaded configuration", func() bool {
		err := p.probeRcpt("no-such-user@pf.test")
		return err != nil && strings.Contains(err.Error(), "550")
	})
}

// submit sends a message through Postfix's smtpd (from 127.0.0.1).
func (p *livePostfix) submit(from, to string) error {
	return smtpAttempt(p.addr(), "127.0.0.1", from, to)
}

// probeRcpt asks Postfix about one recipient and quits before DATA.
func (p *livePostfix) probeRcpt(to string) error {
	c, err := smtp.Dial(p.addr())
	if err != nil {
		return err
	}
	defer c.Close()
	c.CommandTimeout = 10 * time.Second
	if err := c.Hello("client.example"); err != nil {
		return err
	}
	if err := c.Mail("someone@example.org", nil); err != nil {
		return err
	}
	err = c.Rcpt(to, nil)
	c.Quit()
	return err
}
