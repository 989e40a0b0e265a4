// Package testenv lets tests that need an outside tool (Postfix, rbldnsd,
// dig, chromium, ...) or the shared corpus skip with a one-line reason when it
// is absent, and fail instead in CI (BLOWBACK_CI=1), where .ci/run installs
// everything: in CI nothing may skip.
package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
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
