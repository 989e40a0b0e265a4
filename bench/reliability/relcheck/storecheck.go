package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	mrand "math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/blowback-dnsbl/blowback/forward"
	"github.com/blowback-dnsbl/blowback/internal/tally"
	"github.com/blowback-dnsbl/blowback/store"
)

// storedMessageIDs opens a stopped node's store and returns the
// Message-IDs of its events and how many raw messages could be read back
// (every raw message is decompressed: nothing corrupt).
func storedMessageIDs(dataDir string) (ids map[string]bool, events, rawOK, rawBad int, err error) {
	o := store.DefaultOptions()
	o.MinFreeBytes = -1
	st, err := store.Open(filepath.Join(dataDir, "store"), o, nil)
	if err != nil {
		return nil, 0, 0, 0, err
	}
	defer st.Close()
	ids = map[string]bool{}
	var refs []store.Ref
	if err := st.ScanRefs(context.Background(), func(r store.Ref) error { refs = append(refs, r); return nil }); err != nil {
		return nil, 0, 0, 0, err
	}
	for _, r := range refs {
		e, err := st.Get(r.ID)
		if err != nil {
			return nil, 0, 0, 0, fmt.Errorf("event %s: %w", r.ID, err)
		}
		ids[strings.Trim(e.MessageID, "<>")] = true
		if _, err := st.Raw(r.ID); err == nil {
			rawOK++
		} else if err != store.ErrNotFound {
			rawBad++
		}
	}
	return ids, len(refs), rawOK, rawBad, nil
}

// ingestLoad sends bounces from srcs over persistent sessions until stop,
// recording the Message-IDs acknowledged with 250.
type ingestLoad struct {
	mu      sync.Mutex
	acked   []string
	replies tally.Counter
	wg      sync.WaitGroup
	stop    chan struct{}
}

func startIngest(addr string, srcs []string, perSrc int, body func() string) *ingestLoad {
	l := &ingestLoad{stop: make(chan struct{})}
	for _, src := range srcs {
		for w := range perSrc {
			l.wg.Go(func() {
				var s *session
				defer func() {
					if s != nil {
						s.c.Close()
					}
				}()
				for i := 0; ; i++ {
					select {
					case <-l.stop:
						return
					default:
					}
					if s == nil {
						var err error
						if s, _, err = openSession(src, addr, "mx.load.example", nil); err != nil {
							s = nil
							l.replies.Add("connect failed")
							select {
							case <-l.stop:
								return
							case <-time.After(200 * time.Millisecond):
							}
							continue
						}
					}
					id := msgID(fmt.Sprintf("load-%s-%d", src, w))
					msg := bounce(id, "load@trap.blowback.test", "")
					if body != nil {
						msg = strings.Replace(msg, "spam\r\n", body(), 1)
					}
					rep, err := s.send("", fmt.Sprintf("l%d@trap.blowback.test", i%500), msg)
					if err != nil {
						l.replies.Add("no reply")
						s.c.Close()
						s = nil
						continue
					}
					l.replies.Add(code(rep))
					if strings.HasPrefix(rep, "250") {
						l.mu.Lock()
						l.acked = append(l.acked, id)
						l.mu.Unlock()
					} else if strings.HasPrefix(rep, "4") {
						time.Sleep(100 * time.Millisecond)
					}
					if i%300 == 299 {
						s.close()
						s = nil
					}
				}
			})
		}
	}
	return l
}

func (l *ingestLoad) end() []string {
	close(l.stop)
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.acked
}

func (l *ingestLoad) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.acked)
}

// crashScenario: kill -9 during SMTP ingest, three times, restarting on the
// same data; every acknowledged message must be stored.
func (c *checker) crashScenario() {
	dir := filepath.Join(c.work, "crash-data")
	var acked []string
	var replies []string
	rng := mrand.New(mrand.NewPCG(uint64(time.Now().UnixNano()), 2))
	rounds := 3
	var restartErr error
	for round := range rounds {
		n, err := c.startNode("crash", dir, c.baseConfig(noCaps))
		if err != nil {
			restartErr = fmt.Errorf("start %d: %w", round, err)
			break
		}
		l := startIngest(n.smtp, []string{"127.0.60.1", "127.0.60.2", "127.0.60.3", "127.0.60.4"}, 4, nil)
		time.Sleep(time.Duration(2000+rng.IntN(2000)) * time.Millisecond)
		n.kill()
		acked = append(acked, l.end()...)
		replies = append(replies, l.replies.String())
	}
	// A last clean start rebuilds and stops.
	var stopErr error
	if restartErr == nil {
		n, err := c.startNode("crash", dir, c.baseConfig(noCaps))
		if err != nil {
			restartErr = err
		} else {
			stopErr = n.stop()
		}
	}
	ids, events, rawOK, rawBad, err := storedMessageIDs(dir)
	lost := 0
	for _, id := range acked {
		if !ids[id] {
			lost++
		}
	}
	c.add(row{Scenario: "Store: kill -9 during ingest", Load: fmt.Sprintf("16 SMTP senders, %d rounds of 2-4s", rounds),
		Faults: fmt.Sprintf("SIGKILL at a random moment, %d times", rounds),
		Events: fmt.Sprintf("%d acked / %d stored, %d lost", len(acked), events, lost),
		Errors: fmt.Sprintf("restart %s; stop %s; store %s; raw ok %d, corrupt %d", errStr(restartErr), errStr(stopErr), errStr(err), rawOK, rawBad),
		OK:     restartErr == nil && stopErr == nil && err == nil && lost == 0 && len(acked) > 0 && rawBad == 0 && events >= len(acked),
		Notes:  []string{"replies per round: " + strings.Join(replies, " | ")}})
}

