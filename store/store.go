// Package store keeps blowback's durable state in badger/v4: the evidence
// log, manual listing actions, the audit trail, raw messages and a little
// metadata. It is the source of truth; listings and zone snapshots are
// rebuilt from it at start.
//
// # Key layout
//
// Every key starts with a one-byte prefix naming its table. Integers are
// big-endian so that keys sort by them.
//
//	'e' fam addr time kind rcpt domain id   evidence; value: version byte + JSON Event
//	    fam is 4 or 6, addr 4 or 16 bytes, time int64 unix nanoseconds,
//	    kind 1 byte, rcpt and domain uint32 FNV-1a hashes, id 16 bytes.
//	    Scoring reads keys only (Ref), so a full re-score never decodes values.
//	'x' id                                  event index: value is the 'e' key (idempotent Put)
//	'r' id                                  raw message, gzip; value: version byte + gzip data
//	'm' fam addr time seq                   manual action; value: version byte + JSON Action
//	'a' time seq                            audit entry; value: version byte + JSON AuditEntry
//	'M' name                                metadata (e.g. "serial": uint32)
//	'u' fam unit window                     per-unit summary of one window (unitcap.go)
//	'n' fam net window                      per-network summary of one window (unitcap.go)
//
// Values start with a version byte (currently 1); readers reject versions
// they do not know rather than guess. Keys are not versioned: a change of
// key layout needs a new table prefix (and a migration that rewrites the
// old one), never a reinterpretation of an existing prefix.
//
// # Durability
//
// The database is opened with SyncWrites: a commit returns only after
// badger's write-ahead log and value log are fsynced. badger syncs its WAL
// once per transaction, so Put does its own group commit (commit.go): every
// Put waiting at a moment is written in one transaction by one committer
// goroutine, with one fsync, and each Put returns after that. Concurrent
// SMTP sessions share fsyncs: BenchmarkPutConcurrent reports events/fsync.
//
// # Full disk and crashes
//
// badger writes through mmap and dies of SIGBUS when the filesystem is
// full, so the store refuses writes (ErrDiskFull) while fewer than
// Options.MinFreeBytes are available and resumes by itself when space
// returns (space.go). A kill -9 can leave an empty memtable or value-log
// file that badger v4.9 will not open (its issue #2207); Open removes such
// empty files first (repair.go). TestCrashMidCompaction and
// bench/reliability exercise both.
//
// # Retention and memory
//
// Evidence and its index carry a badger TTL (Options.Retention, default
// 400 days), raw messages a shorter one (Options.RawTTL, 30 days); expired
// keys vanish from reads at once and from disk at compaction, and a
// maintenance loop runs value-log GC every Options.GCInterval. Memory is
// bounded by Options.LowMemory or the explicit MemTableSize,
// BlockCacheSize (default DefaultBlockCache, 32 MiB) and IndexCacheSize.
// badger reads its files through mmap; what an open or a full key scan
// reads once is given back to the kernel as it goes (pages_linux.go), so
// that a rebuild's RSS is its own memory, not the tables it passed.
//
// # Backup
//
// Backup writes badger's backup stream (every live key with its TTL);
// Restore loads one into an empty store. `blowback backup` / `restore` and
// the admin backup API use these two; no badger type leaves this package.
//
// # Errors
//
// Callers match the exported sentinels with errors.Is: ErrLocked (another
// process holds the database: go through the running node), ErrDiskFull,
// ErrNotFound, ErrDuplicate, ErrInvalid, ErrClosed.
package store

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/blowback-dnsbl/blowback/internal/lifecycle"
)

// Errors.
var (
	ErrInvalid   = errors.New("store: invalid")
	ErrDuplicate = errors.New("store: duplicate event")
	ErrNotFound  = errors.New("store: not found")
	ErrClosed    = errors.New("store: closed")
	// ErrDiskFull: the data filesystem is below Options.MinFreeBytes;
	// nothing was written (space.go).
	ErrDiskFull = errors.New("store: disk full")
	// ErrLocked: Open found the database held by another open store (a
	// running node); the caller may go through that node instead.
	ErrLocked = errors.New("store: in use by another process")
)

const valueVersion = 1

// Table prefixes (see package doc).
const (
	pEvent  = 'e'
	pIndex  = 'x'
	pRaw    = 'r'
	pManual = 'm'
	pAudit  = 'a'
	pMeta   = 'M'
)

