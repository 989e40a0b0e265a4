package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/blowback-dnsbl/blowback/store"
)

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
	os.WriteFile(out, []byte("old"), 0o644)
	var stdout, stderr bytes.Buffer
	if err := cmdBackup([]string{"--data", dir, "--out", out}, &stdout, &stderr); err != nil {
		t.Fatalf("backup: %v\n%s", err, stderr.String())
	}
	fi, err := os.Stat(out)
	if err != nil {
		t.Fatal(err)
	}
	if m := fi.Mode().Perm(); m != 0o600 {
		t.Errorf("backup mode %v, want 0600", m)
	}
	if fi.Size() == 0 {
		t.Error("empty backup")
	}
}
