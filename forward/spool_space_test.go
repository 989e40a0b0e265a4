package forward_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/blowback-dnsbl/blowback/forward"
	"github.com/blowback-dnsbl/blowback/store"
)

// A nearly full filesystem refuses spooling with store.ErrDiskFull (the trap
// answers 452) rather than letting badger crash on a full disk.
func TestSpoolRefusesWhenDiskFull(t *testing.T) {
	sp, err := forward.OpenSpool(t.TempDir(), forward.SpoolOptions{MinFreeBytes: 1 << 62}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	if err := sp.Put(context.Background(), event(1), nil); !errors.Is(err, store.ErrDiskFull) {
		t.Fatalf("Put on a full disk: %v, want store.ErrDiskFull", err)
	}
	if n := sp.Len(); n != 0 {
		t.Fatalf("backlog %d after a refused put", n)
	}
}

// Empty log files left by a kill -9 do not keep the spool from opening.
func TestSpoolOpensAfterEmptyLogFiles(t *testing.T) {
	dir := t.TempDir()
	sp, err := forward.OpenSpool(dir, forward.SpoolOptions{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := sp.Put(context.Background(), event(1), nil); err != nil {
		t.Fatal(err)
	}
	sp.Close()
	for _, name := range []string{"00099.mem", "000099.vlog"} {
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	sp, err = forward.OpenSpool(dir, forward.SpoolOptions{}, nil)
	if err != nil {
		t.Fatalf("open after empty log files: %v", err)
	}
	defer sp.Close()
	if n := sp.Len(); n != 1 {
		t.Fatalf("backlog %d, want 1", n)
	}
}
