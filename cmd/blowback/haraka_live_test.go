package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/blowback-dnsbl/blowback/dnsd"
	"github.com/blowback-dnsbl/blowback/internal/testenv"
	"github.com/blowback-dnsbl/blowback/store"
)

// harakaDir is where Haraka is installed (node_modules/Haraka):
// $BLOWBACK_HARAKA, else ~/.cache/blowback-haraka (.ci/run installs the
// pinned version there with npm).
func harakaDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("BLOWBACK_HARAKA")
	if dir == "" {
		home, _ := os.UserHomeDir()
		dir = filepath.Join(home, ".cache", "blowback-haraka")
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "Haraka", "bin", "haraka")); err != nil {
		testenv.Missing(t, "Haraka not installed in "+dir+" (npm install --prefix "+dir+" Haraka; set BLOWBACK_HARAKA, or run .ci/run)")
	}
	return dir
}

// startHaraka runs Haraka from dir with a configuration root of its own:
// the given plugins, recipients at ex.test, accepted mail discarded.
func startHaraka(t *testing.T, node, dir, listen string, plugins []string, files map[string]string) *testenv.Output {
	t.Helper()
	root := filepath.Join(t.TempDir(), "haraka")
	bin := filepath.Join(dir, "node_modules", "Haraka", "bin", "haraka")
	// haraka -i lays out a configuration root with the default files.
	if out, err := exec.Command(node, bin, "-i", root).CombinedOutput(); err != nil {
		t.Fatalf("haraka -i: %v\n%s", err, out)
	}
	files["config/smtp.ini"] = "[main]\nlisten=" + listen + "\n"
	// The PROXY protocol from 127.0.0.2 only: the test's clients (see
	// harakaAttempt); 127.0.0.1 gets the greeting at once (waitBanner).
	conn, err := os.ReadFile(filepath.Join(root, "config", "connection.ini"))
	if err != nil || !strings.Contains(string(conn), "\nhosts[] =\n") {
		t.Fatalf("connection.ini of haraka -i: %v, no [haproxy] hosts[] line", err)
	}
	files["config/connection.ini"] = strings.Replace(string(conn), "\nhosts[] =\n", "\nhosts[] = "+harakaProxy+"\n", 1)
	files["config/plugins"] = strings.Join(append(plugins, "rcpt_to.in_host_list", "queue/discard"), "\n") + "\n"
	files["config/host_list"] = "ex.test\n"
	files["config/me"] = "mx.ex.test\n"
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(root, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out := &testenv.Output{}
	cmd := exec.Command(node, bin, "-c", root)
	cmd.Env = append(os.Environ(), "YES_REALLY_DO_DISCARD=1")
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("haraka on %s:\n%s", listen, out.String())
		}
	})
	waitBanner(t, listen)
	return out
}

// harakaProxy is the address the test's clients connect from; Haraka takes
// the client address from their PROXY protocol header.
const harakaProxy = "127.0.0.2"

// harakaAttempt is smtpAttempt for a client at src as Haraka sees it: it
// connects from harakaProxy and says PROXY TCP4 src first (HAProxy protocol
// v1). Haraka and its dns-list plugin treat addresses on the machine's own
// interfaces (loopback included) as local and skip the lookup; src is an
// address of no interface.
func harakaAttempt(addr, src, from, rcpt string) error {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(harakaProxy)}, Timeout: 10 * time.Second}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		return err
	}
	host, port, _ := net.SplitHostPort(addr)
	if _, err := fmt.Fprintf(conn, "PROXY TCP4 %s %s 40000 %s\r\n", src, host, port); err != nil {
		conn.Close()
		return err
	}
	return smtpSession(conn, from, rcpt)
}