// Options tune the store.
type Options struct {
	// Retention is how long evidence is kept (badger TTL). Zero keeps it forever.
	Retention time.Duration
	// RawTTL is how long raw messages are kept. Zero keeps them as long as evidence.
	RawTTL time.Duration
	// RawMax caps a stored raw message, in bytes before compression.
	RawMax int
	// LowMemory trades speed for a smaller footprint (smaller memtables and caches).
	LowMemory bool
	// InMemory keeps everything in memory (tests and benchmarks only: nothing is durable).
	InMemory bool
	// GCInterval is how often value-log GC runs; zero means 10 minutes.
	GCInterval time.Duration
	// Bounded memory: badger's memtable size, block cache and index cache
	// in bytes. Zero keeps the default: badger's for the memtable (64 MiB)
	// and the index cache, DefaultBlockCache for the block cache (or
	// LowMemory's). A non-zero IndexCacheSize keeps table indexes in a
	// bounded cache instead of all in memory.
	MemTableSize   int64
	BlockCacheSize int64
	IndexCacheSize int64
	// MinFreeBytes: writes are refused with ErrDiskFull while the data
	// filesystem has fewer bytes available (space.go). Zero: four memtables
	// plus 64 MiB; negative: no check.
	MinFreeBytes int64
	// Per-unit caps (unitcap.go): per IPv4 address or IPv6 /64 and per
	// UnitWindow of event time, at most UnitMaxEvents events are stored one
	// by one (past it they are summarised, counted by kind; the first of
	// each kind is still stored) and at most UnitMaxRawBytes of raw
	// messages (compressed). Zero: no cap.
	UnitWindow      time.Duration
	UnitMaxEvents   int
	UnitMaxRawBytes int64
	// Per-network caps (unitcap.go): the same per IPv4 /24 or IPv6 /48
	// (Network) and UnitWindow, after the unit's: past NetMaxEvents stored
	// events in the network an event is summarised unless it is its unit's
	// first of its kind in the window (stored, so that every unit is still
	// listed); past NetMaxRawBytes raw messages are dropped. Zero: no cap.
	NetMaxEvents   int
	NetMaxRawBytes int64
}

// DefaultBlockCache is the block cache of a store opened with
// Options.BlockCacheSize zero, instead of badger's 256 MiB. The store's
// reads are a full key scan at start (the rebuild: every block once, which
// a cache only adds to the heap, twice over with the garbage collector's
// headroom) and point reads of one address or one id (a few blocks each,
// decompressed again on a miss in microseconds). docs/dns.md "The
// rebuild's memory" has the figures.
const DefaultBlockCache = 32 << 20

// DefaultOptions are the documented defaults.
func DefaultOptions() Options {
	return Options{
		Retention:  400 * 24 * time.Hour,
		RawTTL:     30 * 24 * time.Hour,
		RawMax:     256 << 10,
		GCInterval: 10 * time.Minute,

		UnitWindow:      time.Hour,
		UnitMaxEvents:   500,
		UnitMaxRawBytes: 16 << 20,
		NetMaxEvents:    16 * 500,
		NetMaxRawBytes:  256 << 20,
	}
}

// Store is the badger-backed store. Its methods are safe for concurrent use.
type Store struct {
	db   *badger.DB
	opts Options
	log  *slog.Logger
	seq  atomic.Uint32

	stop chan struct{}
	wg   sync.WaitGroup
	once sync.Once

	// group commit (commit.go)
	closeMu sync.RWMutex
	closed  bool
	putCh   chan *putReq
	commits atomic.Uint64 // transactions committed by the committer
	puts    atomic.Uint64 // events committed

	// per-unit and per-network caps (unitcap.go), by CapBy-1
	summarised [2]atomic.Uint64
	rawDropped [2]atomic.Uint64

	space *spaceGuard // nil in memory

	pages *pager // nil in memory (pages.go)
}

