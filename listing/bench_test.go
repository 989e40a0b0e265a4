package listing

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/blowback-dnsbl/blowback/dnsd"
	"github.com/blowback-dnsbl/blowback/scoring"
	"github.com/blowback-dnsbl/blowback/store"
	"github.com/blowback-dnsbl/blowback/zones"
)

// Benchmark sizes come from the environment so that `go test -bench .`
// stays small and bench/scoring/run.sh can run the 1M/10M case:
//
//	BLOWBACK_BENCH_UNITS   listed addresses (default 20000)
//	BLOWBACK_BENCH_EVENTS  events in all (default 10 per address)
//	BLOWBACK_BENCH_DIR     store directory to load once and reuse (default a temp dir)
//	BLOWBACK_BENCH_BLOCK_CACHE_MB  the store's block cache (default badger's 256 MB)
func benchSize(b *testing.B) (units, events int, dir string) {
	b.Helper()
	get := func(name string, def int) int {
		if v := os.Getenv(name); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n <= 0 {
				b.Fatalf("%s=%q", name, v)
			}
			return n
		}
		return def
	}
	units = get("BLOWBACK_BENCH_UNITS", 20000)
	events = get("BLOWBACK_BENCH_EVENTS", 10*units)
	dir = os.Getenv("BLOWBACK_BENCH_DIR")
	if dir == "" {
		dir = b.TempDir()
	}
	return units, events, dir
}

var benchNow = time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)

// benchAddr is the i-th benchmark address: IPv4 from 11.0.0.0 on, every
// eighth an IPv6 /64.
func benchAddr(i int) netip.Addr {
	if i%8 == 7 {
		var b [16]byte
		b[0], b[1] = 0x20, 0x01
		binary.BigEndian.PutUint64(b[:8], 0x2001_0db8_0000_0000|uint64(i))
		b[15] = 1
		return netip.AddrFrom16(b)
	}
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], 11<<24+uint32(i))
	return netip.AddrFrom4(b)
}

// benchEvent is the i-th benchmark event (of units addresses): spread over
// the 10 days before benchNow (so all are listed), its id left unset.
func benchEvent(i, units int) *store.Event {
	kinds := [...]store.Kind{store.KindBounce, store.KindBounce, store.KindAutoreply, store.KindCallout}
	return &store.Event{ClientIP: benchAddr(i % units), Kind: kinds[i%len(kinds)],
		Time:  benchNow.Add(-time.Duration(1+(i*7919)%(10*24*3600)) * time.Second),
		Rcpts: []string{fmt.Sprintf("u%d@trap%d.test", i%5, i%2)}, TrapDomain: fmt.Sprintf("trap%d.test", i%2),
		HELO: "mx.example.net", MailFrom: "", MessageID: fmt.Sprintf("<%d@mx.example.net>", i),
		From: "MAILER-DAEMON@mx.example.net", Subject: "Undelivered Mail Returned to Sender",
		Original: store.Original{MessageID: fmt.Sprintf("<o%d@trap.test>", i), From: "x@trap.test", To: "y@example.org"}}
}

