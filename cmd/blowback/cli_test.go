package main

import (
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// oneLineErr fails unless stderr is one line naming the command.
func oneLineErr(t *testing.T, cmd, stderr string) {
	t.Helper()
	if strings.Count(stderr, "\n") != 1 || !strings.HasPrefix(stderr, "blowback "+cmd) {
		t.Errorf("%s: stderr is not one line naming the command: %q", cmd, stderr)
	}
}

func TestEverySubcommandHasHelp(t *testing.T) {
	for _, c := range commands() {
		for _, h := range []string{"-h", "--help"} {
			code, out, errs := runCLI(t, c.name, h)
			if code != 0 || out != "" || !strings.HasPrefix(errs, "usage: blowback "+c.name) {
				t.Errorf("%s %s: exit %d, stdout %q, stderr %q", c.name, h, code, out, errs)
			}
		}
	}
	if code, _, errs := runCLI(t, "-h"); code != 0 || !strings.Contains(errs, "import") {
		t.Errorf("blowback -h: %d %q", code, errs)
	}
}

func TestBadUsageExits2(t *testing.T) {
	for _, c := range commands() {
		code, _, errs := runCLI(t, c.name, "--no-such-flag")
		if code != 2 {
			t.Errorf("%s --no-such-flag: exit %d, want 2", c.name, code)
		}
		oneLineErr(t, c.name, errs)
	}
	for _, args := range [][]string{
		{"check"},
		{"check", "not-an-ip"},
		{"check", "127.0.0.2", "--timeout", "soon"},
		{"explain"},
		{"explain", "1.2.3.4", "5.6.7.8"},
		{"list", "192.0.2.1"}, // no --reason
		{"delist", "192.0.2.1", "--reason", " "},
		{"list", "192.0.2.1", "--reason", "x", "--kinds", "nonsense"},
		{"export", "--format", "xml", "--out", "x"},
		{"export", "--format", "bind"}, // no --out
		{"export", "--out", "x", "extra"},
		{"import"},
		{"import", "--mbox", "x", "--hop", "0"},
		{"import", "--mbox", "x", "--received-regexp", "("},
		{"import", "--mbox", "x", "--received-regexp", "no group"},
		{"classify"},
		{"run", "--config", "/nonexistent/blowback.toml"},
	} {
		code, _, errs := runCLI(t, args...)
		if code != 2 {
			t.Errorf("%q: exit %d, want 2 (%s)", args, code, errs)
		}
		oneLineErr(t, args[0], errs)
	}
	if code, _, errs := runCLI(t, "frobnicate"); code != 2 || strings.Count(errs, "\n") != 1 {
		t.Errorf("unknown command: %d %q", code, errs)
	}
}

func TestConfigErrorIsOneLine(t *testing.T) {
	p := filepath.Join(t.TempDir(), "bad.toml")
	writeFile(t, p, "zone = \"\"\ntrap_domains = []\nlog_format = \"xml\"\n", 0o644)
	code, _, errs := runCLI(t, "explain", "192.0.2.1", "--config", p)
	if code != 2 || !strings.Contains(errs, "zone must not be empty") || !strings.Contains(errs, "log_format") {
		t.Errorf("exit %d %q", code, errs)
	}
	oneLineErr(t, "explain", errs)
}

func TestCheckExitCodes(t *testing.T) {
	n := startNode(t, t.TempDir())
	defer n.Stop()
	dns := n.dns.Addr().String()
	if code, out, errs := runCLI(t, "check", "127.0.0.2", "--server", dns); code != 0 || !strings.Contains(out, "127.0.0.2 listed in bl.blowback.test: 127.0.0.2 127.0.0.3 127.0.0.4 127.0.0.5") {
		t.Errorf("listed: %d %q %q", code, out, errs)
	}
	if code, out, _ := runCLI(t, "check", "127.0.0.1", "--server", dns); code != 1 || !strings.Contains(out, "not listed") {
		t.Errorf("not listed: %d %q", code, out)
	}
	if code, out, _ := runCLI(t, "check", "127.0.0.1", "--server", dns, "-q"); code != 1 || out != "" {
		t.Errorf("-q: %d %q", code, out)
	}
	// A server that does not answer: a closed UDP port.
	pc, _ := net.ListenPacket("udp", "127.0.0.1:0")
	dead := pc.LocalAddr().String()
	pc.Close()
	code, _, errs := runCLI(t, "check", "127.0.0.2", "--server", dead, "--timeout", "2s")
	if code != 2 {
		t.Errorf("no server: exit %d %q", code, errs)
	}
	oneLineErr(t, "check", errs)
	if code, _, _ := runCLI(t, "check", "127.0.0.2", "--server", dns, "--zone", "other.example"); code != 2 {
		t.Errorf("out of zone (REFUSED): exit %d, want 2", code)
	}
}

// TestAdminCommands runs explain, list, delist and export twice: on the
// store directly, and through a running node's API.
func TestAdminCommands(t *testing.T) {
	dir := newDataDir(t)
	exports := t.TempDir()
	flow := func(t *testing.T, extra ...string) {
		args := func(a ...string) []string { return append(a, extra...) }
		code, out, errs := runCLI(t, args("explain", "192.0.2.55")...)
		if code != 0 || !strings.Contains(out, "192.0.2.55 (unit 192.0.2.55/32): NOT LISTED") {
			t.Fatalf("explain unlisted: %d %q %q", code, out, errs)
		}
		code, out, errs = runCLI(t, args("list", "192.0.2.55", "--reason", "seen in our logs", "--who", "tester", "--kinds", "bounce,challenge")...)
		if code != 0 || !strings.Contains(out, "192.0.2.55: list done; listed=true") {
			t.Fatalf("list: %d %q %q", code, out, errs)
		}
		code, out, _ = runCLI(t, args("explain", "192.0.2.55", "--json")...)
		var x struct {
			Listed  bool     `json:"listed"`
			Codes   []string `json:"codes"`
			Actions []struct {
				Who    string `json:"who"`
				Reason string `json:"reason"`
			} `json:"actions"`
		}
		if code != 0 || json.Unmarshal([]byte(out), &x) != nil || !x.Listed || strings.Join(x.Codes, " ") != "127.0.0.2 127.0.0.5" ||
			len(x.Actions) == 0 || x.Actions[len(x.Actions)-1].Who != "admin:tester" {
			t.Errorf("explain after list: %d %s", code, out)
		}
		for _, f := range []string{"rbldnsd", "bind", "plain"} {
			p := filepath.Join(exports, "zone."+f)
			code, _, errs := runCLI(t, args("export", "--format", f, "--out", p)...)
			b, _ := os.ReadFile(p)
			if code != 0 || !strings.Contains(string(b), "192.0.2.55") && !strings.Contains(string(b), "55.2.0.192") {
				t.Errorf("export %s: %d %q\n%s", f, code, errs, b)
			}
		}
		code, out, _ = runCLI(t, args("export", "--format", "plain", "--out", "-")...)
		if code != 0 || !strings.Contains(out, "192.0.2.55") {
			t.Errorf("export to stdout: %d %q", code, out)
		}
		code, out, errs = runCLI(t, args("delist", "192.0.2.55", "--reason", "fixed")...)
		if code != 0 || !strings.Contains(out, "listed=false") {
			t.Errorf("delist: %d %q %q", code, out, errs)
		}
		code, out, _ = runCLI(t, args("explain", "192.0.2.55")...)
		if code != 0 || !strings.Contains(out, "NOT LISTED") || !strings.Contains(out, "delist") {
			t.Errorf("explain after delist: %d %q", code, out)
		}
	}
	t.Run("store", func(t *testing.T) { flow(t, "--data", dir) })

	n := startNode(t, dir)
	defer n.Stop()
	api := "http://" + n.web.Addr().String()
	t.Run("api", func(t *testing.T) { flow(t, "--data", dir, "--server", api) })

	// Through the API, a wrong token is one line and exit 1.
	code, _, errs := runCLI(t, "list", "192.0.2.56", "--reason", "x", "--data", dir, "--server", api, "--token", "wrong")
	if code != 1 || !strings.Contains(errs, "401") || !strings.Contains(errs, "--token") {
		t.Errorf("wrong token: %d %q", code, errs)
	}
	oneLineErr(t, "list", errs)
	n.Stop()
	// No store and no node: one line saying both.
	code, _, errs = runCLI(t, "explain", "192.0.2.55", "--data", t.TempDir(), "--server", api)
	if code != 1 || !strings.Contains(errs, "no store") || !strings.Contains(errs, "no node answers") {
		t.Errorf("nothing reachable: %d %q", code, errs)
	}
	oneLineErr(t, "explain", errs)
}

func TestClassifyExitCodes(t *testing.T) {
	p := filepath.Join(t.TempDir(), "dsn.eml")
	writeFile(t, p, testDSN, 0o644)
	code, out, _ := runCLI(t, "classify", "--json", p)
	var r classifyOutput
	if code != 0 || json.Unmarshal([]byte(out), &r) != nil || r.Kind != "bounce" || !r.Backscatter {
		t.Errorf("classify: %d %s", code, out)
	}
	code, _, errs := runCLI(t, "classify", p, filepath.Join(t.TempDir(), "missing.eml"))
	if code != 1 || !strings.Contains(errs, "1 of 2 files could not be read") {
		t.Errorf("missing file: %d %q", code, errs)
	}
}
