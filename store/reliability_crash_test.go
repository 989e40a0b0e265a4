package store

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The child half of TestCrashMidCompaction runs in a subprocess (the test
// binary run again with crashChildEnv set): it loads a batch of events,
// then keeps acknowledging synced Puts on stdout ("ack <id>") while badger
// flattens the tree (a full compaction) and flushes tiny memtables, until
// the parent kills it with SIGKILL.
const crashChildEnv = "BLOWBACK_STORE_CRASH_CHILD"

// crashOpts: tiny memtables so flushes and compactions run all the time.
func crashOpts() Options {
	o := DefaultOptions()
	o.LowMemory = true
	o.MemTableSize = 1 << 20
	o.MinFreeBytes = -1
	return o
}

// loadedID is the id of the i-th bulk-loaded event (the parent knows them).
func loadedID(i int) EventID {
	var id EventID
	copy(id[:], "crashload")
	binary.BigEndian.PutUint32(id[12:], uint32(i))
	return id
}

const crashLoaded = 10000

func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashChildEnv)
	if dir == "" {
		t.Skip("subprocess of TestCrashMidCompaction")
	}
	round, _ := strconv.Atoi(os.Getenv(crashChildEnv + "_ROUND"))
	s, err := Open(dir, crashOpts(), nil)
	if err != nil {
		fmt.Println("error", err)
		return
	}
	// A fresh bulk load each round leaves many level-0 tables to compact.
	l := s.NewLoader()
	t0 := time.Now().Add(-time.Hour)
	for i := range crashLoaded {
		e := ev(fmt.Sprintf("10.%d.%d.%d", round, i>>8&255, i&255), t0.Add(time.Duration(i)*time.Millisecond), KindBounce)
		e.ID = loadedID(round*crashLoaded + i)
		if err := l.Add(e, []byte("raw message of a loaded event")); err != nil {
			fmt.Println("error", err)
			return
		}
	}
	if _, err := l.Flush(); err != nil {
		fmt.Println("error", err)
		return
	}
	var mu sync.Mutex
	say := func(a ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Println(a...)
	}
	say("loaded", len(s.db.Tables()))
	for w := range 8 {
		go func() {
			for {
				e := ev(fmt.Sprintf("192.0.2.%d", w), time.Now(), KindBounce)
				if err := s.Put(context.Background(), e, []byte(strings.Repeat("x", 300))); err != nil {
					say("error", err)
					return
				}
				say("ack", e.ID)
			}
		}()
	}
	for {
		say("flatten", len(s.db.Tables()))
		if err := s.db.Flatten(2); err != nil {
			say("error", err)
		}
		say("flattened", len(s.db.Tables()))
		time.Sleep(100 * time.Millisecond)
	}
}

// TestCrashMidCompaction kills a store with SIGKILL while it ingests and
// compacts, three times over the same directory: each time it must open
// again, hold every event acknowledged before the kill (bulk-loaded ones
// included) and take new writes.
func TestCrashMidCompaction(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	dir := t.TempDir()
	var acked []EventID
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	for round := range 3 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashChildEnv+"="+dir, fmt.Sprintf("%s_ROUND=%d", crashChildEnv, round))
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(out)
		killAfter := 5 + rng.IntN(100) // acknowledgements after the first flatten starts
		flattening, flattens, n := false, 0, 0
		var killedMidFlatten bool
		tables := ""
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "ack "):
				id, err := ParseEventID(strings.TrimPrefix(line, "ack "))
				if err != nil {
					t.Fatalf("child: %q", line)
				}
				acked = append(acked, id)
				if flattens > 0 {
					n++
				}
			case strings.HasPrefix(line, "flatten "):
				flattening, flattens = true, flattens+1
				tables = line
			case strings.HasPrefix(line, "flattened "):
				flattening = false
			case strings.HasPrefix(line, "error"):
				cmd.Process.Kill()
				cmd.Wait()
				t.Fatalf("child round %d: %s", round, line)
			}
			if n >= killAfter {
				killedMidFlatten = flattening
				cmd.Process.Kill() // SIGKILL
				break
			}
		}
		cmd.Wait()
		if n < killAfter {
			t.Fatalf("round %d: child ended before the kill (%d acks): %v", round, n, sc.Err())
		}
		t.Logf("round %d: killed after %d acknowledged Puts in all, mid-flatten %v (%d flattens begun, last at %q tables)", round, len(acked), killedMidFlatten, flattens, strings.TrimPrefix(tables, "flatten "))

		s, err := Open(dir, crashOpts(), nil)
		if err != nil {
			var ls strings.Builder
			ents, _ := os.ReadDir(dir)
			for _, e := range ents {
				if fi, err := e.Info(); err == nil {
					fmt.Fprintf(&ls, " %s:%d", e.Name(), fi.Size())
				}
			}
			t.Fatalf("reopen after kill %d: %v; files:%s", round, err, ls.String())
		}
		for _, id := range acked {
			if has, err := s.Has(id); !has {
				s.Close()
				t.Fatalf("round %d: acknowledged event %s lost (%v)", round, id, err)
			}
		}
		for i := range (round + 1) * crashLoaded {
			if has, err := s.Has(loadedID(i)); !has {
				t.Fatalf("round %d: loaded event %d lost: %v", round, i, err)
			}
		}
		scanned := 0
		if err := s.ScanRefs(context.Background(), func(Ref) error { scanned++; return nil }); err != nil {
			t.Fatal(err)
		}
		if scanned < (round+1)*crashLoaded+len(acked) {
			t.Fatalf("round %d: scan found %d events, want at least %d", round, scanned, (round+1)*crashLoaded+len(acked))
		}
		if refs, err := s.Refs(netip.MustParsePrefix(fmt.Sprintf("10.%d.1.0/24", round))); err != nil || len(refs) != 256 {
			t.Fatalf("round %d: refs of a loaded /24: %d, %v", round, len(refs), err)
		}
		if err := s.Put(context.Background(), ev("198.51.100.1", time.Now(), KindBounce), nil); err != nil {
			t.Fatalf("round %d: put after restart: %v", round, err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
