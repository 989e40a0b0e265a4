package main

import (
	"fmt"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/blowback-dnsbl/blowback/internal/testenv"
	"github.com/blowback-dnsbl/blowback/web"
)

// liveExim is Exim from the unpacked Debian package, run by root in its own
// mount namespace where /etc/passwd and /etc/group name its compiled-in
// user (Debian-exim, mapped to nobody): nothing is installed on the host.
type liveExim struct {
	dir, bin, conf string
	port, trapPort int
	daemon         *testenv.Group
}

func newLiveExim(t *testing.T, trapAddr string, smtpPort int) *liveExim {
	t.Helper()
	testenv.Tool(t, "unshare")
	testenv.NeedRoot(t, "the Exim test needs root (a mount namespace for Exim's user)")
	dir := t.TempDir()
	testenv.OpenDirs(dir)
	// The Exim .deb files where testenv.EximBinary looks for them
	// (testenv.EximDebDirs: $BLOWBACK_EXIM_DEBS first, where .ci/run
	// downloads them).
	debs := testenv.EximDebs(t, "exim4-base", "exim4-daemon-light")
	if debs == nil {
		testenv.Missing(t, fmt.Sprintf("no Exim .debs (exim4-base, exim4-daemon-light) in %s; set BLOWBACK_EXIM_DEBS or run .ci/run",
			strings.Join(testenv.EximDebDirs(t), ", ")))
	}
	testenv.Unpack(t, dir, debs...)
	_, port, _ := net.SplitHostPort(trapAddr)
	e := &liveExim{dir: dir, bin: filepath.Join(dir, "usr", "sbin", "exim4"), conf: filepath.Join(dir, "exim.conf"), port: smtpPort}
	e.trapPort, _ = strconv.Atoi(port)
	// Exim's user: the host's Debian-exim when there is one, else nobody
	// under that name in the namespace's passwd and group.
	passwd, _ := os.ReadFile("/etc/passwd")
	group, _ := os.ReadFile("/etc/group")
	uid, gid := 65534, 65534
	if u, g, err := testenv.UserIDs("Debian-exim"); err == nil {
		uid, gid = u, g
	} else {
		passwd = append(passwd, "Debian-exim:x:65534:65534::/nonexistent:/usr/sbin/nologin\n"...)
	}
	if _, err := user.LookupGroup("Debian-exim"); err != nil {
		group = append(group, fmt.Sprintf("Debian-exim:x:%d:\n", gid)...)
	}
	os.WriteFile(filepath.Join(dir, "passwd"), passwd, 0o644)
	os.WriteFile(filepath.Join(dir, "group"), group, 0o644)
	for _, d := range []string{"spool", "log"} {
		os.Mkdir(filepath.Join(dir, d), 0o750)
		os.Chown(filepath.Join(dir, d), uid, gid)
	}
	return e
}

// configure writes the configuration: ex.test is accepted for any local
// part (no routers for it: unknown users bounce after accepting) unless
// verify is set (require verify = recipient in the RCPT ACL, the fix);
// the trap domain is routed to the trap, sent from 127.0.0.21.
func (e *liveExim) configure(t *testing.T, verify bool) {
	t.Helper()
	rcpt := "  accept domains = +local_domains\n"
	if verify {
		rcpt = "  require verify = recipient\n" + rcpt
	}
	conf := fmt.Sprintf(`exim_path = %[1]s
primary_hostname = mx.ex.test
domainlist local_domains = ex.test
daemon_smtp_ports = %[2]d
local_interfaces = 127.0.0.1
spool_directory = %[3]s/spool
log_file_path = %[3]s/log/%%slog
acl_smtp_rcpt = acl_check_rcpt
keep_environment =
host_lookup =
rfc1413_hosts =
begin acl
acl_check_rcpt:
%[4]s  deny message = relay not permitted
begin routers
trap:
  driver = manualroute
  domains = trap.blowback.test
  transport = to_trap
  route_list = * 127.0.0.1
  self = send
begin transports
to_trap:
  driver = smtp
  port = %[5]d
  interface = 127.0.0.21
  hosts_avoid_tls = *
begin retry
* * F,1m,2s
`, e.bin, e.port, e.dir, rcpt, e.trapPort)
	writeFile(t, e.conf, conf, 0o644)
}

