package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/blowback-dnsbl/blowback/dnsd"
	"github.com/blowback-dnsbl/blowback/internal/testenv"
)

// TestPostfixRBL runs a real Postfix whose reject_rbl_client resolves
// through blowback's DNS server, and connects to it from listed and
// unlisted loopback addresses.
//
// Postfix asks the system resolver, which reads /etc/resolv.conf and
// talks to port 53. So the test re-runs itself inside new network, mount
// and PID namespaces (unshare(1), as root): a private loopback where
// blowback's dnsd binds 127.0.0.1:53, a resolv.conf bind-mounted over
// /etc/resolv.conf that only this namespace sees, and a PID namespace
// whose end kills every process started in it (Postfix's daemons too).
func TestPostfixRBL(t *testing.T) {
	testenv.Tool(t, "postfix")
	if _, err := user.Lookup("postfix"); err != nil {
		testenv.Missing(t, "no postfix user (apt-get install postfix)")
	}
	if !testenv.InNetNamespace(t, 3*time.Minute) {
		return
	}
	postfixInNamespace(t, t.TempDir())
}

func postfixInNamespace(t *testing.T, tmp string) {
	os.Chmod(tmp, 0o755)
	for d := filepath.Dir(tmp); d != "/" && d != os.TempDir(); d = filepath.Dir(d) {
		os.Chmod(d, 0o755) // the postfix user walks into the queue directory
	}

	// blowback; its zone served on 127.0.0.1:53 (where the system
	// resolver asks) by a server the test can swap for a refusing one.
	cfg := defaultConfig()
	cfg.Data = filepath.Join(tmp, "blowback")
	cfg.SMTP, cfg.DNS, cfg.HTTP = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	n := newNode(cfg, slog.New(slog.DiscardHandler))
	sctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	err := n.Start(sctx)
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	defer n.Stop()
	plain := startConsumerDNS(t, n.cur, "127.0.0.1:53", dnsd.Policy{})
	// 127.0.0.10 gets listed the real way: a bounce to the trap.
	if err := sendFrom(t, n.trap.Addr().String(), "127.0.0.10", "", "someone@trap.blowback.test", testDSN); err != nil {
		t.Fatal(err)
	}
	eventually(t, "listing of 127.0.0.10", func() bool { return check(t, "127.0.0.1:53", "127.0.0.10").Listed })

	// A throwaway Postfix: its own config, queue and data directories,
	// no chroot, the safe-mode snippet on port 25 and a plain
	// reject_rbl_client on port 26.
	pf := filepath.Join(tmp, "postfix")
	for _, d := range []string{"etc", "spool", "lib"} {
		os.MkdirAll(filepath.Join(pf, d), 0o755)
	}
	pu, _ := user.Lookup("postfix")
	uid, _ := strconv.Atoi(pu.Uid)
	os.Chown(filepath.Join(pf, "lib"), uid, -1)
	snippet, err := os.ReadFile(filepath.Join(testenv.Root(t), "deploy", "consumers", "postfix-main.cf"))
	if err != nil {
		t.Fatal(err)
	}
	mainCF := fmt.Sprintf(`compatibility_level = 3.6
queue_directory = %[1]s/spool
data_directory = %[1]s/lib
maillog_file = %[1]s/maillog
maillog_file_prefixes = %[1]s
mail_owner = postfix
myhostname = mx.test.example
mydomain = test.example
mydestination = test.example
local_recipient_maps =
mynetworks = 192.0.2.250/32
inet_protocols = ipv4
smtpd_peername_lookup = no
default_transport = discard
local_transport = discard
`, pf) + string(snippet)
	masterCF := `127.0.0.1:25 inet n - n - - smtpd
127.0.0.1:26 inet n - n - - smtpd
  -o smtpd_recipient_restrictions=reject_unauth_destination,reject_rbl_client,bl.blowback.test
cleanup   unix n - n - 0 cleanup
qmgr      unix n - n 300 1 qmgr
rewrite   unix - - n - - trivial-rewrite
bounce    unix - - n - 0 bounce
defer     unix - - n - 0 bounce
trace     unix - - n - 0 bounce
verify    unix - - n - 1 verify
flush     unix n - n 1000? 0 flush
proxymap  unix - - n - - proxymap
showq     unix n - n - - showq
error     unix - - n - - error
retry     unix - - n - - error
discard   unix - - n - - discard
anvil     unix - - n - 1 anvil
scache    unix - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
`
	os.WriteFile(filepath.Join(pf, "etc", "main.cf"), []byte(mainCF), 0o644)
	os.WriteFile(filepath.Join(pf, "etc", "master.cf"), []byte(masterCF), 0o644)
	postfix := testenv.Tool(t, "postfix")
	run := func(args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		out, err := exec.CommandContext(ctx, postfix, append([]string{"-c", filepath.Join(pf, "etc")}, args...)...).CombinedOutput()
		return string(out), err
	}
	if out, err := run("check"); err != nil {
		t.Fatalf("postfix check: %v\n%s\n%s", err, out, readFile(filepath.Join(pf, "maillog")))
	}
	if out, err := run("start"); err != nil {
		t.Fatalf("postfix start: %v\n%s\n%s", err, out, readFile(filepath.Join(pf, "maillog")))
	}
	defer func() {
		run("stop")
		if t.Failed() {
			t.Logf("postfix log:\n%s", readFile(filepath.Join(pf, "maillog")))
		}
	}()
	waitBanner(t, "127.0.0.1:25")
	waitBanner(t, "127.0.0.1:26")

	for _, c := range []struct {
		port, src, from string
		rejected        bool
	}{
		// Safe mode: only null and postmaster senders are checked.
		{"25", "127.0.0.2", "", true},
		{"25", "127.0.0.2", "postmaster@bounce.example", true},
		{"25", "127.0.0.2", "alice@example.org", false},
		{"25", "127.0.0.10", "", true},
		{"25", "127.0.0.11", "", false},
		{"25", "127.0.0.1", "", false},
		// Plain reject_rbl_client: every sender.
		{"26", "127.0.0.2", "alice@example.org", true},
		{"26", "127.0.0.10", "alice@example.org", true},
		{"26", "127.0.0.11", "alice@example.org", false},
	} {
		err := smtpAttempt("127.0.0.1:"+c.port, c.src, c.from, "user@test.example")
		var se *smtp.SMTPError
		switch {
		case c.rejected && (!errors.As(err, &se) || se.Code != 554 || !strings.Contains(se.Message, "blocked using bl.blowback.test")):
			t.Errorf("port %s from %s <%s>: %v, want 554 blocked using bl.blowback.test", c.port, c.src, c.from, err)
		case c.rejected && !strings.Contains(se.Message, "lookup?ip="+c.src):
			t.Errorf("port %s from %s: the reply lacks the TXT with the lookup page: %q", c.port, c.src, se.Message)
		case !c.rejected && err != nil:
			t.Errorf("port %s from %s <%s>: %v, want accepted", c.port, c.src, c.from, err)
		}
	}

	// The list refuses Postfix's resolver (public resolver, over quota)
	// with the code 127.255.255.254: the snippet's 127.0.0.[2..5] ignores
	// it, a bounce gets through; the plain reject_rbl_client on port 26
	// takes it for a listing and rejects everyone, which shows Postfix did
	// see the code. The clients are addresses not asked about before: an
	// smtpd process keeps the DNSBL replies it got for its lifetime.
	plain.stop()
	startConsumerDNS(t, n.cur, "127.0.0.1:53", refuseAll)
	checkRefused(t, "127.0.0.1:53", "127.0.0.12")
	if err := smtpAttempt("127.0.0.1:25", "127.0.0.12", "", "user@test.example"); err != nil {
		t.Errorf("refusal code, safe mode: %v, want accepted (the code is no listing)", err)
	}
	var se *smtp.SMTPError
	if err := smtpAttempt("127.0.0.1:26", "127.0.0.13", "alice@example.org", "user@test.example"); !errors.As(err, &se) || se.Code != 554 {
		t.Errorf("refusal code, plain reject_rbl_client: %v; want 554 (an unfiltered lookup reads the code as listed)", err)
	}
}

