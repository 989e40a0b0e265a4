// Package testenv lets tests that need an outside tool (Postfix, rbldnsd,
// dig, chromium, ...) or the shared corpus skip with a one-line reason when it
// is absent, and fail instead in CI (BLOWBACK_CI=1), where .ci/run installs
// everything: in CI nothing may skip.
package testenv

import (
	"bytes"
	"fmt"
	"maps"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
)

// CI reports whether missing tools are failures (BLOWBACK_CI=1).
func CI() bool { return os.Getenv("BLOWBACK_CI") == "1" }

// Missing skips the test (or fails it in CI) with reason.
func Missing(t testing.TB, reason string) {
	t.Helper()
	if CI() {
		t.Fatalf("BLOWBACK_CI=1 but %s", reason)
	}
	t.Skip(reason)
}

// Tool returns the path of an executable, searching PATH and the sbin
// directories Debian puts daemons in; absent, the test skips (fails in CI).
func Tool(t testing.TB, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/local/sbin", "/usr/lib/postfix/sbin"} {
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err == nil && st.Mode()&0o111 != 0 {
			return p
		}
	}
	Missing(t, name+" not installed (apt-get install it, or run .ci/run)")
	return ""
}

// NeedRoot skips the test (fails it in CI) unless it runs as root; why
// says what needs root.
func NeedRoot(t testing.TB, why string) {
	t.Helper()
	if os.Geteuid() != 0 {
		Missing(t, why)
	}
}

// OpenDirs makes dir and every directory above it up to the temp
// directory searchable by all (0755), for daemons that drop root to a user
// of their own and must reach their files in a t.TempDir().
func OpenDirs(dir string) {
	for d := dir; d != os.TempDir() && d != "/"; d = filepath.Dir(d) {
		_ = os.Chmod(d, 0o755)
	}
}

// Root returns the repository root (the directory holding go.mod).
func Root(t testing.TB) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// Shared returns the path of ../shared/<rel> next to the repository; absent,
// the test skips (fails in CI).
func Shared(t testing.TB, rel string) string {
	t.Helper()
	p := filepath.Join(Root(t), "..", "shared", rel)
	if _, err := os.Stat(p); err != nil {
		Missing(t, "../shared/"+rel+" not present")
	}
	return p
}

// ReservePort is FreePort with the port's TCP listener held open until
// release: servers started in between on :0 (a node's trap, web and DNS
// listeners) cannot be given it. Release it just before the daemon that
// was told the port binds it.
func ReservePort(t testing.TB) (port int, release func()) {
	t.Helper()
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		pc, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			pc.Close()
			var once sync.Once
			release := func() { once.Do(func() { l.Close() }) }
			t.Cleanup(release)
			return port, release
		}
		l.Close()
	}
	t.Fatal("no free port")
	return 0, nil
}

// FreePort returns a port on 127.0.0.1 free for both TCP and UDP at the
// time of the call, for daemons that take a port number (rbldnsd, NSD,
// Knot, Postfix) rather than a listener.
func FreePort(t testing.TB) int {
	t.Helper()
	port, release := ReservePort(t)
	release()
	return port
}

// Output collects a daemon's stdout and stderr; safe to read while it runs.
type Output struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (o *Output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.Write(p)
}

func (o *Output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.String()
}

// Daemon starts a foreground daemon, killed when the test ends; its output
// is logged if the test failed.
func Daemon(t testing.TB, path string, args ...string) *Output {
	t.Helper()
	out := &Output{}
	cmd := exec.Command(path, args...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", path, err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("%s output:\n%s", filepath.Base(path), out.String())
		}
	})
	return out
}

// Group is a daemon started by StartGroup, in a process group of its own.
type Group struct {
	Out *Output // what it wrote to stdout and stderr
	cmd *exec.Cmd
}

// StartGroup starts a daemon that forks workers (or runs through a shell)
// in a process group of its own; Stop, or the end of the test, kills the
// whole group. Its output is logged if the test failed.
func StartGroup(t testing.TB, path string, args ...string) *Group {
	t.Helper()
	g := &Group{Out: &Output{}, cmd: exec.Command(path, args...)}
	g.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	g.cmd.Stdout, g.cmd.Stderr = g.Out, g.Out
	if err := g.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", path, err)
	}
	t.Cleanup(func() {
		g.Stop()
		if t.Failed() {
			t.Logf("%s output:\n%s", filepath.Base(path), g.Out.String())
		}
	})
	return g
}

// Stop kills the daemon's process group and waits for the daemon; once
// it has, Stop does nothing.
func (g *Group) Stop() {
	if g.cmd.ProcessState != nil {
		return
	}
	_ = syscall.Kill(-g.cmd.Process.Pid, syscall.SIGKILL)
	_ = g.cmd.Wait()
}

// BindMounted returns the command line args run in a mount namespace of
// its own (unshare -m; it needs root) where each file of files is
// bind-mounted over its target (files maps targets to sources): only the
// command sees them.
func BindMounted(t testing.TB, files map[string]string, args ...string) []string {
	t.Helper()
	unshare := Tool(t, "unshare")
	targets := slices.Sorted(maps.Keys(files))
	var script, sources []string
	for i, target := range targets {
		script = append(script, fmt.Sprintf(`mount --bind "$%d" %s`, i+1, target))
		sources = append(sources, files[target])
	}
	script = append(script, fmt.Sprintf("shift %d", len(targets)), `exec "$@"`)
	cmd := []string{unshare, "-m", "--propagation", "private", "sh", "-c", strings.Join(script, " && "), "sh"}
	return append(append(cmd, sources...), args...)
}

// UserIDs returns the uid and gid of the user name (a daemon's own user);
// err when there is none.
func UserIDs(name string) (uid, gid int, err error) {
	u, err := user.Lookup(name)
	if err != nil {
		return 0, 0, err
	}
	uid, _ = strconv.Atoi(u.Uid)
	gid, _ = strconv.Atoi(u.Gid)
	return uid, gid, nil
}

// Eventually waits until cond holds, looking every 5 ms, and fails the
// test if it does not within a minute. It is a wait on a condition, not a
// timing threshold: on a loaded machine it only takes longer.
func Eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Promlint reports, as test errors, what promlint finds wrong with the
// metrics in text (Prometheus' text format, a scrape).
func Promlint(t testing.TB, text []byte) {
	t.Helper()
	promlintReport(t, promlint.New(bytes.NewReader(text)), "")
}

// PromlintGathered reports, as test errors, what promlint finds wrong with
// the metrics g gathers whose names start with prefix.
func PromlintGathered(t testing.TB, g prometheus.Gatherer, prefix string) {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	promlintReport(t, promlint.NewWithMetricFamilies(mfs), prefix)
}

func promlintReport(t testing.TB, l *promlint.Linter, prefix string) {
	t.Helper()
	problems, err := l.Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		if strings.HasPrefix(p.Metric, prefix) {
			t.Errorf("promlint: %s: %s", p.Metric, p.Text)
		}
	}
}
