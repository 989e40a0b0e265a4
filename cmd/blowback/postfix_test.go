package main

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"golang.org/x/sys/unix"

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
	if os.Getenv("BLOWBACK_POSTFIX_NS") == "1" {
		postfixInNamespace(t)
		return
	}
	testenv.NeedPostfix(t)
	unshare := testenv.Tool(t, "unshare")
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	args := []string{"--mount", "--net", "--pid", "--fork", "--mount-proc", "--kill-child", "--",
		os.Args[0], "-test.run=^TestPostfixRBL$", "-test.count=1", "-test.timeout=3m"}
	if testing.Verbose() {
		args = append(args, "-test.v")
	}
	cmd := exec.CommandContext(ctx, unshare, args...)
	cmd.Env = append(os.Environ(), "BLOWBACK_POSTFIX_NS=1")
	out, err := cmd.CombinedOutput()
	t.Logf("in the namespace:\n%s", out)
	if err != nil {
		t.Fatalf("postfix test in a namespace: %v", err)
	}
	if !strings.Contains(string(out), "PASS") {
		t.Fatal("the test in the namespace did not pass")
	}
}

func postfixInNamespace(t *testing.T) {
	// The loopback of a new network namespace is down.
	if err := linkUp("lo"); err != nil {
		t.Fatalf("lo up: %v", err)
	}
	tmp := t.TempDir()
	resolv := filepath.Join(tmp, "resolv.conf")
	writeFile(t, resolv, "nameserver 127.0.0.1\noptions timeout:2 attempts:2\n", 0o644)
	if err := unix.Mount(resolv, "/etc/resolv.conf", "", unix.MS_BIND, ""); err != nil {
		t.Fatalf("bind-mount resolv.conf: %v", err)
	}

	// blowback, its DNS on 127.0.0.1:53.
	cfg := testConfig(filepath.Join(tmp, "blowback"))
	cfg.DNS = "127.0.0.1:53"
	n := startNodeConfig(t, cfg)
	defer n.Stop()
	// 127.0.0.10 gets listed the real way: a bounce to the trap.
	if err := sendFrom(t, n.trap.Addr().String(), "127.0.0.10", "", "someone@trap.blowback.test", testDSN); err != nil {
		t.Fatal(err)
	}
	eventually(t, "listing of 127.0.0.10", func() bool { return check(t, "127.0.0.1:53", "127.0.0.10").Listed })
	// 127.0.0.12 and .13 too, for the refusal checks at the end: Postfix
	// must not have looked them up before (smtpd caches DNSBL answers).
	for _, ip := range []string{"127.0.0.12", "127.0.0.13"} {
		if err := sendFrom(t, n.trap.Addr().String(), ip, "", "someone@trap.blowback.test", testDSN); err != nil {
			t.Fatal(err)
		}
		eventually(t, "listing of "+ip, func() bool { return check(t, "127.0.0.1:53", ip).Listed })
	}

	// A throwaway Postfix: its own config, queue and data directories,
	// no chroot, the safe-mode snippet on port 25 and a plain
	// reject_rbl_client on port 26.
	snippet := readDeploy(t, "consumers/postfix-main.cf")
	pf := testenv.NewPostfix(t)
	pf.Configure(t, []string{
		"myhostname = mx.test.example",
		"mydomain = test.example",
		"mydestination = test.example",
		"local_recipient_maps =",
		"mynetworks = 192.0.2.250/32",
		"inet_protocols = ipv4",
		"smtpd_peername_lookup = no",
		"default_transport = discard",
		"local_transport = discard",
		string(snippet),
	}, `127.0.0.1:25 inet n - n - - smtpd
127.0.0.1:26 inet n - n - - smtpd
  -o smtpd_recipient_restrictions=reject_unauth_destination,reject_rbl_client,bl.blowback.test
`)
	pf.Start(t, "127.0.0.1:25", "127.0.0.1:26")

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

	// The list refuses Postfix's queries (dnsd policy: a public resolver),
	// answering the code 127.255.255.254 or REFUSED: the safe-mode snippet
	// must not take either for a listing (of 127.0.0.12, 127.0.0.13, never
	// looked up by Postfix before).
	if err := n.dns.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		answer dnsd.Refusal
		src    string
	}{{dnsd.AnswerCode, "127.0.0.12"}, {dnsd.AnswerRefused, "127.0.0.13"}} {
		refuser := startConsumerDNS(t, n.cur, "127.0.0.1:53",
			dnsd.Policy{Refuse: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, Answer: c.answer})
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		r, err := dnsd.Check(ctx, "127.0.0.1:53", cfg.Zone, netip.MustParseAddr(c.src))
		cancel()
		switch {
		case c.answer == dnsd.AnswerCode && (err != nil || r.Listed || len(r.Codes) != 1 || r.Codes[0] != dnsd.CodePublicResolver):
			t.Errorf("the refusing server answers %+v, %v; want %v", r, err, dnsd.CodePublicResolver)
		case c.answer == dnsd.AnswerRefused && r.Rcode != "REFUSED":
			t.Errorf("the refusing server answers %+v, %v; want REFUSED", r, err)
		}
		if err := smtpAttempt("127.0.0.1:25", c.src, "", "user@test.example"); err != nil {
			t.Errorf("list answers %s: %s <> rejected: %v", map[dnsd.Refusal]string{dnsd.AnswerCode: "127.255.255.254", dnsd.AnswerRefused: "REFUSED"}[c.answer], c.src, err)
		}
		refuser.stop()
	}
}

// linkUp sets an interface up (SIOCSIFFLAGS), like `ip link set lo up`.
func linkUp(name string) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return err
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	return unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr)
}
