//go:build linux

package store

import (
	"bytes"
	"os"
	"slices"
	"strconv"

	"golang.org/x/sys/unix"
)

// drop asks the kernel to reclaim the pages of the store's files with
// one of the given suffixes (".sst": tables, ".vlog": the value log) that
// this process has mapped.
//
// badger reads its tables through mmap, so a full key scan (the rebuild)
// leaves every page of every event table it passed mapped in the process:
// at 10M events some 400 MB of resident, file-backed memory, counted in the
// process's RSS (and by the OOM killer), though the pages are clean and the
// scan never comes back to them. Opening the store reads the whole of the
// last value-log file the same way (badger's vlog.open checks its entries
// to find where it ends): up to a file's size (1 GiB) of pages that stay
// mapped through the rebuild that follows. MADV_PAGEOUT (Linux 5.4) reclaims them:
// a later read faults them in again from disk. It is advice, never a
// change of content, so a range that a compaction unmapped meanwhile (and
// that may hold something else by now) comes to no harm: clean file pages
// are dropped, dirty ones written back first, anonymous ones without swap
// left alone. Errors (an older kernel: EINVAL) are not the caller's
// concern; the first one turns the calls into no-ops.
func (p *pager) drop(suffixes ...string) {
	if p == nil || p.off.Load() {
		return
	}
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		p.off.Store(true)
		return
	}
	dir := []byte(" " + p.dir + "/")
	for line := range bytes.Lines(maps) {
		line = bytes.TrimSuffix(line, []byte("\n"))
		// "start-end perms offset dev inode   path"
		i := bytes.Index(line, dir)
		if i < 0 || bytes.IndexByte(line[i+len(dir):], '/') >= 0 || !slices.ContainsFunc(suffixes, func(x string) bool {
			return bytes.HasSuffix(line, []byte(x))
		}) {
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
			p.log.Debug("madvise pageout", "err", e)
			p.off.Store(true)
			return
		}
	}
}