// Open opens (creating if needed) the store in dir.
func Open(dir string, opts Options, log *slog.Logger) (*Store, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("pkg", "store")
	// Values above 64 bytes (every event's JSON) live in the value log, so
	// the key-only scan of a full re-score reads small tables only.
	bo := badger.DefaultOptions(dir).
		WithSyncWrites(true).
		WithValueThreshold(64).
		WithLogger(badgerLogger{log}).
		WithLoggingLevel(badger.WARNING).
		WithNumVersionsToKeep(1)
	if opts.InMemory {
		// No value log in memory: values stay in the tables.
		bo = bo.WithDir("").WithValueDir("").WithInMemory(true).WithSyncWrites(false).
			WithValueThreshold(badger.DefaultOptions("").ValueThreshold)
	}
	if opts.LowMemory {
		bo = bo.WithMemTableSize(8 << 20).WithNumMemtables(2).WithBlockCacheSize(16 << 20).
			WithIndexCacheSize(8 << 20).WithValueLogFileSize(64 << 20).WithNumCompactors(2)
	}
	if opts.MemTableSize > 0 {
		bo = bo.WithMemTableSize(opts.MemTableSize)
	}
	if opts.BlockCacheSize > 0 {
		bo = bo.WithBlockCacheSize(opts.BlockCacheSize)
	} else if !opts.LowMemory {
		bo = bo.WithBlockCacheSize(DefaultBlockCache)
	}
	if opts.IndexCacheSize > 0 {
		bo = bo.WithIndexCacheSize(opts.IndexCacheSize)
	}
	var space *spaceGuard
	if !opts.InMemory {
		min := opts.MinFreeBytes
		if min == 0 {
			min = minFreeDefault(bo.MemTableSize)
		}
		space = &spaceGuard{dir: dir, min: min, free: diskFree}
		// Opening replays the write-ahead log and may flush it: with no
		// room at all, refuse rather than die of SIGBUS (space.go).
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return nil, fmt.Errorf("store: open %s: %w", dir, err)
		}
		if err := (&spaceGuard{dir: dir, min: min / 4, free: diskFree}).check(0); err != nil {
			return nil, fmt.Errorf("store: open %s: %w", dir, err)
		}
		if err := removeEmptyLogs(dir, log); err != nil {
			return nil, err
		}
	}
	var pages *pager
	if !opts.InMemory {
		pages = newPager(dir, log)
	}
	var db *badger.DB
	var err error
	// badger's open reads the whole of the last value-log file (vlog.open
	// checks its entries to find where it ends: up to a file, 1 GiB) and
	// the tables' indexes, through mmap; give the pages back as it goes,
	// or they stay resident through the rebuild that follows (pages_linux.go).
	pages.during(10*time.Millisecond, func() { db, err = badger.Open(bo) }, ".vlog", ".sst")
	if err != nil {
		if !opts.InMemory && heldElsewhere(dir) {
			return nil, fmt.Errorf("%w: %s", ErrLocked, dir)
		}
		return nil, fmt.Errorf("store: open %s: %w", dir, err)
	}
	if opts.GCInterval <= 0 {
		opts.GCInterval = 10 * time.Minute
	}
	s := &Store{db: db, opts: opts, log: log, stop: make(chan struct{}), putCh: make(chan *putReq, 1024), space: space, pages: pages}
	s.wg.Add(1)
	go s.committer()
	if !opts.InMemory {
		s.wg.Add(1)
		go s.maintain()
	}
	return s, nil
}

// Close stops maintenance and closes the database.
func (s *Store) Close() error {
	var err error
	s.once.Do(func() {
		s.closeMu.Lock()
		s.closed = true
		s.closeMu.Unlock()
		close(s.stop)
		s.wg.Wait()
		err = s.db.Close()
	})
	return err
}

func (s *Store) maintain() {
	defer s.wg.Done()
	defer lifecycle.Recover(s.log, nil, "panic in store maintenance")
	lifecycle.Every(s.stop, s.opts.GCInterval, s.valueLogGC)
}

// valueLogGC runs badger's value-log GC until it finds nothing to do (at
// most 10 files).
func (s *Store) valueLogGC() {
	// GC rewrites live values before it deletes a file: put it off while
	// space is short.
	if err := s.guard(s.db.Opts().ValueLogFileSize / 2); err != nil {
		s.log.Warn("value-log GC put off", "err", err)
		return
	}
	for i := 0; i < 10; i++ {
		if s.db.RunValueLogGC(0.5) != nil {
			return // nothing (more) to collect
		}
	}
}

// Hash32 is the FNV-1a hash of a lower-cased string, as stored in Ref.Rcpt and Ref.Domain.
func Hash32(s string) uint32 {
	h := fnv.New32a()
	io.WriteString(h, strings.ToLower(s))
	return h.Sum32()
}

