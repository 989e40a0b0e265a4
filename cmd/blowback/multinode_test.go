package main

// The multi-node test runs real processes of the binary on loopback: two
// trap-only nodes forwarding over HTTPS to one central node, and two mirrors
// serving the central node's rbldnsd export (`blowback dnsd --zone-file`
// and rbldnsd). The central node is SIGKILLed and
// restarted; nothing may be lost or counted twice.

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/blowback-dnsbl/blowback/dnsd"
	"github.com/blowback-dnsbl/blowback/forward"
	"github.com/blowback-dnsbl/blowback/forward/forwardtest"
	"github.com/blowback-dnsbl/blowback/internal/testenv"
	"github.com/blowback-dnsbl/blowback/store"
)

// mnMetric is the sample of name with labels at url; -1 when absent.
func mnMetric(t testing.TB, url, name string, labels ...string) float64 {
	t.Helper()
	if v, ok := scrapeMetric(t, nil, url, name, labels...); ok {
		return v
	}
	return -1
}

func mnListed(t *testing.T, server, ip string) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	r, err := dnsd.Check(ctx, server, "bl.blowback.test", netip.MustParseAddr(ip))
	return err == nil && r.Listed
}

// mnStartMirror serves file on a fresh port with `blowback dnsd
// --zone-file` or with rbldnsd, and returns the DNS address.
func mnStartMirror(t *testing.T, kind, bin, file string) string {
	t.Helper()
	port := testenv.FreePort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	var p *binProc
	switch kind {
	case "blowback dnsd":
		p = startProc(t, kind, bin, "dnsd", "--zone-file", file, "--zone", "bl.blowback.test", "--dns", addr)
	case "rbldnsd":
		rbldnsd := testenv.Tool(t, "rbldnsd")
		var args []string
		if os.Getuid() == 0 {
			args = append(args, "-u", "nobody") // rbldnsd refuses to run as root
		}
		args = append(args, "-n", "-c", "1", "-b", fmt.Sprintf("127.0.0.1/%d", port), "bl.blowback.test:combined:"+file)
		p = startProc(t, kind, rbldnsd, args...)
	}
	eventually(t, kind+" mirror answering", func() bool {
		select {
		case <-p.done:
			t.Fatalf("%s exited:\n%s", kind, p.log.String())
		default:
		}
		return mnListed(t, addr, "127.0.0.2")
	})
	return addr
}

// mnAdmin talks HTTPS to the central node, trusting the test CA.
type mnAdmin struct {
	t     *testing.T
	base  string
	token string
	c     *http.Client
}

func (a *mnAdmin) do(method, path, body string, out any) int {
	a.t.Helper()
	code, b := httpDo(a.t, a.c, method, a.base+path, a.token, body)
	if out != nil && code == 200 {
		if err := json.Unmarshal(b, out); err != nil {
			a.t.Fatalf("%s %s: %v: %s", method, path, err, b)
		}
	}
	return code
}

// evidence returns the central node's stored events for ip.
func (a *mnAdmin) evidence(ip string) []store.Event {
	a.t.Helper()
	var out struct {
		Events []store.Event `json:"events"`
	}
	if code := a.do("GET", "/api/v1/admin/evidence/"+ip, "", &out); code != 200 {
		a.t.Fatalf("admin evidence %s: %d", ip, code)
	}
	return out.Events
}

// mnConfigs writes the configurations of a central node (adminTok, the
// node tokens of trap-1 and trap-2, pki's server key pair) and of its
// traps (pki's CA, short backoffs) to dir.
func mnConfigs(t testing.TB, dir string, pki forwardtest.PKI, adminTok, tok1, tok2 string) (central, trap string) {
	t.Helper()
	central = writeFile(t, filepath.Join(dir, "central.toml"), fmt.Sprintf(`
admin_tokens = [%q]

[node_tokens]
trap-1 = %q
trap-2 = %q

[forward]
tls_cert = %q
tls_key = %q
`, adminTok, tok1, tok2, pki.ServerCert, pki.ServerKey), 0o600)
	trap = writeFile(t, filepath.Join(dir, "trap.toml"), fmt.Sprintf(`
[forward]
ca_file = %q
backoff_min = "50ms"
backoff_max = "500ms"
`, pki.CAFile), 0o600)
	return central, trap
}

