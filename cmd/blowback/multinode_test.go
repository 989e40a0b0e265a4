package main

// The multi-node test runs real processes of the binary on loopback: two
// trap-only nodes forwarding over HTTPS to one central node, and two mirrors
// serving the central node's rbldnsd export (`blowback dnsd --zone-file`
// and rbldnsd). The central node is SIGKILLed and
// restarted; nothing may be lost or counted twice.

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/blowback-dnsbl/blowback/dnsd"
	"github.com/blowback-dnsbl/blowback/forward"
	"github.com/blowback-dnsbl/blowback/forward/forwardtest"
	"github.com/blowback-dnsbl/blowback/internal/runline"
	"github.com/blowback-dnsbl/blowback/internal/testenv"
	"github.com/blowback-dnsbl/blowback/store"
)

// mnBuildBinary builds blowback into a temp dir (once per test binary).
var mnBuildOnce struct {
	sync.Once
	path string
	err  error
	out  []byte
}

func mnBuildBinary(t testing.TB) string {
	t.Helper()
	mnBuildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "blowback-bin-")
		if err != nil {
			mnBuildOnce.err = err
			return
		}
		mnBuildOnce.path = filepath.Join(dir, "blowback")
		cmd := exec.Command("go", "build", "-o", mnBuildOnce.path, ".")
		mnBuildOnce.out, mnBuildOnce.err = cmd.CombinedOutput()
	})
	if mnBuildOnce.err != nil {
		t.Fatalf("go build: %v\n%s", mnBuildOnce.err, mnBuildOnce.out)
	}
	return mnBuildOnce.path
}

// mnProc is a child process whose stderr (the log) is kept and watched for
// the "blowback running" line.
type mnProc struct {
	name  string
	cmd   *exec.Cmd
	log   *testenv.Output
	ready chan map[string]string
	done  chan struct{}
}

func mnStartProc(t testing.TB, name, bin string, args ...string) *mnProc {
	t.Helper()
	p := &mnProc{name: name, log: &testenv.Output{}, ready: make(chan map[string]string, 1), done: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	pr, pw := io.Pipe()
	p.cmd.Stdout, p.cmd.Stderr = p.log, pw
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			p.log.Write([]byte(line + "\n"))
			if kv := mnLogfmt(line); kv["msg"] == runline.Msg {
				select {
				case p.ready <- kv:
				default:
				}
			}
		}
		io.Copy(io.Discard, pr)
	}()
	go func() {
		p.cmd.Wait()
		pw.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.stop(syscall.SIGKILL)
		if t.Failed() || testing.Verbose() {
			t.Logf("--- %s log:\n%s", name, p.log.String())
		}
	})
	return p
}

// waitReady returns the key=value pairs of the "blowback running" line.
func (p *mnProc) waitReady(t testing.TB) map[string]string {
	t.Helper()
	select {
	case kv := <-p.ready:
		return kv
	case <-p.done:
		t.Fatalf("%s exited before running:\n%s", p.name, p.log.String())
	case <-time.After(2 * time.Minute):
		t.Fatalf("%s not running after 2 minutes:\n%s", p.name, p.log.String())
	}
	return nil
}

func (p *mnProc) stop(sig syscall.Signal) {
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
}

// mnLogfmt parses a slog text line: key=value and key="quoted value".
func mnLogfmt(line string) map[string]string {
	kv := map[string]string{}
	for len(line) > 0 {
		line = strings.TrimLeft(line, " ")
		eq := strings.IndexByte(line, '=')
		if eq < 0 {
			break
		}
		k, rest := line[:eq], line[eq+1:]
		var v string
		if strings.HasPrefix(rest, `"`) {
			end := 1
			for end < len(rest) && (rest[end] != '"' || rest[end-1] == '\\') {
				end++
			}
			if uq, err := strconv.Unquote(rest[:min(end+1, len(rest))]); err == nil {
				v = uq
			}
			rest = rest[min(end+1, len(rest)):]
		} else {
			sp := strings.IndexByte(rest, ' ')
			if sp < 0 {
				sp = len(rest)
			}
			v, rest = rest[:sp], rest[sp:]
		}
		kv[k] = v
		line = rest
	}
	return kv
}

