package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/blowback-dnsbl/blowback/dnsd"
	"github.com/blowback-dnsbl/blowback/internal/testenv"
	"github.com/blowback-dnsbl/blowback/store"
)

// The files in deploy/ are checked here: they parse, they are complete,
// and the tools their users run accept them.

// tomlKeys lists every key path of the config, from the struct tags.
func tomlKeys(t reflect.Type, prefix string, out map[string]bool) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := strings.Split(f.Tag.Get("toml"), ",")[0]
		if tag == "" || tag == "-" || !f.IsExported() {
			continue
		}
		path := prefix + tag
		out[path] = true
		ft := f.Type
		if ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct {
			ft = ft.Elem()
		}
		if ft.Kind() == reflect.Struct && ft != reflect.TypeOf(time.Time{}) {
			tomlKeys(ft, path+".", out)
		}
	}
}

var (
	tomlTable = regexp.MustCompile(`^\s*#?\s*\[\[?\s*([a-z0-9_.]+)\s*\]\]?\s*(#.*)?$`)
	tomlKey   = regexp.MustCompile(`^\s*#?\s*([a-z0-9_]+)\s*=`)
)

// TestExampleConfig: deploy/blowback.toml parses, names every key (set, or
// commented out when it has no value by default), and sets each key it
// sets to its default.
func TestExampleConfig(t *testing.T) {
	b := readDeploy(t, "blowback.toml")
	c, err := parseConfig(b)
	if err != nil {
		t.Fatalf("deploy/blowback.toml: %v", err)
	}
	var got, want bytes.Buffer
	toml.NewEncoder(&got).Encode(c)
	toml.NewEncoder(&want).Encode(defaultConfig())
	if got.String() != want.String() {
		t.Errorf("deploy/blowback.toml does not set the defaults:\n%s", lineDiff(want.String(), got.String()))
	}
	documented := map[string]bool{}
	table := ""
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := sc.Text()
		if m := tomlTable.FindStringSubmatch(line); m != nil {
			table = m[1] + "."
			documented[m[1]] = true
			continue
		}
		if m := tomlKey.FindStringSubmatch(line); m != nil {
			documented[table+m[1]] = true
		}
	}
	keys := map[string]bool{}
	tomlKeys(reflect.TypeOf(Config{}), "", keys)
	var missing []string
	for k := range keys {
		if !documented[k] {
			missing = append(missing, k)
		}
	}
	sort.Strings(missing)
	for _, k := range missing {
		t.Errorf("deploy/blowback.toml lacks the key %q: add it with its default and a comment", k)
	}
}

// lineDiff shows the lines of b not in a and of a not in b.
func lineDiff(a, b string) string {
	in := func(s string) map[string]bool {
		m := map[string]bool{}
		for _, l := range strings.Split(s, "\n") {
			m[l] = true
		}
		return m
	}
	ma, mb := in(a), in(b)
	var out []string
	for _, l := range strings.Split(a, "\n") {
		if !mb[l] {
			out = append(out, "- "+l)
		}
	}
	for _, l := range strings.Split(b, "\n") {
		if !ma[l] {
			out = append(out, "+ "+l)
		}
	}
	return strings.Join(out, "\n")
}

func runTool(t *testing.T, stdin []byte, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func TestPrometheusRules(t *testing.T) {
	promtool := testenv.Tool(t, "promtool")
	rules := deployFile(t, "prometheus/blowback.rules.yml")
	if out, err := runTool(t, nil, promtool, "check", "rules", rules); err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
	if out, err := runTool(t, nil, promtool, "check", "config", deployFile(t, "prometheus/prometheus.yml")); err != nil {
		t.Fatalf("promtool check config: %v\n%s", err, out)
	}
	// The unit tests fire each alert on made-up series and check its text.
	cmd := exec.Command(promtool, "test", "rules", "blowback.rules.test.yml")
	cmd.Dir = filepath.Dir(rules)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("promtool test rules: %v\n%s", err, out)
	}
}

