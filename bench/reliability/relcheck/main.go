// Command relcheck runs blowback's reliability scenarios (issue 9) against
// real `blowback run` processes on loopback and prints one table row per
// scenario: the load held, the faults injected, events acknowledged versus
// stored, the errors seen and a verdict. bench/reliability/run.sh builds
// the binaries, mounts the small filesystem for the full-disk scenario and
// runs it; see docs/reliability.md.
//
// Every load is bounded in count and time, and every address is on
// 127.0.0.0/8 (clients bind distinct loopback sources so that per-client
// limits and evidence can be told apart).
package main

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/blowback-dnsbl/blowback/internal/runline"
)

// row is one line of the result table.
type row struct {
	Scenario string
	Load     string // load held
	Faults   string // faults injected
	Events   string // acknowledged vs stored
	Errors   string // errors seen
	OK       bool
	Notes    []string // details printed under the table
}

type checker struct {
	bin      string
	work     string
	fullDir  string
	only     map[string]bool
	verbose  bool
	adminTok string
	nodeTok  string
	rows     []row
	nodes    []*node // every node started (their logs are searched for secrets)
}

func main() {
	c := &checker{}
	flag.StringVar(&c.bin, "bin", "./blowback", "blowback `BINARY`")
	flag.StringVar(&c.work, "work", "", "scratch `DIR` (default: a new temp dir)")
	flag.StringVar(&c.fullDir, "fulldir", "", "`DIR` on a small filesystem for the full-disk scenario (empty: skipped)")
	only := flag.String("only", "", "comma-separated scenario groups: smtp,relay,dns,poison,admin,crash,compaction,full,hostile13,unitflood,intakebomb,attacks13")
	flag.BoolVar(&c.verbose, "v", false, "log progress to stderr")
	flag.Parse()
	if c.work == "" {
		d, err := os.MkdirTemp("", "relcheck-")
		if err != nil {
			fatal(err)
		}
		c.work = d
	}
	if *only != "" {
		c.only = map[string]bool{}
		for _, g := range strings.Split(*only, ",") {
			c.only[strings.TrimSpace(g)] = true
		}
	}
	c.adminTok = randHex(24)
	c.nodeTok = randHex(24)
	start := time.Now()
	groups := []struct {
		name string
		fn   func()
	}{
		{"smtp", c.smtpScenarios},
		{"relay", c.relayScenario},
		{"dns", c.dnsScenarios},
		{"poison", c.poisonScenarios},
		{"admin", c.adminScenarios},
		{"crash", c.crashScenario},
		{"compaction", c.compactionScenario},
		{"full", c.fullDiskScenario},
		{"hostile13", c.hostile13Scenarios},
		{"unitflood", c.unitFloodScenario},
		{"intakebomb", c.intakeBombScenario},
		{"attacks13", c.attacks13Scenarios},
	}
	for _, g := range groups {
		if c.only != nil && !c.only[g.name] {
			continue
		}
		c.logf("== %s", g.name)
		t0 := time.Now()
		func() {
			defer func() {
				if p := recover(); p != nil {
					c.add(row{Scenario: g.name, Errors: fmt.Sprintf("relcheck panic: %v", p)})
				}
			}()
			g.fn()
		}()
		c.logf("== %s done in %v", g.name, time.Since(t0).Round(time.Second))
	}
	if c.only == nil || c.only["admin"] {
		c.secretsScenario()
	}
	for _, n := range c.nodes {
		n.stop()
	}
	fail := c.print(os.Stdout)
	fmt.Printf("\nwall time %v; work dir %s\n", time.Since(start).Round(time.Second), c.work)
	if fail > 0 {
		fmt.Printf("%d scenario(s) FAILED\n", fail)
		os.Exit(1)
	}
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "relcheck:", err)
	os.Exit(2)
}

func (c *checker) logf(format string, a ...any) {
	if c.verbose {
		fmt.Fprintf(os.Stderr, time.Now().Format("15:04:05 ")+format+"\n", a...)
	}
}

func (c *checker) add(r row) {
	c.rows = append(c.rows, r)
	v := "PASS"
	if !r.OK {
		v = "FAIL"
	}
	c.logf("%s %s | %s | %s | %s | %s", v, r.Scenario, r.Load, r.Faults, r.Events, r.Errors)
}

