package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/blowback-dnsbl/blowback/store"
)

// ownerOnly checks that the backup file path has content and is readable
// by its owner only (issue 13 item 12: it holds raw messages and trap
// addresses).
func ownerOnly(t *testing.T, path string) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 || fi.Size() == 0 {
		t.Errorf("backup mode %v size %d, want 0600 and content", fi.Mode().Perm(), fi.Size())
	}
}

// TestBackupRestore backs a data directory up twice (from the store, and
// through a running node's admin API when the node holds the store),
// checks each file is owner-only (issue 13 item 12) and restores each into
// a new data directory that then shows the same listing.
func TestBackupRestore(t *testing.T) {
	dir := newDataDir(t)
	if code, out, errs := runCLI(t, "list", "192.0.2.60", "--reason", "seen", "--data", dir); code != 0 {
		t.Fatalf("list: %d %q %q", code, out, errs)
	}
	check := func(t *testing.T, backup string) {
		t.Helper()
		ownerOnly(t, backup)
		to := t.TempDir()
		if code, out, errs := runCLI(t, "restore", "--in", backup, "--data", to); code != 0 || !strings.Contains(out, "restored") {
			t.Fatalf("restore: %d %q %q", code, out, errs)
		}
		if code, out, errs := runCLI(t, "explain", "192.0.2.60", "--data", to, "--server", "http://127.0.0.1:1"); code != 0 || !strings.Contains(out, "LISTED") || strings.Contains(out, "NOT LISTED") {
			t.Errorf("explain after restore: %d %q %q", code, out, errs)
		}
		// Restore refuses a data directory that holds a store.
		if code, _, errs := runCLI(t, "restore", "--in", backup, "--data", to); code == 0 || !strings.Contains(errs, "not empty") {
			t.Errorf("restore over a store: %d %q", code, errs)
		}
	}
	t.Run("store", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "offline.backup")
		if code, out, errs := runCLI(t, "backup", "--out", p, "--data", dir); code != 0 {
			t.Fatalf("backup: %d %q %q", code, out, errs)
		}
		check(t, p)
	})
	n := startNode(t, dir)
	defer n.Stop()
	t.Run("api", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "online.backup")
		api := "http://" + n.web.Addr().String()
		if code, out, errs := runCLI(t, "backup", "--out", p, "--data", dir, "--server", api); code != 0 {
			t.Fatalf("backup through the node: %d %q %q", code, out, errs)
		}
		check(t, p)
	})
}

// TestBackupFileMode (13.12): `blowback backup` writes the store (raw
// messages, trap addresses) readable by its owner only, also when it
// replaces a world-readable file.
func TestBackupFileMode(t *testing.T) {
	dir := t.TempDir()
	st, err := store.Open(filepath.Join(dir, "store"), store.DefaultOptions(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.SetMeta("probe", []byte("secret trap address")); err != nil {
		t.Fatal(err)
	}
	st.Close()
	out := filepath.Join(dir, "backup.bin")
	writeFile(t, out, "old", 0o644)
	if code, stdout, errs := runCLI(t, "backup", "--data", dir, "--out", out); code != 0 {
		t.Fatalf("backup: %d %q %q", code, stdout, errs)
	}
	ownerOnly(t, out)
}