var metricRef = regexp.MustCompile(`\bblowback_[a-z0-9_]+`)

// sourceMetricNames are the metric names the Go code defines.
func sourceMetricNames(t *testing.T) map[string]bool {
	t.Helper()
	names := map[string]bool{}
	def := regexp.MustCompile(`"(blowback_[a-z0-9_]+)"`)
	filepath.WalkDir(testenv.Root(t), func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() && (d.Name() == ".git" || d.Name() == "testdata") {
			if d != nil && d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasSuffix(p, ".go") && !strings.HasSuffix(p, "_test.go") {
			b, _ := os.ReadFile(p)
			for _, m := range def.FindAllStringSubmatch(string(b), -1) {
				names[m[1]] = true
			}
		}
		return nil
	})
	return names
}

// TestDashboardAndRulesNameRealMetrics: every metric the alert rules and
// the Grafana dashboard query is one the code defines (no typo, no rename
// left behind).
func TestDashboardAndRulesNameRealMetrics(t *testing.T) {
	defined := sourceMetricNames(t)
	if len(defined) < 10 {
		t.Fatalf("found only %d metric names in the source", len(defined))
	}
	dash := readDeploy(t, "grafana/blowback.json")
	var d struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(dash, &d); err != nil {
		t.Fatalf("dashboard JSON: %v", err)
	}
	rules, _ := os.ReadFile(deployFile(t, "prometheus/blowback.rules.yml"))
	check := func(where, text string) {
		for _, m := range metricRef.FindAllString(text, -1) {
			base := m
			for _, suf := range []string{"_bucket", "_sum", "_count"} {
				if b, ok := strings.CutSuffix(m, suf); ok && defined[b] {
					base = b
				}
			}
			if !defined[base] && !strings.HasSuffix(m, "_") {
				t.Errorf("%s uses %s, which no code defines", where, m)
			}
		}
	}
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			check("dashboard panel "+p.Title, tg.Expr)
		}
	}
	check("blowback.rules.yml", string(rules))
}