// mnMetric scrapes url (Prometheus text) for the sample of name whose
// labels contain every given "k=\"v\"" string; -1 when absent.
func mnMetric(t testing.TB, url, name string, labels ...string) float64 {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("scrape %s: %v", url, err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
next:
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+" ") && !strings.HasPrefix(line, name+"{") {
			continue
		}
		for _, l := range labels {
			if !strings.Contains(line, l) {
				continue next
			}
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			t.Fatalf("metric line %q: %v", line, err)
		}
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
	var p *mnProc
	switch kind {
	case "blowback dnsd":
		p = mnStartProc(t, kind, bin, "dnsd", "--zone-file", file, "--zone", "bl.blowback.test", "--dns", addr)
	case "rbldnsd":
		rbldnsd := testenv.Tool(t, "rbldnsd")
		var args []string
		if os.Getuid() == 0 {
			args = append(args, "-u", "nobody") // rbldnsd refuses to run as root
		}
		args = append(args, "-n", "-c", "1", "-b", fmt.Sprintf("127.0.0.1/%d", port), "bl.blowback.test:combined:"+file)
		p = mnStartProc(t, kind, rbldnsd, args...)
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

func mnWriteFile(t testing.TB, path, s string) string {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestMultiNode(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process test; not with -short")
	}
	bin := mnBuildBinary(t)
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
	centralCfg := mnWriteFile(t, filepath.Join(dir, "central.toml"), fmt.Sprintf(`
admin_tokens = [%q]

[node_tokens]
trap-1 = %q
trap-2 = %q

[forward]
tls_cert = %q
tls_key = %q
`, adminTok, tok1, tok2, pki.ServerCert, pki.ServerKey))
	trapCfg := mnWriteFile(t, filepath.Join(dir, "trap.toml"), fmt.Sprintf(`
[forward]
ca_file = %q
backoff_min = "50ms"
backoff_max = "500ms"
`, pki.CAFile))
	exportDir := filepath.Join(dir, "export")
	centralData := filepath.Join(dir, "central")

	// The central node, on ports it picks; restarted later on the same ones.
	central := mnStartProc(t, "central", bin, "run", "--config", centralCfg, "--data", centralData,
		"--smtp", "127.0.0.1:0", "--dns", "127.0.0.1:0", "--http", "127.0.0.1:0", "--export-dir", exportDir)
	ca := central.waitReady(t)
	centralDNS, centralHTTP, centralSMTP := ca["dns"], ca["http"], ca["smtp"]
	pool := x509.NewCertPool()
	pool.AddCert(pki.CA)
	admin := &mnAdmin{t: t, base: "https://" + centralHTTP, token: adminTok,
		c: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}}

	var traps []*mnProc
	startTrap := func(name, tok string) (smtp, metrics string) {
		p := mnStartProc(t, name, bin, "trap", "--config", trapCfg, "--data", filepath.Join(dir, name),
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
	central = mnStartProc(t, "central-2", bin, "run", "--config", centralCfg, "--data", centralData,
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
	p := mnStartProc(t, "trap-2 again", bin, "trap", "--config", trapCfg, "--data", filepath.Join(dir, "trap-2"),
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
	bin := mnBuildBinary(b)
	dir := b.TempDir()
	pki := forwardtest.NewPKI(b, dir)
	const adminTok, tok1, tok2 = "admin-token-bench-0123456789", "trap-1-token-0123456789abcdef", "trap-2-token-0123456789abcdef"
	centralCfg := mnWriteFile(b, filepath.Join(dir, "central.toml"), fmt.Sprintf(
		"admin_tokens = [%q]\n[node_tokens]\ntrap-1 = %q\ntrap-2 = %q\n[forward]\ntls_cert = %q\ntls_key = %q\n",
		adminTok, tok1, tok2, pki.ServerCert, pki.ServerKey))
	trapCfg := mnWriteFile(b, filepath.Join(dir, "trap.toml"), fmt.Sprintf(
		"[forward]\nca_file = %q\nbackoff_min = \"50ms\"\nbackoff_max = \"500ms\"\n", pki.CAFile))
	central := mnStartProc(b, "central", bin, "run", "--config", centralCfg, "--data", filepath.Join(dir, "central"),
		"--smtp", "127.0.0.1:0", "--dns", "127.0.0.1:0", "--http", "127.0.0.1:0")
	centralHTTP := central.waitReady(b)["http"]
	pool := x509.NewCertPool()
	pool.AddCert(pki.CA)
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	accepted := func() float64 {
		resp, err := hc.Get("https://" + centralHTTP + "/metrics")
		if err != nil {
			b.Fatal(err)
		}
		defer resp.Body.Close()
		var n float64
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if l := sc.Text(); strings.HasPrefix(l, "blowback_http_evidence_events_total{") && strings.Contains(l, `result="accepted"`) {
				f := strings.Fields(l)
				v, _ := strconv.ParseFloat(f[len(f)-1], 64)
				n += v
			}
		}
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
		p := mnStartProc(b, nt[0], bin, "trap", "--config", trapCfg, "--data", filepath.Join(dir, nt[0]),
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