// start runs the daemon in the foreground (-bdf) with a queue runner.
func (e *liveExim) start(t *testing.T) {
	t.Helper()
	cmd := testenv.BindMounted(t, map[string]string{"/etc/passwd": filepath.Join(e.dir, "passwd"), "/etc/group": filepath.Join(e.dir, "group")},
		e.bin, "-C", e.conf, "-bdf", "-q2s")
	e.daemon = testenv.StartGroup(t, cmd[0], cmd[1:]...)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(e.port))
	if err := testenv.WaitGreetingFrom(addr, "Exim"); err != nil {
		t.Fatalf("no Exim greeting on %s: %v\n%s", addr, err, e.log())
	}
}

// reload restarts the daemon with the new configuration.
func (e *liveExim) reload(t *testing.T, verify bool) {
	t.Helper()
	e.configure(t, verify)
	e.stop()
	e.start(t)
}

func (e *liveExim) stop() {
	if e.daemon != nil {
		e.daemon.Stop() // the daemon and its children, by process group
	}
}

func (e *liveExim) log() string {
	s := readFile(filepath.Join(e.dir, "log", "mainlog")) + readFile(filepath.Join(e.dir, "log", "paniclog"))
	if e.daemon != nil {
		s += e.daemon.Out.String()
	}
	return s
}

// TestEximAdviceAndSelfTest: the real Exim from the Debian package,
// accepting mail for unknown users and bouncing it, backscatters into the
// trap; the lookup names Exim and its fix (verify = recipient); a
// self-test fails, and after the fix passes and delists.
func TestEximAdviceAndSelfTest(t *testing.T) {
	const listed = "127.0.0.21"
	// Held until Exim starts: the node's listeners on :0 cannot get it (a
	// trap once did, and answered the test's mail in Exim's place).
	eximPort, release := testenv.ReservePort(t)
	n, base := selfTestNode(t, listed, "ex.test", eximPort)
	defer n.Stop()

	ex := newLiveExim(t, n.trap.Addr().String(), eximPort)
	ex.configure(t, false)
	release()
	ex.start(t)
	eximAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(eximPort))
	if err := smtpAttempt(eximAddr, "127.0.0.1", "victim@trap.blowback.test", "no-such-user@ex.test"); err != nil {
		t.Fatalf("misconfigured Exim refused the message: %v\n%s", err, ex.log())
	}
	waitMTA(t, ex.log, time.Minute, "Exim's bounce to list "+listed, func() bool { return check(t, n.dns.Addr().String(), listed).Listed })
	var l web.Lookup
	getJSON(t, base+"/api/v1/lookup/"+listed, &l)
	if len(l.Advice) == 0 || l.Advice[0].MTA != "exim" || !l.Advice[0].Known || l.Advice[0].Kind != "bounce" {
		t.Fatalf("advice for the real Exim bounce: %+v", l.Advice)
	}
	if l.Advice[0].Guessed {
		t.Log("the classifier did not name Exim; the fallback did")
	}
	page := getBody(t, base+"/lookup?ip="+listed)
	for _, s := range []string{"Sent by <strong>Exim</strong>", "require verify = recipient", "no_more"} {
		if !strings.Contains(page, s) {
			t.Errorf("lookup page lacks %q", s)
		}
	}

	// Self-test: fails while Exim bounces, passes once it verifies recipients.
	res := runSelfTest(t, ex.log, base, listed, "ex.test")
	if res.Verdict != "fail" || res.Probe != "accepted" || len(res.Replies) == 0 || res.Replies[0].Kind != "bounce" {
		t.Fatalf("misconfigured Exim: %+v\n%s", res, ex.log())
	}
	ex.reload(t, true)
	if err := smtpAttempt(eximAddr, "127.0.0.1", "victim@trap.blowback.test", "no-such-user@ex.test"); err == nil || !strings.Contains(err.Error(), "550") {
		t.Fatalf("fixed Exim: %v, want 550 at RCPT", err)
	}
	res = runSelfTest(t, ex.log, base, listed, "ex.test")
	if res.Verdict != "pass" || res.Probe != "rejected_rcpt" || len(res.Delisted) != 1 || res.Delisted[0] != listed+"/32" {
		t.Fatalf("fixed Exim: %+v\n%s", res, ex.log())
	}
	if check(t, n.dns.Addr().String(), listed).Listed {
		t.Error("still listed after a passed self-test")
	}
}