// TestMetricsLive scrapes the three kinds of node (run, trap, dnsd mirror)
// after some traffic and checks each exposition with promtool check
// metrics and promlint, the names with STYLE.md, and that
// docs/operations.md and README.md list every metric.
func TestMetricsLive(t *testing.T) {
	promtool := testenv.Tool(t, "promtool")
	docs, _ := os.ReadFile(filepath.Join(testenv.Root(t), "docs", "operations.md"))
	readme, _ := os.ReadFile(filepath.Join(testenv.Root(t), "README.md"))
	checkScrape := func(t *testing.T, url string) {
		t.Helper()
		code, body := httpGet(t, url)
		if code != 200 {
			t.Fatalf("%s: %d", url, code)
		}
		if out, err := runTool(t, body, promtool, "check", "metrics"); err != nil {
			t.Errorf("promtool check metrics: %v\n%s", err, out)
		}
		testenv.Promlint(t, body)
		for _, line := range strings.Split(string(body), "\n") {
			f := strings.Fields(line)
			if len(f) < 4 || f[0] != "#" || f[1] != "TYPE" {
				continue
			}
			name, typ := f[2], f[3]
			switch {
			case strings.HasPrefix(name, "go_"), strings.HasPrefix(name, "process_"), strings.HasPrefix(name, "promhttp_"):
				continue
			case !strings.HasPrefix(name, "blowback_"):
				t.Errorf("metric %s: want the prefix blowback_ (STYLE.md)", name)
				continue
			}
			if typ == "counter" && !strings.HasSuffix(name, "_total") {
				t.Errorf("counter %s does not end in _total", name)
			}
			if !bytes.Contains(docs, []byte("`"+name+"`")) {
				t.Errorf("docs/operations.md does not list %s", name)
			}
			if !bytes.Contains(readme, []byte("`"+name+"`")) {
				t.Errorf("README.md does not list %s (STYLE.md: the README lists every metric)", name)
			}
		}
	}

	t.Run("run", func(t *testing.T) {
		n := startNode(t, t.TempDir())
		defer n.Stop()
		base := "http://" + n.web.Addr().String()
		// Traffic through every component.
		if err := sendFrom(t, n.trap.Addr().String(), "127.0.0.9", "", "x@trap.blowback.test", testDSN); err != nil {
			t.Fatal(err)
		}
		eventually(t, "listing", func() bool { return n.eng.Listed() > 0 })
		check(t, n.dns.Addr().String(), "127.0.0.2")
		for _, p := range []string{"/", "/lookup?ip=127.0.0.1", "/status", "/api/v1/lookup/127.0.0.2", "/nothing", "/healthz"} {
			resp, err := http.Get(base + p)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
		}
		checkScrape(t, base+"/metrics")
	})

	t.Run("trap", func(t *testing.T) {
		n := startTrapNode(t)
		if err := sendFrom(t, n.trap.Addr().String(), "127.0.0.1", "", "x@trap.blowback.test", testDSN); err != nil {
			t.Fatal(err)
		}
		checkScrape(t, "http://"+n.httpL.Addr().String()+"/metrics")
	})

	t.Run("dnsd", func(t *testing.T) {
		zf := filepath.Join(t.TempDir(), "bl.rbldnsd")
		writeFile(t, zf, ":127.0.0.2:Listed, see $\n192.0.2.1\n2001:db8::/64\n", 0o644)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		addrs := make(chan [2]net.Addr, 1)
		done := make(chan error, 1)
		go func() {
			done <- serveDnsd(ctx, dnsdOptions{file: zf, zone: "bl.blowback.test", dns: "127.0.0.1:0", metrics: "127.0.0.1:0", poll: time.Second},
				defaultConfig(), slog.New(slog.DiscardHandler), nil, func(d, m net.Addr) { addrs <- [2]net.Addr{d, m} })
		}()
		var a [2]net.Addr
		select {
		case a = <-addrs:
		case err := <-done:
			t.Fatalf("dnsd: %v", err)
		case <-time.After(time.Minute):
			t.Fatal("dnsd did not start")
		}
		if r := check(t, a[0].String(), "192.0.2.1"); !r.Listed {
			t.Errorf("mirror does not list 192.0.2.1: %+v", r)
		}
		checkScrape(t, "http://"+a[1].String()+"/metrics")
		cancel()
		<-done
	})
}

func TestSystemdUnits(t *testing.T) {
	analyze := testenv.Tool(t, "systemd-analyze")
	units, _ := filepath.Glob(deployFile(t, "systemd/*.service"))
	if len(units) < 3 {
		t.Fatalf("units: %v", units)
	}
	bin, err := os.Executable() // any executable: verify checks ExecStart exists
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	for _, u := range units {
		b, _ := os.ReadFile(u)
		s := string(b)
		for _, want := range []string{"AmbientCapabilities=CAP_NET_BIND_SERVICE\n", "CapabilityBoundingSet=CAP_NET_BIND_SERVICE\n",
			"NoNewPrivileges=yes", "ProtectSystem=strict", "ReadWritePaths=/var/lib/", "User=blowback"} {
			if !strings.Contains(s, want) {
				t.Errorf("%s lacks %q", filepath.Base(u), strings.TrimSpace(want))
			}
		}
		p := filepath.Join(tmp, filepath.Base(u))
		writeFile(t, p, strings.ReplaceAll(s, "/usr/local/bin/blowback", bin), 0o644)
		if out, err := runTool(t, nil, analyze, "verify", p); err != nil || strings.TrimSpace(out) != "" {
			t.Errorf("systemd-analyze verify %s: %v\n%s", filepath.Base(u), err, out)
		}
		// The sandbox scores "OK" (exposure below 2 of 10).
		if out, err := runTool(t, nil, analyze, "security", "--offline=yes", "--threshold=20", p); err != nil {
			t.Errorf("systemd-analyze security %s: %v\n%s", filepath.Base(u), err, out)
		} else if m := regexp.MustCompile(`Overall exposure level for \S+: ([0-9.]+)`).FindStringSubmatch(out); m == nil || mustFloat(m[1]) >= 2 {
			t.Errorf("systemd-analyze security %s: exposure %v", filepath.Base(u), m)
		} else {
			t.Logf("%s: exposure %s", filepath.Base(u), m[1])
		}
	}
}

