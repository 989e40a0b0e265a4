package testenv

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// Deliver says HELO as helo on c, sends msg from from to to and quits; it
// returns the first error (a rejection is an *smtp.SMTPError). c is closed.
func Deliver(c *smtp.Client, helo, from, to, msg string) error {
	defer c.Close()
	if err := Send(c, helo, from, to, msg); err != nil {
		return err
	}
	return c.Quit()
}

// Send says HELO as helo on c and sends msg from from to to; nil means
// the server took the message (250 to the final dot). The session stays
// open.
func Send(c *smtp.Client, helo, from, to, msg string) error {
	if err := c.Hello(helo); err != nil {
		return err
	}
	if err := c.Mail(from, nil); err != nil {
		return err
	}
	if err := c.Rcpt(to, nil); err != nil {
		return err
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := io.WriteString(w, msg); err != nil {
		return err
	}
	return w.Close()
}

// DialFrom connects to addr over TCP from the local address src (tests
// that stand for several clients bind addresses of 127.0.0.0/8).
func DialFrom(src, addr string, timeout time.Duration) (net.Conn, error) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: timeout}
	return d.Dial("tcp", addr)
}

// WaitGreeting waits until an SMTP server on addr sends its 220 greeting,
// trying for 30 s; it returns the last error if none came by then.
func WaitGreeting(addr string) error { return WaitGreetingFrom(addr, "") }

// WaitGreetingFrom is WaitGreeting for a greeting line that contains want:
// a daemon given a port number binds it after the test chose it, and in
// between another server (a trap listening on :0) may have been given it.
func WaitGreetingFrom(addr, want string) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		line, err := greeting(addr)
		if err == nil && !strings.Contains(line, want) {
			return fmt.Errorf("%s greeted with %q, not a %q server: the port went to another server", addr, line, want)
		}
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// greeting connects to addr once and reads the first reply line, 220.
func greeting(addr string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(io.LimitReader(c, 1024)).ReadString('\n')
	if err != nil {
		return "", err
	}
	if !strings.HasPrefix(line, "220") {
		return "", fmt.Errorf("greeted with %q", line)
	}
	return strings.TrimSpace(line), nil
}

// PostfixCommand runs the postfix command bin on the instance configured
// in etc (30 s at most) and returns its output.
func PostfixCommand(bin, etc string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return exec.CommandContext(ctx, bin, append([]string{"-c", etc}, args...)...).CombinedOutput()
}

// StopPostfix aborts the throwaway Postfix instance whose configuration is
// in etc and whose queue_directory is queue, and makes sure its master and
// children are gone.
func StopPostfix(bin, etc, queue string) {
	pid := 0
	if b, err := os.ReadFile(filepath.Join(queue, "pid", "master.pid")); err == nil {
		pid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
	}
	_, _ = PostfixCommand(bin, etc, "abort")
	if pid <= 0 {
		return
	}
	for range 50 {
		if syscall.Kill(pid, 0) != nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	_ = syscall.Kill(-pid, syscall.SIGKILL) // the master leads its process group
	_ = syscall.Kill(pid, syscall.SIGKILL)
}

// NeedPostfix returns the postfix command and the postfix user's uid, for
// a test that runs a throwaway Postfix; without them, or without root
// (the Postfix master runs as root), the test skips (fails in CI).
func NeedPostfix(t testing.TB) (bin string, uid int) {
	t.Helper()
	bin = Tool(t, "postfix")
	NeedRoot(t, "the Postfix tests need root (the Postfix master runs as root)")
	uid, _, err := UserIDs("postfix")
	if err != nil {
		Missing(t, "no postfix user (apt-get install postfix)")
	}
	return bin, uid
}

// Postfix is a throwaway Postfix instance: its configuration in Dir/etc,
// queue in Dir/queue, data in Dir/data and log in Dir/maillog, stopped
// when the test ends (its log shown if the test failed).
type Postfix struct {
	Bin, Dir, Etc string
}

// NewPostfix lays out a Postfix instance in a directory of its own
// (NeedPostfix says what it needs); Configure, then Start it.
func NewPostfix(t testing.TB) *Postfix {
	t.Helper()
	bin, uid := NeedPostfix(t)
	dir := t.TempDir()
	OpenDirs(dir) // Postfix daemons run as the postfix user: every parent must be searchable
	p := &Postfix{Bin: bin, Dir: dir, Etc: filepath.Join(dir, "etc")}
	for _, d := range []string{p.Etc, filepath.Join(dir, "queue"), filepath.Join(dir, "data")} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chown(filepath.Join(dir, "data"), uid, -1); err != nil {
		t.Fatalf("chown postfix: %v", err)
	}
	t.Cleanup(func() {
		p.Stop()
		if t.Failed() {
			t.Logf("postfix log:\n%s", p.Log())
		}
	})
	return p
}

// Configure writes main.cf, the instance's directories, owner and log
// followed by the settings in main (one a line), and master.cf, the smtpd
// listeners in master followed by PostfixServices.
func (p *Postfix) Configure(t testing.TB, main []string, master string) {
	t.Helper()
	own := []string{
		"compatibility_level = 3.6",
		"queue_directory = " + filepath.Join(p.Dir, "queue"),
		"data_directory = " + filepath.Join(p.Dir, "data"),
		"mail_owner = postfix",
		"maillog_file = " + filepath.Join(p.Dir, "maillog"),
		"maillog_file_prefixes = " + p.Dir,
	}
	if err := os.WriteFile(filepath.Join(p.Etc, "main.cf"), []byte(strings.Join(append(own, main...), "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(p.Etc, "master.cf"), []byte(master+PostfixServices), 0o644); err != nil {
		t.Fatal(err)
	}
}

// Start checks the configuration, starts Postfix and waits for the
// greeting on each of the smtpd addresses.
func (p *Postfix) Start(t testing.TB, addrs ...string) {
	t.Helper()
	for _, cmd := range []string{"check", "start"} {
		if out, err := p.Command(cmd); err != nil {
			t.Fatalf("postfix %s: %v\n%s\n%s", cmd, err, out, p.Log())
		}
	}
	for _, addr := range addrs {
		if err := WaitGreeting(addr); err != nil {
			t.Fatalf("no SMTP greeting on %s: %v\n%s", addr, err, p.Log())
		}
	}
}

// Command runs the postfix command on this instance (PostfixCommand).
func (p *Postfix) Command(args ...string) ([]byte, error) {
	return PostfixCommand(p.Bin, p.Etc, args...)
}

// Log is what Postfix has logged so far.
func (p *Postfix) Log() string {
	b, _ := os.ReadFile(filepath.Join(p.Dir, "maillog"))
	return string(b)
}

// Stop aborts the instance (StopPostfix).
func (p *Postfix) Stop() { StopPostfix(p.Bin, p.Etc, filepath.Join(p.Dir, "queue")) }

// PostfixServices are the master.cf lines of Postfix's own services, for a
// throwaway instance: the test adds its smtpd listeners in front.
const PostfixServices = `pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
`