// loadBench fills dir with events spread over units addresses (benchEvent),
// unless already done. A directory loaded otherwise (other sizes, an
// interrupted load) is emptied first. The load goes through
// store.SortedLoader (badger's StreamWriter, in key order): 10M events in
// minutes rather than the best part of an hour through the Loader.
func loadBench(b *testing.B, dir string, units, events int) *store.Store {
	b.Helper()
	o := store.DefaultOptions()
	o.Retention, o.RawTTL = 0, 0 // fixed timestamps in the past: keep them
	// BLOWBACK_BENCH_BLOCK_CACHE_MB: the store's block cache (config
	// store.block_cache_mb; 0: the store's default).
	if v := os.Getenv("BLOWBACK_BENCH_BLOCK_CACHE_MB"); v != "" {
		mb, err := strconv.Atoi(v)
		if err != nil || mb < 0 {
			b.Fatalf("BLOWBACK_BENCH_BLOCK_CACHE_MB=%q", v)
		}
		o.BlockCacheSize = int64(mb) << 20
	}
	marker := fmt.Sprintf("bench2 %d %d", units, events)
	st, err := store.Open(dir, o, nil)
	if err != nil {
		b.Fatal(err)
	}
	if m, err := st.GetMeta("bench"); err == nil && string(m) == marker {
		b.Cleanup(func() { st.Close() })
		return st
	}
	st.Close()
	if err := os.RemoveAll(dir); err != nil {
		b.Fatal(err)
	}
	if st, err = store.Open(dir, o, nil); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	start := time.Now()
	l, err := st.NewSortedLoader()
	if err != nil {
		b.Fatal(err)
	}
	// Key order: IPv4 addresses, then IPv6, each ascending (benchAddr
	// grows with u); within an address, store.SortByKey. Ids must grow in
	// that order: a counter in the first 4 bytes, random bytes after it
	// (random ids, as NewEventID's, compress as badly in the tables).
	rng := rand.New(rand.NewPCG(uint64(units), uint64(events)))
	var id uint32
	var evs []*store.Event
	for _, v6 := range []bool{false, true} {
		for u := 0; u < units; u++ {
			if (u%8 == 7) != v6 {
				continue
			}
			evs = evs[:0]
			for i := u; i < events; i += units {
				evs = append(evs, benchEvent(i, units))
			}
			store.SortByKey(evs)
			for _, e := range evs {
				id++
				binary.BigEndian.PutUint32(e.ID[:4], id)
				binary.LittleEndian.PutUint64(e.ID[4:], rng.Uint64())
				binary.LittleEndian.PutUint32(e.ID[12:], rng.Uint32())
				if err := l.Add(e); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
	if _, err := l.Flush(); err != nil {
		b.Fatal(err)
	}
	if err := st.SetMeta("bench", []byte(marker)); err != nil {
		b.Fatal(err)
	}
	b.Logf("loaded %d events for %d addresses in %v", events, units, time.Since(start).Round(time.Millisecond))
	return st
}

// BenchmarkRebuild is the full re-score: every event's key scanned, every
// address decided, the zone built. Reports seconds per rebuild, events/s
// and the heap in use after it (peak RSS: bench/scoring/run.sh).
func BenchmarkRebuild(b *testing.B) {
	units, events, dir := benchSize(b)
	st := loadBench(b, filepath.Join(dir, "rebuild"), units, events)
	cur := &zones.Current{}
	eng := New(Config{Zone: "bl.test", TXT: "$", Policy: scoring.DefaultPolicy(), Now: func() time.Time { return benchNow }}, st, cur, nil, nil)
	runtime.GC()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := eng.Rebuild(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if n := eng.Listed(); n != units {
		b.Fatalf("listed %d, want %d", n, units)
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s/rebuild")
	b.ReportMetric(float64(events)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(ms.HeapInuse)/(1<<20), "heap-MiB")
}

// BenchmarkDecide is the store's point read behind a lookup (API, explain):
// Engine.Decide of a random address among the loaded units, its newest
// refs and its actions read from the store. It shows what the block cache
// is worth to point reads (BLOWBACK_BENCH_BLOCK_CACHE_MB).
func BenchmarkDecide(b *testing.B) {
	units, events, dir := benchSize(b)
	st := loadBench(b, filepath.Join(dir, "rebuild"), units, events)
	eng := New(Config{Zone: "bl.test", TXT: "$", Policy: scoring.DefaultPolicy(), Now: func() time.Time { return benchNow }}, st, &zones.Current{}, nil, nil)
	rng := rand.New(rand.NewPCG(1, 2))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		d, refs, _, err := eng.Decide(benchAddr(rng.IntN(units)))
		if err != nil || !d.Listed || len(refs) == 0 {
			b.Fatalf("decide: listed %v, %d refs, %v", d.Listed, len(refs), err)
		}
	}
}

// BenchmarkIngestToAnswer measures evidence-to-answer latency with units
// addresses listed: Engine.Ingest of a bounce from a new address (a synced
// commit, the moment the trap may answer 250), then DNS queries over UDP to
// a dnsd server on 127.0.0.1 until the address answers listed. Reports p50
// and p99.
func BenchmarkIngestToAnswer(b *testing.B) {
	units, _, dir := benchSize(b)
	st := loadBench(b, filepath.Join(dir, "ingest"), units, units) // one event per address: units listed
	cur := &zones.Current{}
	clock := func() time.Time { return benchNow }
	eng := New(Config{Zone: "bl.test", TXT: "$", Policy: scoring.DefaultPolicy(), Now: clock}, st, cur, nil, nil)
	err := eng.Start(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { eng.Stop(context.Background()) })
	srv := dnsd.New(dnsd.Config{}, cur, nil, nil)
	for try := 0; ; try++ { // UDP and TCP on one free port: retry if TCP's is taken
		if err = srv.Start("127.0.0.1:0"); err == nil {
			break
		}
		if try == 5 {
			b.Fatal(err)
		}
		srv = dnsd.New(dnsd.Config{}, cur, nil, nil)
	}
	b.Cleanup(func() { srv.Stop(context.Background()) })
	addr := srv.Addr().String()
	ctx := context.Background()
	lat := make([]time.Duration, 0, b.N)
	before := eng.Listed() // earlier runs on the same directory added addresses
	if before < units {
		b.Fatalf("listed %d, want at least %d", before, units)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ip := benchAddr(before + 1000 + i) // never seen before
		if cur.Load().Lookup(ip) != 0 {
			b.Fatalf("%s listed before its evidence", ip)
		}
		ev := &store.Event{ID: store.NewEventID(), Time: benchNow, ClientIP: ip, Kind: store.KindBounce,
			Rcpts: []string{"x@trap.test"}, TrapDomain: "trap.test", HELO: "mx"}
		start := time.Now()
		if err := eng.Ingest(ctx, ev, nil); err != nil {
			b.Fatal(err)
		}
		for {
			r, err := dnsd.Check(ctx, addr, "bl.test", ip)
			if err != nil {
				b.Fatal(err)
			}
			if r.Listed {
				break
			}
			if time.Since(start) > 10*time.Second {
				b.Fatalf("%s not answered listed after 10s", ip)
			}
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	if eng.Listed() != before+b.N {
		b.Fatalf("listed %d, want %d", eng.Listed(), before+b.N)
	}
	slices.Sort(lat)
	q := func(p float64) float64 { return lat[min(len(lat)-1, int(p*float64(len(lat))))].Seconds() * 1000 }
	b.ReportMetric(q(0.50), "p50-ms")
	b.ReportMetric(q(0.99), "p99-ms")
	b.ReportMetric(float64(before), "listed")
}

// BenchmarkListedSetMemory compares the heap taken by the engine's compact
// listed set with the map[netip.Prefix]entry it replaced, at
// BLOWBACK_BENCH_UNITS units.
func BenchmarkListedSetMemory(b *testing.B) {
	units, _, _ := benchSize(b)
	type oldEntry struct {
		codes   zones.Codes
		expires int64
	}
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	var compact, old float64
	for i := 0; i < b.N; i++ {
		h0 := heap()
		s := newListedSet(0, 0)
		for u := 0; u < units; u++ {
			s.set(scoring.Unit(benchAddr(u)), slot{codes: zones.CodeBounce, exp: 1})
		}
		h1 := heap()
		m := map[netip.Prefix]oldEntry{}
		for u := 0; u < units; u++ {
			m[scoring.Unit(benchAddr(u))] = oldEntry{codes: zones.CodeBounce, expires: 1}
		}
		h2 := heap()
		compact, old = float64(h1-h0), float64(h2-h1)
		runtime.KeepAlive(s)
		runtime.KeepAlive(m)
	}
	b.ReportMetric(compact/float64(units), "B/unit")
	b.ReportMetric(old/float64(units), "old-B/unit")
	b.ReportMetric(compact/(1<<20), "MiB")
	b.ReportMetric(old/(1<<20), "old-MiB")
}

// BenchmarkRestart is a restart with a persisted snapshot (issue 17):
// Start returns serving the last published snapshot, and the rebuild runs
// behind it. Reports the time until the zone is served (serve-s: Start
// returned, every listed address answers) and until the rebuilt listing
// replaces it (rebuilt-s). The store is open already (badger's own open
// time is not in it).
func BenchmarkRestart(b *testing.B) {
	units, events, dir := benchSize(b)
	st := loadBench(b, filepath.Join(dir, "rebuild"), units, events)
	snapFile := filepath.Join(b.TempDir(), "snapshot.bin")
	cfg := Config{Zone: "bl.test", TXT: "$", Policy: scoring.DefaultPolicy(), Now: func() time.Time { return benchNow },
		SnapshotFile: snapFile, PersistEvery: time.Hour}
	first := New(cfg, st, &zones.Current{}, nil, nil)
	if err := first.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	first.Stop(context.Background()) // persists
	var serve, rebuilt time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		cur := &zones.Current{}
		eng := New(cfg, st, cur, nil, nil)
		start := time.Now()
		if err := eng.Start(context.Background()); err != nil {
			b.Fatal(err)
		}
		if cur.Load().Lookup(benchAddr(units-1)) == 0 {
			b.Fatal("the last address is not served after Start")
		}
		serve += time.Since(start)
		for {
			eng.mu.Lock()
			behind := eng.behind
			eng.mu.Unlock()
			if !behind {
				break
			}
			time.Sleep(time.Millisecond)
		}
		rebuilt += time.Since(start)
		eng.Stop(context.Background())
	}
	b.ReportMetric(serve.Seconds()/float64(b.N), "serve-s")
	b.ReportMetric(rebuilt.Seconds()/float64(b.N), "rebuilt-s")
}
