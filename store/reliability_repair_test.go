package store

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestOpenWithEmptyFile: a kill -9 right after badger created a memtable
// WAL or a value-log file (empty, not yet extended) must not keep the store
// from opening, and loses nothing.
func TestOpenWithEmptyFile(t *testing.T) {
	for _, c := range []struct{ name, file string }{
		{"memtable WAL", "00099.mem"},
		{"value log", "000002.vlog"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			s, err := Open(dir, DefaultOptions(), nil)
			if err != nil {
				t.Fatal(err)
			}
			e := ev("192.0.2.1", time.Now(), KindBounce)
			if err := s.Put(context.Background(), e, []byte("raw")); err != nil {
				t.Fatal(err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			// What the kill leaves: the next file, created and still empty.
			if err := os.WriteFile(filepath.Join(dir, c.file), nil, 0o644); err != nil {
				t.Fatal(err)
			}
			s, err = Open(dir, DefaultOptions(), nil)
			if err != nil {
				t.Fatalf("open with an empty %s: %v", c.name, err)
			}
			defer s.Close()
			if has, err := s.Has(e.ID); !has {
				t.Fatalf("event lost: %v", err)
			}
			if raw, err := s.Raw(e.ID); err != nil || string(raw) != "raw" {
				t.Fatalf("raw after reopen: %q, %v", raw, err)
			}
			if err := s.Put(context.Background(), ev("192.0.2.2", time.Now(), KindBounce), []byte("raw2")); err != nil {
				t.Fatal(err)
			}
		})
	}
}