func appendAddr(b []byte, a netip.Addr) []byte {
	a = a.Unmap()
	if a.Is4() {
		v := a.As4()
		return append(append(b, 4), v[:]...)
	}
	v := a.As16()
	return append(append(b, 6), v[:]...)
}

// AddrPrefixKey returns the key prefix under table t that covers every
// address in p. Prefix lengths that are not a whole number of bytes are
// rounded down (the caller filters).
func addrPrefixKey(t byte, p netip.Prefix) []byte {
	a := p.Addr().Unmap()
	bits := p.Bits()
	if p.Addr().Is4In6() {
		bits -= 96
	}
	k := []byte{t}
	if a.Is4() {
		v := a.As4()
		return append(append(k, 4), v[:bits/8]...)
	}
	v := a.As16()
	return append(append(k, 6), v[:bits/8]...)
}

// appendTimeSeq appends at and the next sequence number to k: records of
// one moment keep their order and never share a key.
func (s *Store) appendTimeSeq(k []byte, at time.Time) []byte {
	k = binary.BigEndian.AppendUint64(k, uint64(at.UnixNano()))
	return binary.BigEndian.AppendUint32(k, s.nextSeq())
}

// addrTimeKey is the key of a record kept under prefix byte t for the
// address a, in time order.
func (s *Store) addrTimeKey(t byte, a netip.Addr, at time.Time) []byte {
	return s.appendTimeSeq(addrPrefixKey(t, netip.PrefixFrom(a, a.BitLen())), at)
}

func eventKey(e *Event) []byte {
	return Ref{ID: e.ID, Addr: e.ClientIP, Time: e.Time, Kind: e.Kind, Rcpt: Hash32(e.TrapAddress()), Domain: Hash32(e.TrapDomain)}.key()
}

// key is the key of the event r refers to (parseRef reads it back).
func (r Ref) key() []byte {
	k := make([]byte, 0, 50)
	k = append(k, pEvent)
	k = appendAddr(k, r.Addr)
	k = binary.BigEndian.AppendUint64(k, uint64(r.Time.UnixNano()))
	k = append(k, byte(r.Kind))
	k = binary.BigEndian.AppendUint32(k, r.Rcpt)
	k = binary.BigEndian.AppendUint32(k, r.Domain)
	return append(k, r.ID[:]...)
}

// parseAddr reads fam+addr from b, returning the rest.
func parseAddr(b []byte) (netip.Addr, []byte, bool) {
	if len(b) < 1 {
		return netip.Addr{}, nil, false
	}
	switch b[0] {
	case 4:
		if len(b) < 5 {
			return netip.Addr{}, nil, false
		}
		return netip.AddrFrom4([4]byte(b[1:5])), b[5:], true
	case 6:
		if len(b) < 17 {
			return netip.Addr{}, nil, false
		}
		a := netip.AddrFrom16([16]byte(b[1:17]))
		if a.Is4In6() {
			return netip.Addr{}, nil, false // stored as family 4; never written like this
		}
		return a, b[17:], true
	}
	return netip.Addr{}, nil, false
}

func parseRef(k []byte) (Ref, bool) {
	if len(k) < 1 || k[0] != pEvent {
		return Ref{}, false
	}
	a, rest, ok := parseAddr(k[1:])
	if !ok || len(rest) != 8+1+4+4+16 {
		return Ref{}, false
	}
	r := Ref{
		Addr:   a,
		Time:   time.Unix(0, int64(binary.BigEndian.Uint64(rest))).UTC(),
		Kind:   Kind(rest[8]),
		Rcpt:   binary.BigEndian.Uint32(rest[9:]),
		Domain: binary.BigEndian.Uint32(rest[13:]),
	}
	copy(r.ID[:], rest[17:])
	return r, true
}

func encodeJSON(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return append([]byte{valueVersion}, b...), nil
}

// encodeEvent normalises e (UTC time, unmapped address) and encodes it.
func encodeEvent(e *Event) ([]byte, error) {
	e.Time = e.Time.UTC()
	e.ClientIP = e.ClientIP.Unmap()
	val, err := encodeJSON(e)
	if err != nil {
		return nil, fmt.Errorf("store: encode event: %w", err)
	}
	return val, nil
}

func decodeJSON(b []byte, v any) error {
	if len(b) == 0 || b[0] != valueVersion {
		return fmt.Errorf("%w: unknown value version", ErrInvalid)
	}
	return json.Unmarshal(b[1:], v)
}