// compactionScenario: a large load through the evidence intake with 1 MiB
// memtables (flushes and compactions all the time), kill -9 just after a
// new table file appears, restart; every acknowledged event must be there.
func (c *checker) compactionScenario() {
	dir := filepath.Join(c.work, "compaction-data")
	cfg := c.baseConfig(noCaps + "memtable_mb = 1\n")
	var acked []store.EventID
	var notes []string
	var startErr error
	total := 0
	for round := range 2 {
		n, err := c.startNode("compaction", dir, cfg)
		if err != nil {
			startErr = fmt.Errorf("start %d: %w", round, err)
			break
		}
		var mu sync.Mutex
		var loaded atomic.Int64
		stop := make(chan struct{})
		var wg sync.WaitGroup
		var postErrs tally.Counter
		for w := range 4 {
			wg.Go(func() {
				cl := httpFrom("127.0.0.1")
				for b := 0; ; b++ {
					select {
					case <-stop:
						return
					default:
					}
					batch := forward.Batch{Node: "trap1"}
					for i := range 500 {
						batch.Events = append(batch.Events, store.Event{ID: store.NewEventID(), Time: time.Now().Add(-time.Duration(i) * time.Second),
							ClientIP: netip.AddrFrom4([4]byte{10, byte(round*8 + w), byte(b), byte(i)}), Kind: store.KindBounce,
							Rcpts: []string{fmt.Sprintf("c%d@trap.blowback.test", i)}, TrapDomain: "trap.blowback.test", HELO: "mx.load.example",
							MessageID: fmt.Sprintf("<c-%d-%d-%d-%d@load>", round, w, b, i)})
					}
					body, _ := json.Marshal(batch)
					code, _, err := do(cl, "POST", "http://"+n.http+forward.Path, "Bearer "+c.nodeTok, body, nil)
					if err != nil || code != 200 {
						if err != nil {
							postErrs.Add("transport error (node killed)")
						} else {
							postErrs.Add(fmt.Sprintf("HTTP %d", code))
						}
						if err != nil {
							return
						}
						continue
					}
					mu.Lock()
					for _, e := range batch.Events {
						acked = append(acked, e.ID)
					}
					mu.Unlock()
					loaded.Add(500)
				}
			})
		}
		// Wait for the load, then kill right after a new table appears.
		storeDir := filepath.Join(dir, "store")
		deadline := time.Now().Add(90 * time.Second)
		for loaded.Load() < 50000 && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
		}
		before := ssts(storeDir)
		var fresh string
		for time.Now().Before(deadline) {
			now := ssts(storeDir)
			for f := range now {
				if !before[f] {
					fresh = f
				}
			}
			if fresh != "" {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		n.kill()
		close(stop)
		wg.Wait()
		total = int(loaded.Load())
		notes = append(notes, fmt.Sprintf("round %d: %d events acknowledged, killed just after %s appeared (%d table files); failed posts: %s", round, total, orNone(fresh), len(ssts(storeDir)), postErrs.String()))
	}
	var stopErr error
	if startErr == nil {
		n, err := c.startNode("compaction", dir, cfg)
		if err != nil {
			startErr = err
		} else {
			stopErr = n.stop()
		}
	}
	o := store.DefaultOptions()
	o.MinFreeBytes = -1
	lost, stored := 0, 0
	st, err := store.Open(filepath.Join(dir, "store"), o, nil)
	if err == nil {
		for _, id := range acked {
			if has, _ := st.Has(id); !has {
				lost++
			}
		}
		err = st.ScanRefs(context.Background(), func(store.Ref) error { stored++; return nil })
		st.Close()
	}
	c.add(row{Scenario: "Store: crash mid-compaction", Load: "evidence intake, 4 × 500-event batches at a time, memtable 1 MiB, 2 rounds",
		Faults: "SIGKILL right after a new table file appears, after 50 000 events (flush/compaction running)",
		Events: fmt.Sprintf("%d acked / %d stored, %d lost", len(acked), stored, lost),
		Errors: fmt.Sprintf("restart %s; stop %s; reopen %s", errStr(startErr), errStr(stopErr), errStr(err)),
		OK:     startErr == nil && stopErr == nil && err == nil && lost == 0 && len(acked) >= 100000, Notes: notes})
}

func orNone(s string) string {
	if s == "" {
		return "(none seen)"
	}
	return filepath.Base(s)
}

func ssts(dir string) map[string]bool {
	m := map[string]bool{}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".sst") {
			m[e.Name()] = true
		}
	}
	return m
}