func mustFloat(s string) float64 {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 99
	}
	return f
}

// TestContainerfile checks what can be checked without a container
// engine: two stages, a non-root user, a static build of ./cmd/blowback.
func TestContainerfile(t *testing.T) {
	b := readDeploy(t, "Containerfile")
	s := string(b)
	if n := len(regexp.MustCompile(`(?m)^FROM `).FindAllString(s, -1)); n != 2 {
		t.Errorf("%d stages, want 2 (build, runtime)", n)
	}
	for _, want := range []string{"CGO_ENABLED=0", "./cmd/blowback", "USER nonroot", "HEALTHCHECK"} {
		if !strings.Contains(s, want) {
			t.Errorf("Containerfile lacks %q", want)
		}
	}
	if regexp.MustCompile(`(?m)^USER (root|0)`).MatchString(s) {
		t.Error("the image runs as root")
	}
}

// TestSpamAssassinSnippet lints deploy/consumers/spamassassin.cf with the
// system's rules, then scores messages with it against a running node: a
// listed client scores only with a null or postmaster envelope sender.
func TestSpamAssassinSnippet(t *testing.T) {
	sa := testenv.Tool(t, "spamassassin")
	dir := t.TempDir()
	pres, _ := filepath.Glob("/etc/spamassassin/*.pre")
	for _, p := range pres {
		b, _ := os.ReadFile(p)
		os.WriteFile(filepath.Join(dir, filepath.Base(p)), b, 0o644)
	}
	snippet := readDeploy(t, "consumers/spamassassin.cf")
	os.WriteFile(filepath.Join(dir, "blowback.cf"), snippet, 0o644)
	out, err := runTool(t, nil, sa, "--lint", "--siteconfigpath="+dir)
	if err != nil || strings.Contains(out, "warn:") {
		t.Fatalf("spamassassin --lint: %v\n%s", err, out)
	}

	n := startNode(t, t.TempDir())
	defer n.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := n.eng.Act(ctx, store.Action{Prefix: netip.MustParsePrefix("192.0.2.99/32"), Op: store.OpList, Who: "test", Reason: "test"}); err != nil {
		t.Fatal(err)
	}
	// SpamAssassin asks blowback's DNS directly; nothing else on the network.
	local := fmt.Sprintf("dns_available yes\ndns_server %s\ntrusted_networks 127.0.0.0/8\nuse_razor2 0\nuse_pyzor 0\nskip_uribl_checks 1\n", n.dns.Addr())
	writeFile(t, filepath.Join(dir, "zz-test.cf"), local, 0o644)
	for _, c := range []struct {
		client, sender string
		hit            bool
	}{
		{"192.0.2.99", "", true},
		{"192.0.2.99", "postmaster@bounce.example", true},
		{"192.0.2.99", "alice@example.org", false},
		{"192.0.2.98", "", false},
	} {
		msg := "Return-Path: <" + c.sender + ">\n" +
			"Received: from mx.sender.example (mx.sender.example [" + c.client + "])\n\tby mx.test.example (Postfix) with ESMTP id 1;\n\tTue, 3 Jun 2025 10:11:12 +0000\n" +
			"From: MAILER-DAEMON@mx.sender.example\nTo: user@test.example\nSubject: Undelivered Mail Returned to Sender\n" +
			"Message-ID: <bounce-1@mx.sender.example>\nDate: Tue, 3 Jun 2025 10:11:12 +0000\n\nYour message could not be delivered.\n"
		out, err := runTool(t, []byte(msg), sa, "-t", "--siteconfigpath="+dir)
		if err != nil {
			t.Fatalf("spamassassin: %v\n%s", err, out)
		}
		if got := strings.Contains(out, "BLOWBACK_BACKSCATTER "); got != c.hit {
			t.Errorf("client %s sender <%s>: BLOWBACK_BACKSCATTER %v, want %v\n%s", c.client, c.sender, got, c.hit, out)
		}
	}

	// A server that refuses SpamAssassin's queries with the "public
	// resolver" code (127.255.255.254, dnsd policy.go): no rule may take it
	// for a listing, though 192.0.2.99 is listed.
	refuser := dnsd.New(dnsd.Config{Policy: dnsd.Policy{Refuse: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, Answer: dnsd.AnswerCode}},
		n.cur, nil, nil)
	if err := refuser.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer refuser.Stop(context.Background())
	if r, err := dnsd.Check(ctx, refuser.Addr().String(), n.cfg.Zone, netip.MustParseAddr("192.0.2.99")); err != nil || r.Listed ||
		len(r.Codes) != 1 || r.Codes[0] != dnsd.CodePublicResolver {
		t.Fatalf("refusing server answers %+v, %v; want the code %v, not listed", r, err, dnsd.CodePublicResolver)
	}
	local = fmt.Sprintf("dns_available yes\ndns_server %s\ntrusted_networks 127.0.0.0/8\nuse_razor2 0\nuse_pyzor 0\nskip_uribl_checks 1\n", refuser.Addr())
	writeFile(t, filepath.Join(dir, "zz-test.cf"), local, 0o644)
	msg := "Return-Path: <>\n" +
		"Received: from mx.sender.example (mx.sender.example [192.0.2.99])\n\tby mx.test.example (Postfix) with ESMTP id 1;\n\tTue, 3 Jun 2025 10:11:12 +0000\n" +
		"From: MAILER-DAEMON@mx.sender.example\nTo: user@test.example\nSubject: Undelivered Mail Returned to Sender\n" +
		"Message-ID: <bounce-2@mx.sender.example>\nDate: Tue, 3 Jun 2025 10:11:12 +0000\n\nYour message could not be delivered.\n"
	out, err = runTool(t, []byte(msg), sa, "-t", "--siteconfigpath="+dir)
	if err != nil {
		t.Fatalf("spamassassin: %v\n%s", err, out)
	}
	if strings.Contains(out, "BLOWBACK_BACKSCATTER") {
		t.Errorf("the refusal code 127.255.255.254 scored as a listing:\n%s", out)
	}
}

