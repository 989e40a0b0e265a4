//go:build unix

package main

import (
	"log/slog"
	"syscall"
	"testing"
)

// TestRaiseNoFile: a node starting with a low soft open-file limit runs
// with the hard limit.
func TestRaiseNoFile(t *testing.T) {
	var orig syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &orig); err != nil {
		t.Skip("getrlimit:", err)
	}
	if orig.Max < 512 {
		t.Skipf("hard limit %d too low to test", orig.Max)
	}
	t.Cleanup(func() { syscall.Setrlimit(syscall.RLIMIT_NOFILE, &orig) })
	low := orig
	low.Cur = 256
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
		t.Skip("setrlimit:", err)
	}
	if got := raiseNoFile(slog.New(slog.DiscardHandler)); got != uint64(orig.Max) {
		t.Errorf("limit after raiseNoFile = %d, want the hard limit %d", got, orig.Max)
	}
	var now syscall.Rlimit
	syscall.Getrlimit(syscall.RLIMIT_NOFILE, &now)
	if now.Cur != orig.Max {
		t.Errorf("soft limit %d, want %d", now.Cur, orig.Max)
	}
}
