//go:build linux

package store

import (
	"bytes"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// dropTablePages asks the kernel to reclaim the pages of the store's table
// files (dir/*.sst) that this process has mapped.
//
// badger reads its tables through mmap, so a full key scan (the rebuild)
// leaves every page of every event table it passed mapped in the process:
// at 10M events some 400 MB of resident, file-backed memory, counted in the
// process's RSS (and by the OOM killer), though the pages are clean and the
// scan never comes back to them. MADV_PAGEOUT (Linux 5.4) reclaims them:
// a later read faults them in again from disk. It is advice, never a
// change of content, so a range that a compaction unmapped meanwhile (and
// that may hold something else by now) comes to no harm: clean file pages
// are dropped, dirty ones written back first, anonymous ones without swap
// left alone. Errors (an older kernel: EINVAL) are not the caller's
// concern; the first one turns the calls into no-ops.
func (s *Store) dropTablePages() {
	if s.tableDir == "" || s.noPageout.Load() {
		return
	}
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		s.noPageout.Store(true)
		return
	}
	dir := []byte(" " + s.tableDir + "/")
	for line := range bytes.Lines(maps) {
		line = bytes.TrimSuffix(line, []byte("\n"))
		// "start-end perms offset dev inode   path"
		i := bytes.Index(line, dir)
		if i < 0 || !bytes.HasSuffix(line, []byte(".sst")) || bytes.IndexByte(line[i+len(dir):], '/') >= 0 {
			continue
		}
		rng, _, _ := bytes.Cut(line, []byte(" "))
		lo, hi, ok := bytes.Cut(rng, []byte("-"))
		if !ok {
			continue
		}
		start, err1 := strconv.ParseUint(string(lo), 16, 64)
		end, err2 := strconv.ParseUint(string(hi), 16, 64)
		if err1 != nil || err2 != nil || end <= start {
			continue
		}
		if _, _, e := unix.Syscall(unix.SYS_MADVISE, uintptr(start), uintptr(end-start), unix.MADV_PAGEOUT); e != 0 {
			s.log.Debug("madvise pageout", "err", e)
			s.noPageout.Store(true)
			return
		}
	}
}