// fullDiskScenario: the data directory on a small filesystem (run.sh
// mounts a tmpfs with size=), filled by ingest until the trap must answer
// 451; then space returns (a ballast file is deleted) and it must accept
// again; after a clean stop nothing is corrupt and every 250 is stored.
func (c *checker) fullDiskScenario() {
	r := row{Scenario: "Store: full disk", Faults: "data filesystem full (tmpfs size=)"}
	if c.fullDir == "" {
		r.Errors = "skipped: no -fulldir (run.sh mounts one when run as root)"
		r.OK = true
		c.add(r)
		return
	}
	dir := filepath.Join(c.fullDir, "data")
	os.RemoveAll(dir)
	ballast := filepath.Join(c.fullDir, "ballast")
	os.Remove(ballast)
	free, err := store.FreeSpace(c.fullDir)
	if err != nil {
		r.Errors = err.Error()
		c.add(r)
		return
	}
	// low_memory: 8 MiB memtables, so the reserve is 4×8+64 = 96 MiB; leave
	// about 40 MiB above it for the load to fill.
	const reserve = 96 << 20
	room := int64(40 << 20)
	if free < reserve+room+(16<<20) {
		r.Errors = fmt.Sprintf("filesystem too small: %d MiB free", free>>20)
		c.add(r)
		return
	}
	if err := writeBallast(ballast, free-reserve-room); err != nil {
		r.Errors = "ballast: " + err.Error()
		c.add(r)
		return
	}
	n := c.scenarioNode(r, "fulldisk", dir, c.baseConfig(noCaps+"low_memory = true\n")) // one source fills the disk: caps off
	if n == nil {
		return
	}
	l := startIngest(n.smtp, []string{"127.0.61.1"}, 4, incompressible) // raw messages are kept
	deadline := time.Now().Add(3 * time.Minute)
	// Refused for lack of space: 452 4.3.1 (RFC 3463 "mail system full")
	// or 451 4.3.0.
	temp := func() int { return l.replies.Get("452 4.3.1") + l.replies.Get("451 4.3.0") }
	for time.Now().Before(deadline) && temp() < 20 && n.alive() {
		time.Sleep(time.Second)
		c.logf("full disk: %d acked; replies %s", l.count(), l.replies.String())
	}
	ackedFull := l.count()
	// While full: DNS and HTTP still answer, the intake says 503.
	dnsErr := goodAnswer("127.0.99.1", n.dns, false)
	hc, _, _ := do(httpFrom("127.0.0.1"), "GET", "http://"+n.http+"/healthz", "", nil, nil)
	// A batch of 20 events with 200 KB raw messages each (small ones may
	// still fit in the margin above the reserve).
	batch := forward.Batch{Raw: map[string][]byte{}}
	for i := range 20 {
		e := store.Event{ID: store.NewEventID(), Time: time.Now(), ClientIP: netip.AddrFrom4([4]byte{10, 99, 0, byte(i)}), Kind: store.KindBounce}
		batch.Events = append(batch.Events, e)
		batch.Raw[e.ID.String()] = []byte(incompressible())
	}
	ev, _ := json.Marshal(batch)
	ic, _, _ := do(httpFrom("127.0.0.1"), "POST", "http://"+n.http+forward.Path, "Bearer "+c.nodeTok, ev, nil)
	full451 := l.replies.String()
	freeFull, _ := store.FreeSpace(c.fullDir)
	// Space returns.
	os.Remove(ballast)
	before := l.count()
	time.Sleep(5 * time.Second)
	afterSpace := l.count() - before
	acked := l.end()
	m, _ := n.metrics()
	alive := n.alive()
	stopErr := n.stop()
	ids, events, rawOK, rawBad, err := storedMessageIDs(dir)
	lost := 0
	for _, id := range acked {
		if !ids[id] {
			lost++
		}
	}
	r.Load = "4 SMTP senders, ~190 KB incompressible messages, 40 MiB above the 96 MiB reserve, then the ballast deleted"
	r.Events = fmt.Sprintf("%d acked (%d before full, %d in 5s after space returned) / %d stored, %d lost", len(acked), ackedFull, afterSpace, events, lost)
	r.Errors = fmt.Sprintf("replies while filling: %s; free at full %d MiB; while full DNS %s, /healthz %d, intake %d; node alive %v, panics %.0f, stop %s; store %s; raw ok %d, corrupt %d",
		full451, freeFull>>20, errStr(dnsErr), hc, ic, alive, panics(m), errStr(stopErr), errStr(err), rawOK, rawBad)
	r.OK = alive && err == nil && stopErr == nil && lost == 0 && rawBad == 0 && temp() > 0 && afterSpace > 0 && dnsErr == nil && hc == 200 && ic == 503
	c.add(r)
}

func writeBallast(path string, size int64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	buf := bytes.Repeat([]byte{0xa5}, 1<<20)
	for size > 0 {
		k := min(size, int64(len(buf)))
		if _, err := f.Write(buf[:k]); err != nil {
			return err
		}
		size -= k
	}
	return f.Sync()
}