// mnClient is an HTTPS client that trusts pki's CA.
func mnClient(pki forwardtest.PKI) *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pki.Pool()}}}
}

func TestMultiNode(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process test; not with -short")
	}
	bin := buildBinary(t)
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil { // rbldnsd drops root to nobody
			t.Fatal(err)
		}
	}
	pki := forwardtest.NewPKI(t, dir)
	const (
		adminTok = "admin-token-multinode-0123456789"
		tok1     = "trap-1-token-0123456789abcdef"
		tok2     = "trap-2-token-0123456789abcdef"
	)
	centralCfg, trapCfg := mnConfigs(t, dir, pki, adminTok, tok1, tok2)
	exportDir := filepath.Join(dir, "export")
	centralData := filepath.Join(dir, "central")

	// The central node, on ports it picks; restarted later on the same ones.
	central := startProc(t, "central", bin, "run", "--config", centralCfg, "--data", centralData,
		"--smtp", "127.0.0.1:0", "--dns", "127.0.0.1:0", "--http", "127.0.0.1:0", "--export-dir", exportDir)
	ca := central.waitReady(t)
	centralDNS, centralHTTP, centralSMTP := ca["dns"], ca["http"], ca["smtp"]
	admin := &mnAdmin{t: t, base: "https://" + centralHTTP, token: adminTok, c: mnClient(pki)}

	var traps []*binProc
	startTrap := func(name, tok string) (smtp, metrics string) {
		p := startProc(t, name, bin, "trap", "--config", trapCfg, "--data", filepath.Join(dir, name),
			"--smtp", "127.0.0.1:0", "--http", "127.0.0.1:0", "--node", name,
			"--forward", "https://"+centralHTTP, "--token", tok)
		kv := p.waitReady(t)
		traps = append(traps, p)
		return kv["smtp"], "http://" + kv["http"] + "/metrics"
	}
	trap1, metrics1 := startTrap("trap-1", tok1)
	trap2, metrics2 := startTrap("trap-2", tok2)

	exportFile := filepath.Join(exportDir, "bl.blowback.test.rbldnsd")
	eventually(t, "the export file", func() bool { _, err := os.Stat(exportFile); return err == nil })
	mirrors := map[string]string{}
	for _, kind := range []string{"blowback dnsd", "rbldnsd"} {
		mirrors[kind] = mnStartMirror(t, kind, bin, exportFile)
	}
	t.Logf("central dns=%s http=%s; traps %s %s; mirrors %v", centralDNS, centralHTTP, trap1, trap2, mirrors)
	listedEverywhere := func(ip string) {
		t.Helper()
		eventually(t, ip+" listed on the central node", func() bool { return mnListed(t, centralDNS, ip) })
		for kind, addr := range mirrors {
			eventually(t, ip+" listed on the "+kind+" mirror", func() bool { return mnListed(t, addr, ip) })
		}
	}

	bounce := func(trapAddr, src string, n int) {
		t.Helper()
		for i := 0; i < n; i++ {
			to := fmt.Sprintf("t%d-%s@trap.blowback.test", i, strings.ReplaceAll(src, ".", "-"))
			if err := sendFrom(t, trapAddr, src, "", to, testDSN); err != nil {
				t.Fatalf("bounce from %s to %s: %v", src, trapAddr, err)
			}
		}
	}
	sent := map[string]map[string]int{} // ip -> node -> bounces
	send := func(trapAddr, node, src string, n int) {
		t.Helper()
		bounce(trapAddr, src, n)
		if sent[src] == nil {
			sent[src] = map[string]int{}
		}
		sent[src][node] += n
	}

	// 1. Bounces to both traps list their senders on the central node and
	// on the mirror.
	send(trap1, "trap-1", "127.0.0.11", 1)
	send(trap2, "trap-2", "127.0.0.12", 1)
	for _, ip := range []string{"127.0.0.11", "127.0.0.12"} {
		listedEverywhere(ip)
	}

	// 2. The central node dies; the traps keep accepting and spool.
	central.stop(syscall.SIGKILL)
	send(trap1, "trap-1", "127.0.0.13", 3)
	send(trap2, "trap-2", "127.0.0.14", 3)
	send(trap2, "trap-2", "127.0.0.11", 1) // one sender seen by both traps
	for _, m := range []string{metrics1, metrics2} {
		eventually(t, "failed attempts while the central node is down", func() bool {
			return mnMetric(t, m, "blowback_forward_failed_batches_total", `reason="network"`) >= 5
		})
	}
	if b1, b2 := mnMetric(t, metrics1, "blowback_forward_backlog_events"), mnMetric(t, metrics2, "blowback_forward_backlog_events"); b1 != 3 || b2 != 4 {
		t.Fatalf("backlog while the central node is down: %v and %v, want 3 and 4", b1, b2)
	}
	for kind, addr := range mirrors {
		if !mnListed(t, addr, "127.0.0.11") {
			t.Fatalf("the %s mirror stopped answering while the central node was down", kind)
		}
	}

	// 3. The central node returns (same data, same ports); the backlogs drain.
	central = startProc(t, "central-2", bin, "run", "--config", centralCfg, "--data", centralData,
		"--smtp", centralSMTP, "--dns", centralDNS, "--http", centralHTTP, "--export-dir", exportDir)
	central.waitReady(t)
	for _, m := range []string{metrics1, metrics2} {
		eventually(t, "backlog drained", func() bool { return mnMetric(t, m, "blowback_forward_backlog_events") == 0 })
	}
	if s1, s2 := mnMetric(t, metrics1, "blowback_forward_sent_events_total"), mnMetric(t, metrics2, "blowback_forward_sent_events_total"); s1 != 4 || s2 != 5 {
		t.Errorf("sent: %v and %v, want 4 and 5", s1, s2)
	}
	for _, ip := range []string{"127.0.0.13", "127.0.0.14"} {
		listedEverywhere(ip)
	}

	// No evidence lost, none counted twice, each recorded under its node.
	for ip, byNode := range sent {
		evs := admin.evidence(ip)
		got, ids := map[string]int{}, map[store.EventID]bool{}
		for _, ev := range evs {
			got[ev.Node]++
			if ids[ev.ID] {
				t.Errorf("%s: event %s stored twice", ip, ev.ID)
			}
			ids[ev.ID] = true
		}
		for node, n := range byNode {
			if got[node] != n {
				t.Errorf("%s: %d events from %s on the central node, want %d", ip, got[node], node, n)
			}
		}
		if len(evs) != mnSum(byNode) {
			t.Errorf("%s: %d events on the central node, want %d", ip, len(evs), mnSum(byNode))
		}
	}

	// 4. A revoked node token is refused; the trap keeps the evidence.
	if code := admin.do("POST", "/api/v1/admin/nodes/trap-2/revoke", `{"reason":"test"}`, nil); code != 200 {
		t.Fatalf("revoke: %d", code)
	}
	send(trap2, "trap-2", "127.0.0.15", 1)
	eventually(t, "unauthorized attempts", func() bool {
		return mnMetric(t, metrics2, "blowback_forward_failed_batches_total", `reason="unauthorized"`) >= 1
	})
	if b := mnMetric(t, metrics2, "blowback_forward_backlog_events"); b != 1 {
		t.Errorf("backlog after revocation = %v, want 1", b)
	}
	if evs := admin.evidence("127.0.0.15"); len(evs) != 0 {
		t.Errorf("evidence from a revoked node stored: %d events", len(evs))
	}
	unknown := &mnAdmin{t: t, base: admin.base, token: "not-a-node-token-0123456789", c: admin.c}
	if code := unknown.do("POST", "/api/v1/evidence", `{"events":[]}`, nil); code != 401 {
		t.Errorf("unknown token: %d, want 401", code)
	}
	for _, s := range []string{tok1, tok2, adminTok} {
		for _, p := range append(traps, central) {
			if strings.Contains(p.log.String(), s) {
				t.Errorf("a token appears in the log of %s", p.name)
			}
		}
	}

	// 5. SIGTERM stops a trap node cleanly; its backlog stays for the next start.
	traps[1].stop(syscall.SIGTERM)
	if code := traps[1].cmd.ProcessState.ExitCode(); code != 0 || !strings.Contains(traps[1].log.String(), `msg=stopped`) {
		t.Errorf("trap-2 after SIGTERM: exit %d", code)
	}
	p := startProc(t, "trap-2 again", bin, "trap", "--config", trapCfg, "--data", filepath.Join(dir, "trap-2"),
		"--smtp", "127.0.0.1:0", "--http", "127.0.0.1:0", "--node", "trap-2", "--forward", "https://"+centralHTTP, "--token", tok2)
	if kv := p.waitReady(t); kv["backlog"] != "1" {
		t.Errorf("trap-2 restarted with backlog %q, want 1", kv["backlog"])
	}
}

