package store

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestOpenAfterKillBetweenCreateAndTruncate: a kill -9 right after badger
// created a memtable WAL (empty file, not yet extended) must not keep the
// store from opening, and loses nothing.
func TestOpenAfterKillBetweenCreateAndTruncate(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, DefaultOptions(), nil)
	if err != nil {
		t.Fatal(err)
	}
	e := ev("192.0.2.1", time.Now(), KindBounce)
	if err := s.Put(context.Background(), e, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// What the kill leaves: the next WAL, created and still empty.
	if err := os.WriteFile(filepath.Join(dir, "00099.mem"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	s, err = Open(dir, DefaultOptions(), nil)
	if err != nil {
		t.Fatalf("open with an empty WAL: %v", err)
	}
	defer s.Close()
	if has, err := s.Has(e.ID); !has {
		t.Fatalf("event lost: %v", err)
	}
	if err := s.Put(context.Background(), ev("192.0.2.2", time.Now(), KindBounce), nil); err != nil {
		t.Fatal(err)
	}
}

// TestOpenWithEmptyValueLog: the same for a value-log file created and
// not yet extended.
func TestOpenWithEmptyValueLog(t *testing.T) {
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
	if err := os.WriteFile(filepath.Join(dir, "000002.vlog"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	s, err = Open(dir, DefaultOptions(), nil)
	if err != nil {
		t.Fatalf("open with an empty value log: %v", err)
	}
	defer s.Close()
	if raw, err := s.Raw(e.ID); err != nil || string(raw) != "raw" {
		t.Fatalf("raw after reopen: %q, %v", raw, err)
	}
	if err := s.Put(context.Background(), ev("192.0.2.2", time.Now(), KindBounce), []byte("raw2")); err != nil {
		t.Fatal(err)
	}
}