func (s *Store) ttlEntry(k, v []byte, ttl time.Duration) *badger.Entry {
	e := badger.NewEntry(k, v)
	if ttl > 0 {
		e = e.WithTTL(ttl)
	}
	return e
}

// Put commits one event durably (the call returns after fsync). raw, if
// not nil, is the message as received; it is stored gzip-compressed and
// capped at Options.RawMax. An event whose id is already stored is not
// written again: Put returns ErrDuplicate. Past the per-unit or
// per-network caps (Options.UnitMaxEvents, UnitMaxRawBytes, NetMaxEvents,
// NetMaxRawBytes; unitcap.go) the event is summarised or its raw message
// dropped; Put still returns nil.
//
// Concurrent Puts are committed together (group commit, see commit.go):
// one badger transaction and one fsync for every Put waiting at the time.
func (s *Store) Put(ctx context.Context, e *Event, raw []byte) error {
	if err := e.Validate(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	val, err := encodeEvent(e)
	if err != nil {
		return err
	}
	r := &putReq{key: eventKey(e), idx: append([]byte{pIndex}, e.ID[:]...), val: val, done: make(chan error, 1)}
	if s.capsOn() {
		r.unit, r.window, r.time, r.kind = Unit(e.ClientIP), s.capWindow(e.Time), e.Time, e.Kind
		r.capKey = unitCapKey(r.unit, r.window)
		if s.netCapsOn() {
			r.net = Network(e.ClientIP)
			r.netKey = netCapKey(r.net, r.window)
		}
	}
	if raw != nil {
		r.raw, err = compress(raw, s.opts.RawMax)
		if err != nil {
			return err
		}
		r.rawKey = append([]byte{pRaw}, e.ID[:]...)
	}
	return s.commit(ctx, r)
}

func compress(raw []byte, max int) ([]byte, error) {
	if max > 0 && len(raw) > max {
		raw = raw[:max]
	}
	var buf bytes.Buffer
	buf.Grow(len(raw)/3 + 64)
	buf.WriteByte(valueVersion)
	// A gzip writer allocates ~800 KB of state: reuse them (this was most of
	// the CPU of evidence intake with raw messages).
	zw, _ := gzipWriters.Get().(*gzip.Writer)
	if zw == nil {
		zw, _ = gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	} else {
		zw.Reset(&buf)
	}
	defer gzipWriters.Put(zw)
	if _, err := zw.Write(raw); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

var gzipWriters sync.Pool

// view runs fn in a read transaction; a missing key is ErrNotFound.
func (s *Store) view(fn func(txn *badger.Txn) error) error {
	err := s.db.View(fn)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return ErrNotFound
	}
	return err
}

// decodeItem decodes the JSON value of item (version byte first).
func decodeItem[T any](item *badger.Item) (T, error) {
	var v T
	err := item.Value(func(b []byte) error { return decodeJSON(b, &v) })
	return v, err
}

// scanValues decodes every value under prefix, in key order, and calls fn
// with it; it stops at fn's first error, or when ctx ends.
func scanValues[T any](ctx context.Context, db *badger.DB, prefix []byte, fn func(T) error) error {
	return db.View(func(txn *badger.Txn) error {
		o := badger.DefaultIteratorOptions
		o.Prefix = prefix
		it := txn.NewIterator(o)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			if err := ctx.Err(); err != nil {
				return err
			}
			v, err := decodeItem[T](it.Item())
			if err != nil {
				return err
			}
			if err := fn(v); err != nil {
				return err
			}
		}
		return nil
	})
}

// appendItem appends the decoded value of item to *out and reports
// whether *out reached limit (0: no limit).
func appendItem[T any](out *[]T, item *badger.Item, limit int) (bool, error) {
	v, err := decodeItem[T](item)
	if err != nil {
		return false, err
	}
	*out = append(*out, v)
	return limit > 0 && len(*out) >= limit, nil
}

// newestFirst iterates the keys under prefix from the largest down; tail
// is at least the longest key's length past the prefix (a reverse
// iteration starts at the seek key or below it).
func newestFirst(txn *badger.Txn, prefix []byte, tail int) *badger.Iterator {
	o := badger.DefaultIteratorOptions
	o.Reverse = true
	o.Prefix = prefix
	it := txn.NewIterator(o)
	it.Seek(append(append([]byte{}, prefix...), bytes.Repeat([]byte{0xff}, tail)...))
	return it
}

