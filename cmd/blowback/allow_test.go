package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestAllowOffline: `blowback allow add|remove|list` on a single node's
// data directory: an added network is listed with its reason and unlists
// the address inside; a configured network cannot be removed this way.
func TestAllowOffline(t *testing.T) {
	dir := newDataDir(t)
	conf := filepath.Join(dir, "c.toml")
	writeFile(t, conf, "[policy]\nallow = [\"203.0.113.0/24\"]\n", 0o600)
	run := func(args ...string) (int, string, string) {
		return runCLI(t, append(args, "--config", conf, "--data", dir, "--server", "http://127.0.0.1:1")...)
	}
	if code, _, errs := run("list", "192.0.2.5", "--reason", "seen"); code != 0 {
		t.Fatalf("list: %d %s", code, errs)
	}
	if code, _, errs := run("allow", "add", "192.0.2.0/25", "--reason", "customer network", "--who", "ops"); code != 0 {
		t.Fatalf("allow add: %d %s", code, errs)
	}
	code, out, errs := run("allow", "list")
	if code != 0 || !strings.Contains(out, "203.0.113.0/24       config") || !strings.Contains(out, "192.0.2.0/25         admin") ||
		!strings.Contains(out, "by admin:ops: customer network") {
		t.Errorf("allow list: %d %q %s", code, out, errs)
	}
	if code, out, _ := run("explain", "192.0.2.5"); code != 0 || !strings.Contains(out, "NOT LISTED") || !strings.Contains(out, "allowlisted by 192.0.2.0/25") {
		t.Errorf("explain after the add: %d %s", code, out)
	}
	if code, _, errs := run("allow", "remove", "203.0.113.0/24", "--reason", "x"); code == 0 || !strings.Contains(errs, "[policy] allow") {
		t.Errorf("removing a configured network: %d %s", code, errs)
	}
	if code, _, errs := run("allow", "add", "192.0.2.0/25"); code != 2 || !strings.Contains(errs, "--reason") {
		t.Errorf("no reason: %d %s", code, errs)
	}
	if code, _, errs := run("allow", "remove", "192.0.2.0/25", "--reason", "gone"); code != 0 {
		t.Fatalf("allow remove: %d %s", code, errs)
	}
	if code, out, _ := run("explain", "192.0.2.5"); code != 0 || !strings.Contains(out, "LISTED") || strings.Contains(out, "NOT LISTED") {
		t.Errorf("explain after the remove: %d %s", code, out)
	}
}