// print writes the table (Markdown, so docs/reliability.md can take it as
// is) and returns the number of failed rows.
func (c *checker) print(w io.Writer) int {
	fail := 0
	fmt.Fprintln(w, "| scenario | load held | faults injected | events acked / stored | errors seen | verdict |")
	fmt.Fprintln(w, "| --- | --- | --- | --- | --- | --- |")
	cell := func(s string) string {
		if s == "" {
			return "-"
		}
		return strings.ReplaceAll(s, "|", "/")
	}
	for _, r := range c.rows {
		v := "PASS"
		if !r.OK {
			v, fail = "**FAIL**", fail+1
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s |\n", cell(r.Scenario), cell(r.Load), cell(r.Faults), cell(r.Events), cell(r.Errors), v)
	}
	var notes []string
	for _, r := range c.rows {
		for _, n := range r.Notes {
			notes = append(notes, "- "+r.Scenario+": "+n)
		}
	}
	if len(notes) > 0 {
		fmt.Fprintln(w, "\nDetails:")
		for _, n := range notes {
			fmt.Fprintln(w, n)
		}
	}
	return fail
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// node is one running `blowback run`.
type node struct {
	name, dir, logPath string
	proc               *runline.Proc
	cmd                *exec.Cmd
	smtp, dns, http    string
	done               <-chan struct{}
}

// baseConfig is the TOML every node starts from; extra is appended.
func (c *checker) baseConfig(extra string) string {
	return fmt.Sprintf(`admin_tokens = [%q]
log_level = "info"
trap_domains = ["trap.blowback.test", "trap2.blowback.test"]

[node_tokens]
trap1 = %q

[trap]
read_timeout = "20s"
stress_read_timeout = "5s"
data_timeout = "60s"
session_timeout = "120s"
max_message_bytes = 2097152
max_connections = 2500
proxy_trusted = ["127.0.9.0/24"]
proxy_header_timeout = "3s"

[dns_server]
tcp_idle = "3s"
max_tcp_conns = 256

[dns_server.rrl]
rate = 200
exempt = ["127.0.99.0/24"]

[export]
allow_transfer = ["127.0.0.77/32"]
`, c.adminTok, c.nodeTok) + extra
}

// scenarioNode is startNode for a scenario: when the node does not start,
// it adds r with the error and returns nil.
func (c *checker) scenarioNode(r row, name, dataDir, cfg string) *node {
	n, err := c.startNode(name, dataDir, cfg)
	if err != nil {
		r.Errors = err.Error()
		c.add(r)
		return nil
	}
	return n
}

// startNode runs `blowback run` with cfg on free loopback ports and waits
// for its "blowback running" line. The log goes to <work>/<name>.log.
func (c *checker) startNode(name, dataDir, cfg string) (*node, error) {
	cfgPath := filepath.Join(c.work, name+".toml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	var lastErr error
	for try := 0; try < 5; try++ {
		n, err := c.tryStart(name, dataDir, cfgPath)
		if err == nil {
			c.nodes = append(c.nodes, n)
			return n, nil
		}
		lastErr = err
		if !strings.Contains(err.Error(), "address already in use") {
			break
		}
	}
	return nil, lastErr
}

func (c *checker) tryStart(name, dataDir, cfgPath string) (*node, error) {
	n := &node{name: name, dir: dataDir, logPath: filepath.Join(c.work, name+".log")}
	logf, err := os.OpenFile(n.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	n.cmd = exec.Command(c.bin, "run", "--config", cfgPath, "--data", dataDir,
		"--smtp", "127.0.0.1:0", "--dns", "127.0.0.1:0", "--http", "127.0.0.1:0")
	n.cmd.Stdout = logf
	if n.proc, err = runline.Start(n.cmd, logf); err != nil {
		logf.Close()
		return nil, err
	}
	n.done = n.proc.Done()
	go func() {
		<-n.done
		logf.Close()
	}()
	line, err := n.proc.Running(2 * time.Minute)
	switch {
	case errors.Is(err, runline.ErrExited):
		return nil, fmt.Errorf("%s exited before running: %s", name, n.proc.Tail())
	case err != nil:
		n.kill()
		return nil, fmt.Errorf("%s not running after 2 minutes", name)
	}
	a, _ := runline.Parse(line)
	n.smtp, n.dns, n.http = a.SMTP, a.DNS, a.HTTP
	return n, nil
}

func (n *node) alive() bool {
	select {
	case <-n.done:
		return false
	default:
		return true
	}
}

// stop sends SIGTERM and waits (then SIGKILL after 30s); it returns the
// exit error.
func (n *node) stop() error {
	if !n.alive() {
		return n.exit()
	}
	if !n.proc.Stop(syscall.SIGTERM, 30*time.Second) {
		return fmt.Errorf("did not stop within 30s of SIGTERM")
	}
	return n.exit()
}

// kill sends SIGKILL and waits.
func (n *node) kill() {
	if n.alive() {
		n.cmd.Process.Kill()
		<-n.done
	}
}

func (n *node) exit() error { return n.proc.Err() }

// logText is the node's log so far.
func (n *node) logText() string {
	b, _ := os.ReadFile(n.logPath)
	return string(b)
}

// logErrors counts level=ERROR lines in the node's log and names the
// distinct messages.
func (n *node) logErrors() (int, string) {
	count := 0
	seen := map[string]int{}
	msgRE := regexp.MustCompile(`msg="([^"]*)"|msg=(\S+)`)
	for _, l := range strings.Split(n.logText(), "\n") {
		if !strings.Contains(l, "level=ERROR") {
			continue
		}
		count++
		if m := msgRE.FindStringSubmatch(l); m != nil {
			seen[m[1]+m[2]]++
		}
	}
	var parts []string
	for m, k := range seen {
		parts = append(parts, fmt.Sprintf("%q×%d", m, k))
	}
	return count, strings.Join(parts, ", ")
}

// metrics scrapes /metrics and returns the sum per metric name (over all
// label sets).
func (n *node) metrics() (map[string]float64, error) {
	cl := http.Client{Timeout: 10 * time.Second}
	resp, err := cl.Get("http://" + n.http + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		if l == "" || l[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(l, ' ')
		if i < 0 {
			continue
		}
		name := l[:i]
		labels := ""
		if j := strings.IndexByte(name, '{'); j >= 0 {
			name, labels = name[:j], name[j:]
		}
		v, err := strconv.ParseFloat(l[i+1:], 64)
		if err != nil {
			continue
		}
		out[name] += v
		if labels != "" {
			out[name+labels] = v
		}
	}
	return out, sc.Err()
}

// panics is the sum of every blowback_*_panics_total.
func panics(m map[string]float64) float64 {
	var p float64
	for k, v := range m {
		if strings.HasSuffix(k, "_panics_total") {
			p += v
		}
	}
	return p
}

func mib(b float64) string { return fmt.Sprintf("%.0f MiB", b/(1<<20)) }