func mnSum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// BenchmarkForwardTwoTraps measures forwarded events/s from two trap nodes
// into one central node, all three real processes, over HTTPS on loopback.
// Each trap's spool is filled before the trap starts (b.N/2 events each,
// one sender address per event, the raw DSN of about 1 KB with each); the
// clock runs from the traps' start until the central node has accepted all
// b.N events.
//
// raw=none forwards the events alone, raw=1KB with the raw DSN (the
// default: traps forward up to raw_max bytes of each message).
//
//	go test ./cmd/blowback -run '^$' -bench ForwardTwoTraps -benchtime 20000x
func BenchmarkForwardTwoTraps(b *testing.B) {
	b.Run("raw=none", func(b *testing.B) { benchForward(b, nil) })
	b.Run("raw=1KB", func(b *testing.B) { benchForward(b, []byte(testDSN)) })
}

func benchForward(b *testing.B, raw []byte) {
	bin := buildBinary(b)
	dir := b.TempDir()
	pki := forwardtest.NewPKI(b, dir)
	const adminTok, tok1, tok2 = "admin-token-bench-0123456789", "trap-1-token-0123456789abcdef", "trap-2-token-0123456789abcdef"
	centralCfg, trapCfg := mnConfigs(b, dir, pki, adminTok, tok1, tok2)
	central := startProc(b, "central", bin, "run", "--config", centralCfg, "--data", filepath.Join(dir, "central"),
		"--smtp", "127.0.0.1:0", "--dns", "127.0.0.1:0", "--http", "127.0.0.1:0")
	centralHTTP := central.waitReady(b)["http"]
	hc := mnClient(pki)
	accepted := func() float64 {
		n, _ := scrapeMetric(b, hc, "https://"+centralHTTP+"/metrics", "blowback_http_evidence_events_total", `result="accepted"`)
		return n
	}

	// Fill the spools offline, as a trap would have while the central node was away.
	for i, name := range []string{"trap-1", "trap-2"} {
		sp, err := forward.OpenSpool(filepath.Join(dir, name, "spool"), forward.SpoolOptions{RawMax: 64 << 10}, nil)
		if err != nil {
			b.Fatal(err)
		}
		var wg sync.WaitGroup
		per := b.N / 2
		if i == 1 {
			per = b.N - b.N/2
		}
		for w := 0; w < 16; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for j := w; j < per; j += 16 {
					n := uint32(i)<<23 | uint32(j)
					ev := &store.Event{ID: store.NewEventID(), Time: time.Now().UTC(),
						ClientIP: netip.AddrFrom4([4]byte{10, byte(n >> 16), byte(n >> 8), byte(n)}), HELO: "mx.sender.example",
						Rcpts: []string{fmt.Sprintf("t%d@trap.blowback.test", j)}, TrapDomain: "trap.blowback.test", Kind: store.KindBounce,
						Original: store.Original{MessageID: fmt.Sprintf("<%d.%d@trap.blowback.test>", i, j)}}
					if err := sp.Put(context.Background(), ev, raw); err != nil {
						b.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		sp.Close()
	}
	b.ResetTimer()
	start := time.Now()
	for _, nt := range [][2]string{{"trap-1", tok1}, {"trap-2", tok2}} {
		p := startProc(b, nt[0], bin, "trap", "--config", trapCfg, "--data", filepath.Join(dir, nt[0]),
			"--smtp", "127.0.0.1:0", "--http", "127.0.0.1:0", "--node", nt[0], "--forward", "https://"+centralHTTP, "--token", nt[1])
		p.waitReady(b)
	}
	deadline := time.Now().Add(30 * time.Minute)
	for accepted() < float64(b.N) {
		if time.Now().After(deadline) {
			b.Fatalf("central accepted %v of %d events", accepted(), b.N)
		}
		time.Sleep(20 * time.Millisecond)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
}