// TestHarakaDNSBL runs the real Haraka (npm) against blowback's zone in a
// network namespace of its own (its resolver asks 127.0.0.1:53). Haraka's
// dns-list plugin skips loopback, RFC 1918, TEST-NET and local-interface
// clients, so the clients are 198.18.0.10 (listed) and .11 (not),
// benchmark-range addresses on no interface, handed to Haraka with the
// PROXY protocol (harakaAttempt).
//
// The stock dns-list plugin rejects a listed client at connect, whatever
// the sender, and rejects every client when the list answers with the
// refusal code 127.255.255.254: it is no safe-mode consumer.
// deploy/consumers/haraka/blowback.js is: it asks only for null and
// postmaster senders, rejects at MAIL FROM on 127.0.0.2-5 with the TXT, and
// lets the refusal code through.
func TestHarakaDNSBL(t *testing.T) {
	node := testenv.Tool(t, "node")
	dir := harakaDir(t)
	if !testenv.InNetNamespace(t, 3*time.Minute) {
		return
	}
	const listed, unlisted, server = "198.18.0.10", "198.18.0.11", "127.0.0.1"
	cfg := defaultConfig()
	cfg.Data = t.TempDir()
	cfg.SMTP, cfg.DNS, cfg.HTTP = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	n := newNode(cfg, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := n.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer n.Stop()
	plain := startConsumerDNS(t, n.cur, "127.0.0.1:53", dnsd.Policy{})
	if _, err := n.eng.Act(ctx, store.Action{Prefix: netip.MustParsePrefix(listed + "/32"), Op: store.OpList, Who: "test", Reason: "test"}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "listing of "+listed, func() bool { return check(t, "127.0.0.1:53", listed).Listed })

	stock := net.JoinHostPort(server, "2525")
	startHaraka(t, node, dir, stock, []string{"dns-list"}, map[string]string{
		"config/dns-list.ini": "[main]\nzones=bl.blowback.test\nperiodic_checks=0\nsearch=all\n",
	})
	plugin, err := os.ReadFile(filepath.Join(testenv.Root(t), "deploy", "consumers", "haraka", "blowback.js"))
	if err != nil {
		t.Fatal(err)
	}
	ini, _ := os.ReadFile(filepath.Join(testenv.Root(t), "deploy", "consumers", "haraka", "blowback.ini"))
	safe := net.JoinHostPort(server, "2526")
	safeOut := startHaraka(t, node, dir, safe, []string{"blowback"}, map[string]string{
		"plugins/blowback.js": string(plugin), "config/blowback.ini": string(ini),
	})

	type attempt struct {
		addr, src, from string
		rejected        bool
	}
	try := func(what string, cases []attempt) {
		t.Helper()
		for _, c := range cases {
			err := harakaAttempt(c.addr, c.src, c.from, "user@ex.test")
			var se *smtp.SMTPError
			switch {
			case c.rejected && (!errors.As(err, &se) || se.Code/100 != 5):
				t.Errorf("%s: %s from %s <%s>: %v, want a 5xx rejection", what, c.addr, c.src, c.from, err)
			case c.rejected && c.addr == safe && (se.Code != 550 || !strings.Contains(se.Message, "lookup?ip="+c.src)):
				t.Errorf("%s: %s from %s: %d %q, want 550 at MAIL FROM with the TXT (lookup page)", what, c.addr, c.src, se.Code, se.Message)
			case !c.rejected && err != nil:
				t.Errorf("%s: %s from %s <%s>: %v, want accepted", what, c.addr, c.src, c.from, err)
			}
		}
	}
	try("listed", []attempt{
		// Stock dns-list: every sender of a listed client.
		{stock, listed, "alice@example.org", true},
		{stock, unlisted, "alice@example.org", false},
		// blowback.js, safe mode.
		{safe, listed, "", true},
		{safe, listed, "postmaster@bounce.example", true},
		{safe, listed, "alice@example.org", false},
		{safe, unlisted, "", false},
	})

	plain.stop()
	startConsumerDNS(t, n.cur, "127.0.0.1:53", refuseAll)
	checkRefused(t, "127.0.0.1:53", listed)
	try("refusal code", []attempt{
		// The stock plugin takes 127.255.255.254 for a listing: mail lost.
		{stock, unlisted, "", true},
		{safe, listed, "", false},
		{safe, unlisted, "postmaster@bounce.example", false},
	})
	if !strings.Contains(safeOut.String(), "127.255.255.254 is no listing code") {
		t.Errorf("blowback.js did not log the refusal code it ignored")
	}
}