// value calls fn with the value stored under key (valid only during fn).
func value(txn *badger.Txn, key []byte, fn func(v []byte) error) error {
	it, err := txn.Get(key)
	if err != nil {
		return err
	}
	return it.Value(fn)
}

// Raw returns the stored raw message of an event.
func (s *Store) Raw(id EventID) ([]byte, error) {
	var out []byte
	err := s.view(func(txn *badger.Txn) error {
		return value(txn, append([]byte{pRaw}, id[:]...), func(v []byte) error {
			if len(v) == 0 || v[0] != valueVersion {
				return fmt.Errorf("%w: unknown value version", ErrInvalid)
			}
			zr, err := gzip.NewReader(bytes.NewReader(v[1:]))
			if err != nil {
				return err
			}
			out, err = io.ReadAll(zr)
			return err
		})
	})
	return out, err
}

// Has reports whether an event with this id is stored.
func (s *Store) Has(id EventID) (bool, error) {
	err := s.view(func(txn *badger.Txn) error {
		_, err := txn.Get(append([]byte{pIndex}, id[:]...))
		return err
	})
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// Get returns one event by id.
func (s *Store) Get(id EventID) (*Event, error) {
	var e Event
	err := s.view(func(txn *badger.Txn) error {
		var key []byte
		if err := value(txn, append([]byte{pIndex}, id[:]...), func(v []byte) error { key = append(key, v...); return nil }); err != nil {
			return err
		}
		return value(txn, key, func(v []byte) error { return decodeJSON(v, &e) })
	})
	if err != nil {
		return nil, err
	}
	return &e, nil
}

// Refs returns the compact evidence of every address in p, oldest first per address.
func (s *Store) Refs(p netip.Prefix) ([]Ref, error) {
	var out []Ref
	err := s.scanRefs(context.Background(), addrPrefixKey(pEvent, p), func(r Ref) error {
		if p.Contains(r.Addr) {
			out = append(out, r)
		}
		return nil
	})
	return out, err
}

// ScanRefs calls fn for every stored event in key order (address, then time),
// reading keys only. fn must not keep r beyond the call's return only if it copies; Ref is a value.
func (s *Store) ScanRefs(ctx context.Context, fn func(r Ref) error) error {
	return s.scanRefs(ctx, []byte{pEvent}, fn)
}

// dropPagesEvery is how many keys a scan reads between two reclaims of
// table pages: about 16 MB of tables at ~60 bytes a key.
const dropPagesEvery = 1 << 18

func (s *Store) scanRefs(ctx context.Context, prefix []byte, fn func(r Ref) error) error {
	return s.db.View(func(txn *badger.Txn) error {
		o := badger.DefaultIteratorOptions
		o.PrefetchValues = false
		o.Prefix = prefix
		it := txn.NewIterator(o)
		defer it.Close()
		// A full scan reads every block of the event tables once:
		// reclaim the pages it leaves mapped as it goes (pages_linux.go).
		n := 0
		defer func() {
			if n >= dropPagesEvery {
				s.pages.drop(".sst")
			}
		}()
		for it.Rewind(); it.Valid(); it.Next() {
			if n++; n%4096 == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
				if n%dropPagesEvery == 0 {
					s.pages.drop(".sst")
				}
			}
			r, ok := parseRef(it.Item().Key())
			if !ok {
				continue
			}
			if err := fn(r); err != nil {
				return err
			}
		}
		return nil
	})
}

// Events returns the full events for the addresses in p, newest first, at most limit (0: all).
func (s *Store) Events(p netip.Prefix, limit int) ([]Event, error) {
	if limit > 0 && p.Bits() < p.Addr().BitLen() {
		return s.newestEvents(p, limit)
	}
	var out []Event
	prefix := addrPrefixKey(pEvent, p)
	err := s.db.View(func(txn *badger.Txn) error {
		it := newestFirst(txn, prefix, 60)
		defer it.Close()
		for ; it.Valid(); it.Next() {
			r, ok := parseRef(it.Item().Key())
			if !ok || !p.Contains(r.Addr) {
				continue
			}
			if full, err := appendItem(&out, it.Item(), limit); err != nil || full {
				return err
			}
		}
		return nil
	})
	sortEventsNewestFirst(out)
	return out, err
}