// rspamdConfig makes dir an rspamd configuration: Debian's (/etc/rspamd)
// with the snippets of deploy/consumers/rspamd/.
func rspamdConfig(t *testing.T, dir string) {
	t.Helper()
	if out, err := exec.Command("cp", "-r", "/etc/rspamd/.", dir).CombinedOutput(); err != nil {
		t.Fatalf("copy /etc/rspamd: %v %s", err, out)
	}
	for _, f := range []string{"groups.conf"} {
		b := readDeploy(t, "consumers/rspamd/"+f)
		os.WriteFile(filepath.Join(dir, "local.d", f), b, 0o644)
	}
	lua, _ := os.ReadFile(deployFile(t, "consumers/rspamd/rspamd.local.lua"))
	os.WriteFile(filepath.Join(dir, "rspamd.local.lua"), lua, 0o644)
}

// TestRspamdSnippet checks deploy/consumers/rspamd/ with rspamadm.
func TestRspamdSnippet(t *testing.T) {
	rspamadm := testenv.Tool(t, "rspamadm")
	dir := t.TempDir()
	rspamdConfig(t, dir)
	out, err := runTool(t, nil, rspamadm, "--var=LOCAL_CONFDIR="+dir, "configtest", "-c", filepath.Join(dir, "rspamd.conf"))
	if err != nil || !strings.Contains(out, "syntax OK") || strings.Contains(out, "blowback") {
		// rspamadm names the rule only when something is wrong with it
		// ("invalid config for blowback: ..., RBL is DISABLED").
		t.Errorf("rspamadm configtest: %v\n%s", err, out)
	}
}
