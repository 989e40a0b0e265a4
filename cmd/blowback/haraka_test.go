package main

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/blowback-dnsbl/blowback/dnsd"
	"github.com/blowback-dnsbl/blowback/internal/testenv"
	"github.com/blowback-dnsbl/blowback/zones"
)

// harakaBinary is Haraka's haraka command: $BLOWBACK_HARAKA, or haraka on
// PATH (npm install -g Haraka).
func harakaBinary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("BLOWBACK_HARAKA"); p != "" {
		return p
	}
	testenv.Tool(t, "node")
	// Where .ci/run installs it (npm, pinned) when BLOWBACK_HARAKA is unset.
	if home, err := os.UserHomeDir(); err == nil {
		p := filepath.Join(home, ".cache", "blowback-haraka", "node_modules", ".bin", "haraka")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if _, err := exec.LookPath("haraka"); err != nil {
		testenv.Missing(t, "haraka not installed (npm install Haraka@3.3.4, as .ci/run does)")
	}
	return testenv.Tool(t, "haraka")
}

// TestHarakaSafeMode runs Haraka (npm) with deploy/consumers/haraka's
// plugin against blowback's DNS server: listed sources of bounces and
// callouts get 550 at MAIL FROM, other mail and unlisted sources pass,
// and a refusal code (127.255.255.254) is not a listing. Haraka's own
// dns-list plugin is not used: it checks at connect for every message
// (not safe mode), skips loopback clients, and its backscatter check is
// wired to one list's name.
func TestHarakaSafeMode(t *testing.T) {
	haraka := harakaBinary(t)
	testenv.NeedRoot(t, "the Haraka test needs root (a mount namespace for its resolv.conf, DNS on port 53)")
	zone := zones.Build(zones.Info{Zone: "bl.blowback.test", Serial: 9, TXT: "Backscatter from $"}, []zones.Entry{
		{Prefix: netip.MustParsePrefix("127.0.0.10/32"), Codes: zones.CodeBounce},
		{Prefix: netip.MustParsePrefix("127.0.0.12/32"), Value: &zones.Value{A: []netip.Addr{netip.MustParseAddr("127.255.255.254")}}},
	})
	ns := serveOn53(t, zone)
	if r, err := dnsd.Check(context.Background(), ns+":53", "bl.blowback.test", netip.MustParseAddr("127.0.0.12")); err != nil || len(r.Codes) != 1 {
		t.Fatalf("the refusal code is not served: %+v %v", r, err)
	}

	// A Haraka instance as `haraka -i` lays it out, with the plugin added.
	dir := filepath.Join(t.TempDir(), "haraka")
	if b, err := exec.Command(haraka, "-i", dir).CombinedOutput(); err != nil {
		t.Fatalf("haraka -i: %v\n%s", err, b)
	}
	// copyFile copies deploy/consumers/haraka/<rel> to the instance, edited.
	copyFile := func(rel string, edit func(string) string) {
		s := string(readDeploy(t, "consumers/haraka/"+rel))
		if edit != nil {
			s = edit(s)
		}
		writeFile(t, filepath.Join(dir, rel), s, 0o644)
	}
	copyFile("plugins/blowback.js", nil)
	copyFile("config/plugins", nil)
	// Test clients come from loopback addresses: do not skip them here.
	copyFile("config/blowback.ini", func(s string) string {
		if !strings.Contains(s, "skip_private=true") {
			t.Fatal("blowback.ini has no skip_private=true")
		}
		return strings.Replace(s, "skip_private=true", "skip_private=false", 1)
	})
	port := testenv.FreePort(t)
	writeFile(t, filepath.Join(dir, "config", "smtp.ini"), fmt.Sprintf("[main]\nlisten=127.0.0.1:%d\nnodes=0\n", port), 0o644)
	writeFile(t, filepath.Join(dir, "config", "me"), "mx.haraka.test\n", 0o644)
	writeFile(t, filepath.Join(dir, "config", "log.ini"), "[main]\nlevel=info\n", 0o644)
	cmd := testenv.WithResolver(t, dir, ns, haraka, "-c", dir)
	out := testenv.Daemon(t, cmd[0], cmd[1:]...)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	waitListening(t, "haraka", addr, time.Minute, out.String)
	for _, c := range []struct {
		name, from, sender, want string
	}{
		{"listed, bounce", "127.0.0.10", "", "550 127.0.0.10 sends backscatter: listed in bl.blowback.test (127.0.0.2)"},
		{"listed, postmaster", "127.0.0.10", "postmaster@client.test", "550 127.0.0.10 sends backscatter"},
		{"listed, ordinary mail", "127.0.0.10", "alice@client.test", "250"},
		{"not listed", "127.0.0.11", "", "250"},
		{"refusal code", "127.0.0.12", "", "250"},
		{"test point 127.0.0.2", "127.0.0.2", "", "550 127.0.0.2 sends backscatter"},
		{"test point 127.0.0.1", "127.0.0.1", "", "250"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := smtpMail(t, addr, c.from, c.sender); !strings.HasPrefix(got, c.want) {
				t.Errorf("MAIL FROM:<%s> from %s: %q, want %q\n%s", c.sender, c.from, got, c.want, out.String())
			}
		})
	}
}
