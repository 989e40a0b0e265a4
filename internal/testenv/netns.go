package testenv

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// netnsEnv names the test a re-run child process runs in its namespaces.
const netnsEnv = "BLOWBACK_TEST_NETNS"

// InNetNamespace lets a test talk to a daemon that asks the system resolver
// (Postfix, Exim: glibc reads /etc/resolv.conf and talks to port 53).
//
// Called in the test, it re-runs the test binary for this test alone in new
// network, mount and PID namespaces (unshare(1), as root) and returns
// false: the caller returns, the outcome is the child's (its failure fails
// the test, its skip skips it). In that child it returns true, with the
// private loopback up and /etc/resolv.conf bind-mounted (seen only in the
// namespace) to name 127.0.0.1 alone: the test binds its DNS server to
// 127.0.0.1:53 and goes on. The PID namespace's end kills every process
// started in it.
func InNetNamespace(t *testing.T, timeout time.Duration) bool {
	t.Helper()
	if os.Getenv(netnsEnv) == t.Name() {
		if err := linkUp("lo"); err != nil {
			t.Fatalf("lo up: %v", err)
		}
		resolv := filepath.Join(t.TempDir(), "resolv.conf")
		os.WriteFile(resolv, []byte("nameserver 127.0.0.1\noptions timeout:2 attempts:2\n"), 0o644)
		if err := unix.Mount(resolv, "/etc/resolv.conf", "", unix.MS_BIND, ""); err != nil {
			t.Fatalf("bind-mount resolv.conf: %v", err)
		}
		return true
	}
	unshare := Tool(t, "unshare")
	if os.Geteuid() != 0 {
		Missing(t, "the test needs root (network, mount and PID namespaces)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout+time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, unshare, "--mount", "--net", "--pid", "--fork", "--mount-proc", "--kill-child", "--",
		os.Args[0], "-test.run=^"+regexp.QuoteMeta(t.Name())+"$", "-test.count=1", "-test.v", "-test.timeout="+timeout.String())
	cmd.Env = append(os.Environ(), netnsEnv+"="+t.Name())
	out, err := cmd.CombinedOutput()
	if i := strings.Index(string(out), "--- SKIP: "+t.Name()+" "); i >= 0 && err == nil {
		// The child skipped (a missing tool): so does the test, with the
		// child's reason (the line before its verdict).
		lines := strings.Split(strings.TrimSpace(string(out[:i])), "\n")
		t.Skip("in the namespace: " + strings.TrimSpace(lines[len(lines)-1]))
	}
	t.Logf("in the namespace:\n%s", out)
	if err != nil {
		t.Fatalf("test in a namespace: %v", err)
	}
	if !strings.Contains(string(out), "--- PASS: "+t.Name()) {
		t.Fatal("the test in the namespace did not pass")
	}
	return false
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
