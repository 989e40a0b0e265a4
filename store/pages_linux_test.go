package store

import (
	"bufio"
	"context"
	"encoding/binary"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// mappedKB is the resident size of this process's mappings of the store's
// files ending in suffix (/proc/self/smaps).
func mappedKB(t *testing.T, s *Store, suffix string) int {
	t.Helper()
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Skipf("no /proc/self/smaps: %v", err)
	}
	defer f.Close()
	kb, in := 0, false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		// A mapping's first line: "start-end perms offset dev inode [path]".
		if fields := strings.Fields(line); len(fields) >= 5 && strings.Contains(fields[0], "-") && len(fields[1]) == 4 {
			in = len(fields) >= 6 && strings.HasPrefix(fields[5], s.pages.dir+"/") && strings.HasSuffix(line, suffix)
			continue
		}
		if v, ok := strings.CutPrefix(line, "Rss:"); ok && in {
			n, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			kb += n
		}
	}
	return kb
}

// TestDropPages: a key scan leaves the tables' pages mapped; dropPages
// gives them back.
func TestDropPages(t *testing.T) {
	s := testStore(t)
	l, err := s.NewSortedLoader()
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	const n = 100000
	for i := 0; i < n; i++ {
		var a [4]byte
		binary.BigEndian.PutUint32(a[:], 10<<24+uint32(i/10))
		e := ev(netip.AddrFrom4(a).String(), t0.Add(time.Duration(i%10)*time.Second), KindBounce)
		e.ID = EventID{}
		binary.BigEndian.PutUint64(e.ID[:], uint64(i+1))
		if err := l.Add(e); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := l.Flush(); err != nil {
		t.Fatal(err)
	}
	got := 0
	if err := s.ScanRefs(context.Background(), func(Ref) error { got++; return nil }); err != nil || got != n {
		t.Fatalf("scan: %d refs, %v", got, err)
	}
	before := mappedKB(t, s, ".sst")
	if before < 1024 {
		t.Fatalf("after a scan of %d keys %d kB of tables are resident: the test measures nothing", n, before)
	}
	s.pages.drop(".sst")
	if s.pages.off.Load() {
		t.Skip("MADV_PAGEOUT refused (kernel before 5.4?)")
	}
	after := mappedKB(t, s, ".sst")
	t.Logf("resident table pages: %d kB after the scan, %d kB after dropPages", before, after)
	if after > before/4 {
		t.Fatalf("resident table pages: %d kB after the scan, %d kB after dropPages", before, after)
	}
	// The store reads on as before.
	got = 0
	if err := s.ScanRefs(context.Background(), func(Ref) error { got++; return nil }); err != nil || got != n {
		t.Fatalf("scan after dropPages: %d refs, %v", got, err)
	}
}