func readFile(p string) string {
	b, _ := os.ReadFile(p)
	return string(b)
}

// waitBanner waits until an SMTP server greets on addr.
func waitBanner(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.SetDeadline(time.Now().Add(5 * time.Second))
			b := make([]byte, 4)
			_, err = io.ReadFull(c, b)
			c.Close()
			if err == nil && string(b[:3]) == "220" {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no SMTP greeting on %s: %v", addr, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// smtpAttempt sends one message from the local address src; it returns the
// first error (a rejection is an *smtp.SMTPError).
func smtpAttempt(addr, src, from, rcpt string) error {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 10 * time.Second}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		return err
	}
	return smtpSession(conn, from, rcpt)
}

// smtpSession sends one message over conn (see smtpAttempt).
func smtpSession(conn net.Conn, from, rcpt string) error {
	conn.SetDeadline(time.Now().Add(time.Minute))
	c := smtp.NewClient(conn)
	defer c.Close()
	if err := c.Hello("client.example"); err != nil {
		return err
	}
	if err := c.Mail(from, nil); err != nil {
		return err
	}
	if err := c.Rcpt(rcpt, nil); err != nil {
		return err
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	io.WriteString(w, "From: "+from+"\r\nTo: "+rcpt+"\r\nSubject: test\r\n\r\nhello\r\n")
	if err := w.Close(); err != nil {
		return err
	}
	return c.Quit()
}
