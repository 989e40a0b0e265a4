package store

import (
	"fmt"
	"sync/atomic"
	"time"
)

// Disk space.
//
// badger writes its value log, its memtable write-ahead logs and its tables
// through mmap over files it first extends with ftruncate (sparse). When the
// filesystem is full, the store into a page of such a file cannot be backed
// by a block and the kernel sends SIGBUS: the Go runtime dies with "fatal
// error: fault" in the middle of a write, from a badger goroutine where no
// recover can reach (bench/reliability shows it on a full tmpfs). A write
// error never comes back to the caller.
//
// So the store refuses writes itself while the filesystem holding it has
// less than Options.MinFreeBytes available: Put, AddAction, Audit, SetMeta,
// NextSerial, the Loader and Restore return an error wrapping ErrDiskFull
// (the trap answers 451 4.3.0 and the sender retries; nothing is half
// written), value-log GC is put off, and writes resume by themselves as
// soon as space is back. The reserve covers what badger may still write in
// the background (memtable flushes and compactions) and one group commit.

// minFreeDefault is the default reserve for a memtable size: a flush and a
// compaction of a few memtables' worth of tables, plus headroom.
func minFreeDefault(memTable int64) int64 { return 4*memTable + 64<<20 }

// spaceGuard checks the free space of the store's filesystem.
type spaceGuard struct {
	dir  string
	min  int64                           // bytes that must stay available; <= 0: no check
	free func(dir string) (int64, error) // diskFree, or a fake in tests

	full     atomic.Bool
	lastFree atomic.Int64
}

// check returns an error wrapping ErrDiskFull when fewer than min+need bytes
// are available. A filesystem whose free space cannot be read is not refused.
func (g *spaceGuard) check(need int64) error {
	if g == nil || g.min <= 0 {
		return nil
	}
	free, err := g.free(g.dir)
	if err != nil {
		return nil
	}
	g.lastFree.Store(free)
	if free < g.min+need {
		g.full.Store(true)
		return fmt.Errorf("%w: %d bytes available on the data filesystem, %d reserved", ErrDiskFull, free, g.min)
	}
	g.full.Store(false)
	return nil
}

// DiskFull reports whether the last write was refused for lack of space,
// and the free bytes seen then (0 when not checked).
func (s *Store) DiskFull() (full bool, free int64) {
	if s.space == nil {
		return false, 0
	}
	return s.space.full.Load(), s.space.lastFree.Load()
}

// FreeSpace returns the bytes available to an unprivileged writer on the
// filesystem holding dir (other packages keeping badger data, such as the
// trap node's spool, can use it for the same guard).
func FreeSpace(dir string) (int64, error) { return diskFree(dir) }

// logSpace logs transitions between full and not full (once each).
func (s *Store) logSpace(err error, was bool) {
	full, free := s.DiskFull()
	switch {
	case full && !was:
		s.log.Error("disk nearly full: refusing writes until space is freed", "err", err,
			"available_bytes", free, "reserve_bytes", s.space.min, "at", time.Now().UTC())
	case !full && was:
		s.log.Warn("disk space back: writes resume", "available_bytes", free)
	}
}

// guard checks space before a write of about need bytes.
func (s *Store) guard(need int64) error {
	if s.space == nil {
		return nil
	}
	was := s.space.full.Load()
	err := s.space.check(need)
	s.logSpace(err, was)
	return err
}