// newestEvents returns the newest limit events across the addresses of p
// (a /64): the keys sort by address first, so reading them newest first
// and stopping at limit gave the events of the highest addresses, not the
// newest. The refs come first, keys only and bounded (RefsNewest reads at
// most 4 x eventsRefs keys, eventsRefs per address), then just the newest
// limit of them, newest first (ties in reverse key order, as before).
func (s *Store) newestEvents(p netip.Prefix, limit int) ([]Event, error) {
	refs, _, err := s.RefsNewest(p, max(limit, eventsRefs))
	if err != nil {
		return nil, err
	}
	type timedKey struct {
		t time.Time
		k []byte
	}
	keys := make([]timedKey, len(refs))
	for i, r := range refs {
		keys[i] = timedKey{r.Time, r.key()}
	}
	slices.SortFunc(keys, func(a, b timedKey) int {
		if c := b.t.Compare(a.t); c != 0 {
			return c
		}
		return bytes.Compare(b.k, a.k)
	})
	keys = keys[:min(limit, len(keys))]
	out := make([]Event, 0, len(keys))
	err = s.db.View(func(txn *badger.Txn) error {
		for _, tk := range keys {
			var e Event
			if err := value(txn, tk.k, func(v []byte) error { return decodeJSON(v, &e) }); err != nil {
				if errors.Is(err, badger.ErrKeyNotFound) {
					continue // expired since RefsNewest read it
				}
				return err
			}
			out = append(out, e)
		}
		return nil
	})
	return out, err
}

// eventsRefs is how many refs of a /64 newestEvents picks its events from
// at least: within the newest 4096 refs a decision reads (listing's
// DefaultMaxRefs), at most 4096 keys read.
const eventsRefs = 1024

// sortEventsNewestFirst: keys sort by address first; across the addresses
// of a /64 this restores time order (stable: events of the same time keep
// their key order). It was an insertion sort, quadratic in the events of a
// /64 spread over many addresses.
func sortEventsNewestFirst(ev []Event) {
	slices.SortStableFunc(ev, func(a, b Event) int { return b.Time.Compare(a.Time) })
}

func (s *Store) nextSeq() uint32 { return s.seq.Add(1) }

// AddAction records a manual listing action and its audit entry in one commit.
func (s *Store) AddAction(ctx context.Context, a Action) error {
	if a.Op != OpList && a.Op != OpDelist {
		return fmt.Errorf("%w: action op %q", ErrInvalid, a.Op)
	}
	if !a.Prefix.IsValid() {
		return fmt.Errorf("%w: action without address", ErrInvalid)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	a.Time = a.Time.UTC()
	a.Prefix = a.Prefix.Masked()
	val, err := encodeJSON(a)
	if err != nil {
		return err
	}
	k := s.addrTimeKey(pManual, a.Prefix.Addr(), a.Time)
	who := a.Who
	if a.Public {
		who = "public:" + who
	}
	audit := AuditEntry{Time: a.Time, Who: who, Action: a.Op, Target: a.Prefix.String(), Reason: a.Reason}
	if err := s.guard(int64(len(val)) * 2); err != nil {
		return err
	}
	return s.db.Update(func(txn *badger.Txn) error {
		if err := txn.Set(k, val); err != nil {
			return err
		}
		return s.auditTxn(txn, audit)
	})
}

// Actions returns the manual actions whose prefix overlaps p, oldest first.
func (s *Store) Actions(p netip.Prefix) ([]Action, error) {
	var out []Action
	err := scanValues(context.Background(), s.db, addrPrefixKey(pManual, p), func(a Action) error {
		if a.Prefix.Overlaps(p) {
			out = append(out, a)
		}
		return nil
	})
	sortActions(out)
	return out, err
}

// AllActions calls fn for every manual action.
func (s *Store) AllActions(ctx context.Context, fn func(a Action) error) error {
	return scanValues(ctx, s.db, []byte{pManual}, fn)
}

func sortActions(a []Action) {
	for i := 1; i < len(a); i++ {
		for j := i; j > 0 && a[j].Time.Before(a[j-1].Time); j-- {
			a[j], a[j-1] = a[j-1], a[j]
		}
	}
}

func (s *Store) auditTxn(txn *badger.Txn, e AuditEntry) error {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	e.Time = e.Time.UTC()
	val, err := encodeJSON(e)
	if err != nil {
		return err
	}
	k := s.appendTimeSeq([]byte{pAudit}, e.Time)
	return txn.Set(k, val)
}

// Audit appends an entry to the audit trail.
func (s *Store) Audit(ctx context.Context, e AuditEntry) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := s.guard(4 << 10); err != nil {
		return err
	}
	return s.db.Update(func(txn *badger.Txn) error { return s.auditTxn(txn, e) })
}

