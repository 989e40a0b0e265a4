package main

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/blowback-dnsbl/blowback/dnsd"
	"github.com/blowback-dnsbl/blowback/internal/testenv"
	"github.com/blowback-dnsbl/blowback/store"
)

// TestRspamdLive runs the real rspamd with deploy/consumers/rspamd/ (its
// Debian configuration, the snippets in local.d, its resolver pointed at
// blowback) and scans a bounce with rspamc: a listed client with a null
// or postmaster sender gets RBL_BLOWBACK_BOUNCE, other senders and
// unlisted clients nothing; then the list refuses rspamd's queries with
// the code 127.255.255.254 and no RBL_BLOWBACK symbol fires.
// rspamd takes about a minute to start on a loaded machine (it compiles
// its TLD list and regexps); the test waits for it.
func TestRspamdLive(t *testing.T) {
	rspamd := testenv.Tool(t, "rspamd")
	rspamc := testenv.Tool(t, "rspamc")
	dir := t.TempDir()
	testenv.OpenDirs(dir)
	conf := filepath.Join(dir, "conf")
	rspamdConfig(t, conf)

	n := startNode(t, t.TempDir())
	defer n.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const listed = "198.18.0.10" // rspamd skips its local_addrs (loopback, RFC 1918)
	if _, err := n.eng.Act(ctx, store.Action{Prefix: netip.MustParsePrefix(listed + "/32"), Op: store.OpList, Who: "test", Reason: "test"}); err != nil {
		t.Fatal(err)
	}
	dnsAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(testenv.FreePort(t)))
	plain := startConsumerDNS(t, n.cur, dnsAddr, dnsd.Policy{})
	eventually(t, "listing of "+listed, func() bool { return check(t, dnsAddr, listed).Listed })

	normal := net.JoinHostPort("127.0.0.1", strconv.Itoa(testenv.FreePort(t)))
	controller := net.JoinHostPort("127.0.0.1", strconv.Itoa(testenv.FreePort(t)))
	for name, text := range map[string]string{
		"override.d/worker-normal.inc":     fmt.Sprintf("bind_socket = %q;\ncount = 1;\n", normal),
		"override.d/worker-controller.inc": fmt.Sprintf("bind_socket = %q;\ncount = 1;\n", controller),
		"override.d/worker-proxy.inc":      "enabled = false;\n",
		"override.d/logging.inc":           "type = \"console\";\nlevel = \"notice\";\n",
		"local.d/options.inc":              fmt.Sprintf("dns { nameserver = [%q]; timeout = 2s; retransmits = 2; }\n", dnsAddr),
	} {
		writeFile(t, filepath.Join(conf, name), text, 0o644)
	}
	args := []string{"-f", "-c", filepath.Join(conf, "rspamd.conf")}
	for _, v := range []string{"db", "run", "log"} {
		os.Mkdir(filepath.Join(dir, v), 0o755)
	}
	args = append(args, "--var=CONFDIR="+conf, "--var=LOCAL_CONFDIR="+conf, "--var=DBDIR="+filepath.Join(dir, "db"),
		"--var=RUNDIR="+filepath.Join(dir, "run"), "--var=LOGDIR="+filepath.Join(dir, "log"))
	if os.Geteuid() == 0 {
		uid, gid, err := testenv.UserIDs("_rspamd")
		if err != nil {
			testenv.Missing(t, "no _rspamd user (apt-get install rspamd)")
		}
		for _, v := range []string{"db", "run", "log"} {
			os.Chown(filepath.Join(dir, v), uid, gid)
		}
		args = append(args, "-u", "_rspamd", "-g", "_rspamd")
	}
	out := testenv.StartGroup(t, rspamd, args...).Out // the main process and its workers

	msg := filepath.Join(dir, "bounce.eml")
	os.WriteFile(msg, []byte("From: MAILER-DAEMON@mx.sender.example\nTo: user@test.example\nSubject: Undelivered Mail Returned to Sender\n"+
		"Message-ID: <bounce-1@mx.sender.example>\nDate: Tue, 3 Jun 2025 10:11:12 +0000\n\nYour message could not be delivered.\n"), 0o644)
	scan := func(ip, from string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		b, err := exec.CommandContext(ctx, rspamc, "-h", normal, "-t", "170", "--ip", ip, "--from", from, msg).CombinedOutput()
		if err != nil || !strings.Contains(string(b), "Symbol: ") {
			t.Fatalf("rspamc --ip %s --from %s: %v\n%s", ip, from, err, b)
		}
		return string(b)
	}
	// The first scan waits for rspamd to come up (rspamc connects, the
	// worker answers once it is ready).
	waitListening(t, "rspamd", normal, 4*time.Minute, out.String)
	for _, c := range []struct {
		ip, from, want string // want: the blowback symbol, or "" for none
	}{
		{listed, "<>", "RBL_BLOWBACK_BOUNCE"},
		{listed, "postmaster@bounce.example", "RBL_BLOWBACK_BOUNCE"},
		{listed, "alice@example.org", ""},
		{"198.18.0.11", "<>", ""},
	} {
		got := scan(c.ip, c.from)
		if c.want != "" && !strings.Contains(got, "Symbol: "+c.want+" ") || c.want == "" && listingSymbol(got) {
			t.Errorf("client %s sender %s: want %q\n%s", c.ip, c.from, c.want, got)
		}
	}

	plain.stop()
	startConsumerDNS(t, n.cur, dnsAddr, refuseAll)
	checkRefused(t, dnsAddr, "198.18.0.12")
	if got := scan("198.18.0.12", "<>"); listingSymbol(got) || !strings.Contains(got, "Symbol: RBL_BLOWBACK_REFUSED (0.00)[127.255.255.254]") {
		t.Errorf("refusal code 127.255.255.254: want RBL_BLOWBACK_REFUSED and no listing symbol\n%s", got)
	}
}

// listingSymbol reports whether rspamc's output has a blowback listing symbol.
func listingSymbol(out string) bool {
	for _, s := range []string{"BOUNCE", "AUTOREPLY", "CALLOUT", "CHALLENGE"} {
		if strings.Contains(out, "Symbol: RBL_BLOWBACK_"+s+" ") {
			return true
		}
	}
	return false
}