// AuditLog returns audit entries at or after since, oldest first, at most limit (0: all).
func (s *Store) AuditLog(since time.Time, limit int) ([]AuditEntry, error) {
	var out []AuditEntry
	err := s.db.View(func(txn *badger.Txn) error {
		o := badger.DefaultIteratorOptions
		o.Prefix = []byte{pAudit}
		it := txn.NewIterator(o)
		defer it.Close()
		start := []byte{pAudit}
		if since.Unix() > 0 {
			start = binary.BigEndian.AppendUint64(start, uint64(since.UnixNano()))
		}
		for it.Seek(start); it.Valid(); it.Next() {
			if full, err := appendItem(&out, it.Item(), limit); err != nil || full {
				return err
			}
		}
		return nil
	})
	return out, err
}

// GetMeta reads a metadata value; ErrNotFound when unset.
func (s *Store) GetMeta(name string) ([]byte, error) {
	var out []byte
	err := s.view(func(txn *badger.Txn) error {
		return value(txn, append([]byte{pMeta}, name...), func(v []byte) error { out = append([]byte{}, v...); return nil })
	})
	return out, err
}

// SetMeta writes a metadata value durably.
func (s *Store) SetMeta(name string, v []byte) error {
	if err := s.guard(int64(len(v))); err != nil {
		return err
	}
	return s.db.Update(func(txn *badger.Txn) error {
		return txn.Set(append([]byte{pMeta}, name...), v)
	})
}

// NextSerial returns a zone serial greater than both the last one handed
// out (kept durably) and min, so serials only increase, also across restarts.
func (s *Store) NextSerial(min uint32) (uint32, error) {
	if err := s.guard(0); err != nil {
		return 0, err
	}
	var next uint32
	err := s.db.Update(func(txn *badger.Txn) error {
		var last uint32
		if it, err := txn.Get([]byte{pMeta, 's', 'e', 'r', 'i', 'a', 'l'}); err == nil {
			if err := it.Value(func(v []byte) error {
				if len(v) == 4 {
					last = binary.BigEndian.Uint32(v)
				}
				return nil
			}); err != nil {
				return err
			}
		} else if !errors.Is(err, badger.ErrKeyNotFound) {
			return err
		}
		next = last + 1
		if next < min {
			next = min
		}
		return txn.Set([]byte{pMeta, 's', 'e', 'r', 'i', 'a', 'l'}, binary.BigEndian.AppendUint32(nil, next))
	})
	return next, err
}

type badgerLogger struct{ l *slog.Logger }

func (b badgerLogger) Errorf(f string, a ...any) {
	b.l.Error(strings.TrimSpace(fmt.Sprintf(f, a...)), "component", "badger")
}
func (b badgerLogger) Warningf(f string, a ...any) {
	b.l.Warn(strings.TrimSpace(fmt.Sprintf(f, a...)), "component", "badger")
}
func (b badgerLogger) Infof(f string, a ...any) {
	b.l.Debug(strings.TrimSpace(fmt.Sprintf(f, a...)), "component", "badger")
}
func (b badgerLogger) Debugf(f string, a ...any) {
	b.l.Debug(strings.TrimSpace(fmt.Sprintf(f, a...)), "component", "badger")
}

// Backup writes a full backup of the store (badger's backup stream, every
// table and every live version) to w. It runs against a consistent
// snapshot while the store stays in use.
func (s *Store) Backup(w io.Writer) error {
	if _, err := s.db.Backup(w, 0); err != nil {
		return fmt.Errorf("store: backup: %w", err)
	}
	return nil
}

// Restore loads a backup written by Backup into the store. Restore into an
// empty store; keys already present are overwritten.
func (s *Store) Restore(r io.Reader) error {
	if err := s.guard(0); err != nil {
		return err
	}
	if err := s.db.Load(r, 256); err != nil {
		return fmt.Errorf("store: restore: %w", err)
	}
	return nil
}
