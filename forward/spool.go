package forward

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/blowback-dnsbl/blowback/internal/lifecycle"
	"github.com/blowback-dnsbl/blowback/internal/metric"
	"github.com/blowback-dnsbl/blowback/store"
)

// Errors.
var (
	ErrSpoolFull = errors.New("forward: spool full")
	ErrClosed    = errors.New("forward: spool closed")
	ErrCorrupt   = errors.New("forward: corrupt spool record")
)

// Spool key prefixes.
//
//	'q' seq   pending event, oldest first; value: record
//	'd' seq   dead letter: an event the central node rejected as invalid
//
// seq is a big-endian uint64 that grows for every record (restored from the
// highest key at open), so iteration order is arrival order.
const (
	pQueue = 'q'
	pDead  = 'd'
)

// recordVersion is the first byte of every value; readers reject others.
const recordVersion = 1

// Record layout: version(1) id(16) time(8, unix ns) len(4) event-JSON raw.
const recordHeader = 1 + 16 + 8 + 4

// Item is one spooled event as read back for sending.
type Item struct {
	Key   []byte          // spool key (pass to Ack / DeadLetter)
	ID    store.EventID   // event id
	Time  time.Time       // event time
	Event json.RawMessage // the event, JSON as stored.Event marshals it
	Raw   []byte          // raw message, may be nil
}

// size is the item's share of a batch body (before compression).
func (it *Item) size() int { return len(it.Event) + len(it.Raw)*4/3 + 64 }

// SpoolOptions tune the spool.
type SpoolOptions struct {
	// MaxEvents bounds the backlog; Put fails with ErrSpoolFull beyond it
	// (the trap then answers 451 and the sender retries). Zero: no bound.
	MaxEvents int64
	// RawMax caps the raw message kept per event (bytes); longer ones are
	// truncated. Zero keeps no raw message.
	RawMax int
	// InMemory keeps everything in memory (tests only: nothing is durable).
	InMemory bool
	// GCInterval is how often value-log GC runs; zero means 5 minutes.
	GCInterval time.Duration
	// MinFreeBytes: Put fails with store.ErrDiskFull (the trap answers 452)
	// while the spool's filesystem has less free space, instead of badger
	// crashing on a full disk. Zero: 96 MiB; negative: no check.
	MinFreeBytes int64

	// Per-unit caps (unitcap.go): per unit (IPv4 address, IPv6 /64) and
	// UnitWindow of event time (zero: an hour, the store's default), at
	// most UnitMaxEvents events are spooled (later ones are dropped, except
	// the first of each kind, spooled without its raw message) and at most
	// UnitMaxRawBytes of raw messages (later events are spooled without
	// theirs). Zero: no cap. UnitMaxUnits bounds the unit windows tracked
	// (zero: 65536).
	UnitMaxEvents   int
	UnitMaxRawBytes int64
	UnitWindow      time.Duration
	UnitMaxUnits    int
	// Per-network caps (unitcap.go): the same per IPv4 /24 or IPv6 /48
	// and UnitWindow, after the unit's: at most NetMaxEvents events are
	// spooled (later ones are dropped, except each unit's first of each
	// kind, spooled without its raw message) and NetMaxRawBytes of raw
	// messages. Zero: no cap. As many network windows as UnitMaxUnits are
	// tracked.
	NetMaxEvents   int
	NetMaxRawBytes int64
	// Metrics, when set, registers the spool's own metrics
	// (blowback_forward_spool_capped_total).
	Metrics prometheus.Registerer
}

// Spool is the trap node's durable queue of evidence not yet acknowledged by
// the central node. Put returns once the event is fsynced: the trap answers
// 250 only after that. Concurrent Puts share fsyncs (badger group commit).
type Spool struct {
	db   *badger.DB
	dir  string
	opts SpoolOptions

	spaceMu    sync.Mutex
	spaceAt    time.Time // last free-space check
	spaceShort bool
	log        *slog.Logger

	caps   *unitCap // nil: no per-unit or per-network caps
	capped *prometheus.CounterVec

	seq     atomic.Uint64
	pending atomic.Int64 // events under 'q'
	dead    atomic.Int64 // events under 'd'
	notify  chan struct{}

	stop chan struct{}
	wg   sync.WaitGroup
	once sync.Once
}

// OpenSpool opens (creating if needed) the spool in dir.
func OpenSpool(dir string, opts SpoolOptions, log *slog.Logger) (*Spool, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("pkg", "forward")
	// A spool is small and short-lived data: small memtables and caches.
	if !opts.InMemory {
		// A kill -9 can leave empty log files badger will not open.
		if err := store.RemoveEmptyLogs(dir, log); err != nil {
			return nil, err
		}
	}
	if opts.MinFreeBytes == 0 {
		opts.MinFreeBytes = 96 << 20
	}
	bo := badger.DefaultOptions(dir).
		WithSyncWrites(true).
		WithLogger(badgerLogger{log}).
		WithLoggingLevel(badger.WARNING).
		WithNumVersionsToKeep(1).
		WithMemTableSize(8 << 20).WithNumMemtables(2).
		WithBlockCacheSize(8 << 20).WithIndexCacheSize(4 << 20).
		WithValueLogFileSize(64 << 20).WithNumCompactors(2).
		WithValueThreshold(4 << 10)
	if opts.InMemory {
		bo = bo.WithDir("").WithValueDir("").WithInMemory(true).WithSyncWrites(false)
	}
	db, err := badger.Open(bo)
	if err != nil {
		return nil, fmt.Errorf("forward: open spool %s: %w", dir, err)
	}
	if opts.GCInterval <= 0 {
		opts.GCInterval = 5 * time.Minute
	}
	s := &Spool{db: db, dir: dir, opts: opts, log: log, notify: make(chan struct{}, 1), stop: make(chan struct{})}
	// action: dropped (not spooled: past an event cap), raw_dropped
	// (spooled without its raw message: past a raw cap, or the first of
	// its kind past an event cap); cap: unit (the unit's caps), network
	// (its network's; the unit's is named when both are reached).
	s.capped = metric.New(opts.Metrics).CounterVec("blowback_forward_spool_capped_total",
		"Events the spool's per-unit or per-network caps dropped or spooled without their raw message, by action and cap.",
		[]string{"action", "cap"})
	for _, action := range []string{"dropped", "raw_dropped"} {
		for _, by := range []store.CapBy{store.CapUnit, store.CapNet} {
			s.capped.WithLabelValues(action, by.String())
		}
	}
	caps := store.Caps{UnitMaxEvents: opts.UnitMaxEvents, UnitMaxRawBytes: opts.UnitMaxRawBytes,
		NetMaxEvents: opts.NetMaxEvents, NetMaxRawBytes: opts.NetMaxRawBytes}
	if caps != (store.Caps{}) {
		s.caps = newUnitCap(caps, opts.UnitWindow, opts.UnitMaxUnits)
		s.caps.over = func(unit netip.Prefix, window time.Time) {
			log.Info("unit over its spool cap: its further events this window are dropped", "unit", unit.String(),
				"window", window, "max_events", opts.UnitMaxEvents)
		}
		s.caps.overNet = func(net netip.Prefix, window time.Time) {
			log.Info("network over its spool cap: its units' further events this window are dropped, but for the first of each kind",
				"network", net.String(), "window", window, "max_events", opts.NetMaxEvents)
		}
	}
	if err := s.load(); err != nil {
		db.Close()
		return nil, err
	}
	if !opts.InMemory {
		s.wg.Add(1)
		go s.maintain()
	}
	return s, nil
}

// load counts the records and restores the sequence.
func (s *Spool) load() error {
	return s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: false})
		defer it.Close()
		var max uint64
		for _, p := range []byte{pQueue, pDead} {
			var n int64
			for it.Seek([]byte{p}); it.ValidForPrefix([]byte{p}); it.Next() {
				k := it.Item().Key()
				if len(k) != 9 {
					return fmt.Errorf("%w: key length %d", ErrCorrupt, len(k))
				}
				max = maxU64(max, binary.BigEndian.Uint64(k[1:]))
				n++
			}
			if p == pQueue {
				s.pending.Store(n)
			} else {
				s.dead.Store(n)
			}
		}
		s.seq.Store(max)
		return nil
	})
}

func maxU64(a, b uint64) uint64 {
	if a > b {
		return a
	}
	return b
}

// Close stops maintenance and closes the database.
func (s *Spool) Close() error {
	var err error
	s.once.Do(func() {
		close(s.stop)
		s.wg.Wait()
		err = s.db.Close()
	})
	return err
}

func (s *Spool) maintain() {
	defer s.wg.Done()
	defer lifecycle.Recover(s.log, nil, "panic in spool maintenance")
	lifecycle.Every(s.stop, s.opts.GCInterval, func() {
		for i := 0; i < 10; i++ {
			if err := s.db.RunValueLogGC(0.5); err != nil {
				break
			}
		}
	})
}

// Len is the backlog: events spooled and not yet acknowledged.
func (s *Spool) Len() int64 { return s.pending.Load() }

// WaitEmpty waits until nothing is pending (every event acknowledged or
// dead-lettered) or ctx ends: a sender's Drain, for tests and benchmarks.
func (s *Spool) WaitEmpty(ctx context.Context) error {
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for s.Len() > 0 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}

// Dead is the number of dead-lettered events.
func (s *Spool) Dead() int64 { return s.dead.Load() }

// OldestAge is the age of the oldest pending event (0 when none is pending).
func (s *Spool) OldestAge() time.Duration {
	if s.pending.Load() == 0 {
		return 0
	}
	items, err := s.scan(pQueue, nil, 1, 0)
	if err != nil || len(items) == 0 {
		return 0
	}
	return max(0, time.Since(items[0].Time))
}

// Notify is signalled (without blocking) after every Put.
func (s *Spool) Notify() <-chan struct{} { return s.notify }

// Wait waits d, or until stop is closed; with wake, a Put ends the wait
// too (a sender's idle poll and its backoff).
func (s *Spool) Wait(stop <-chan struct{}, d time.Duration, wake bool) {
	t := time.NewTimer(d)
	defer t.Stop()
	var notify <-chan struct{}
	if wake {
		notify = s.notify
	}
	select {
	case <-stop:
	case <-t.C:
	case <-notify:
	}
}

func key(p byte, seq uint64) []byte {
	k := make([]byte, 9)
	k[0] = p
	binary.BigEndian.PutUint64(k[1:], seq)
	return k
}

func encodeRecord(ev *store.Event, raw []byte) ([]byte, error) {
	js, err := json.Marshal(ev)
	if err != nil {
		return nil, err
	}
	v := make([]byte, recordHeader, recordHeader+len(js)+len(raw))
	v[0] = recordVersion
	copy(v[1:17], ev.ID[:])
	binary.BigEndian.PutUint64(v[17:25], uint64(ev.Time.UnixNano()))
	binary.BigEndian.PutUint32(v[25:29], uint32(len(js)))
	v = append(v, js...)
	return append(v, raw...), nil
}

func decodeRecord(k, v []byte) (Item, error) {
	if len(v) < recordHeader || v[0] != recordVersion {
		return Item{}, fmt.Errorf("%w: key %x", ErrCorrupt, k)
	}
	n := int(binary.BigEndian.Uint32(v[25:29]))
	if recordHeader+n > len(v) {
		return Item{}, fmt.Errorf("%w: key %x: event length", ErrCorrupt, k)
	}
	it := Item{Key: append([]byte(nil), k...), Time: time.Unix(0, int64(binary.BigEndian.Uint64(v[17:25]))).UTC()}
	copy(it.ID[:], v[1:17])
	it.Event = append(json.RawMessage(nil), v[recordHeader:recordHeader+n]...)
	if raw := v[recordHeader+n:]; len(raw) > 0 {
		it.Raw = append([]byte(nil), raw...)
	}
	return it, nil
}

// Put spools ev (and up to RawMax bytes of raw) durably. It returns only
// after the write is synced to disk. An event past its unit's or its
// network's cap (SpoolOptions.UnitMaxEvents, NetMaxEvents; unitcap.go) is
// dropped and Put returns nil:
// the sender gets its 250, the metric counts it.
func (s *Spool) Put(ctx context.Context, ev *store.Event, raw []byte) error {
	_, err := s.put(ctx, ev, raw)
	return err
}

// put is Put, and reports whether the event was spooled (false: dropped by
// the per-unit cap).
func (s *Spool) put(ctx context.Context, ev *store.Event, raw []byte) (bool, error) {
	if err := ev.Validate(); err != nil {
		return false, err
	}
	if s.opts.MaxEvents > 0 && s.pending.Load() >= s.opts.MaxEvents {
		return false, ErrSpoolFull
	}
	if err := ctx.Err(); err != nil {
		return false, err
	}
	if err := s.checkSpace(); err != nil {
		return false, err
	}
	if len(raw) > s.opts.RawMax {
		raw = raw[:s.opts.RawMax]
	}
	if len(raw) == 0 {
		raw = nil
	}
	var capd capDecision
	if s.caps != nil {
		capd = s.caps.admit(ev, raw)
		switch {
		case !capd.event:
			// Past the unit's or the network's cap: dropped (unitcap.go
			// says why that keeps the central listing decision). The
			// sender gets its 250.
			s.capped.WithLabelValues("dropped", capd.by.String()).Inc()
			return false, nil
		case raw != nil && !capd.raw:
			s.capped.WithLabelValues("raw_dropped", capd.by.String()).Inc()
			raw = nil
		}
	}
	v, err := encodeRecord(ev, raw)
	if err != nil {
		s.caps.undo(capd)
		return false, fmt.Errorf("forward: encode event: %w", err)
	}
	k := key(pQueue, s.seq.Add(1))
	if err := s.db.Update(func(txn *badger.Txn) error { return txn.Set(k, v) }); err != nil {
		s.caps.undo(capd)
		if errors.Is(err, badger.ErrDBClosed) {
			return false, ErrClosed
		}
		return false, fmt.Errorf("forward: spool put: %w", err)
	}
	s.pending.Add(1)
	select {
	case s.notify <- struct{}{}:
	default:
	}
	return true, nil
}

// checkSpace refuses writes while the filesystem is nearly full (checked at
// most every 250 ms).
func (s *Spool) checkSpace() error {
	if s.opts.InMemory || s.opts.MinFreeBytes < 0 {
		return nil
	}
	s.spaceMu.Lock()
	defer s.spaceMu.Unlock()
	if now := time.Now(); now.Sub(s.spaceAt) > 250*time.Millisecond {
		s.spaceAt = now
		free, err := store.FreeSpace(s.dir)
		short := err == nil && free < s.opts.MinFreeBytes
		if short != s.spaceShort {
			s.log.Warn("spool free space", "short", short, "free_bytes", free, "min_free_bytes", s.opts.MinFreeBytes)
		}
		s.spaceShort = short
	}
	if s.spaceShort {
		return fmt.Errorf("forward: spool: %w", store.ErrDiskFull)
	}
	return nil
}

// Peek returns up to maxEvents pending items (and about maxBytes of body)
// with keys after the key after (nil: from the start), oldest first. It
// always returns at least one item when one is pending.
func (s *Spool) Peek(after []byte, maxEvents, maxBytes int) ([]Item, error) {
	return s.scan(pQueue, after, maxEvents, maxBytes)
}

// DeadLetters returns up to max dead-lettered items, oldest first.
func (s *Spool) DeadLetters(max int) ([]Item, error) { return s.scan(pDead, nil, max, 0) }

func (s *Spool) scan(p byte, after []byte, maxEvents, maxBytes int) ([]Item, error) {
	var out []Item
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: true, PrefetchSize: 64, Prefix: []byte{p}})
		defer it.Close()
		start := []byte{p}
		if after != nil {
			start = append(append([]byte(nil), after...), 0)
		}
		size := 0
		for it.Seek(start); it.ValidForPrefix([]byte{p}); it.Next() {
			if maxEvents > 0 && len(out) >= maxEvents {
				return nil
			}
			var item Item
			err := it.Item().Value(func(v []byte) error {
				var err error
				item, err = decodeRecord(it.Item().Key(), v)
				return err
			})
			if err != nil {
				return err
			}
			if maxBytes > 0 && len(out) > 0 && size+item.size() > maxBytes {
				return nil
			}
			size += item.size()
			out = append(out, item)
		}
		return nil
	})
	if errors.Is(err, badger.ErrDBClosed) {
		return nil, ErrClosed
	}
	return out, err
}

// Ack removes items the central node acknowledged. Should a crash lose the
// removal, the items are sent again and the central node counts them once.
func (s *Spool) Ack(items []Item) error {
	return s.move(items, 0)
}

// DeadLetter moves items the central node rejected as invalid out of the
// queue, keeping them for inspection (DeadLetters).
func (s *Spool) DeadLetter(items []Item) error {
	return s.move(items, pDead)
}

func (s *Spool) move(items []Item, to byte) error {
	if len(items) == 0 {
		return nil
	}
	wb := s.db.NewWriteBatch()
	defer wb.Cancel()
	for _, it := range items {
		if len(it.Key) != 9 || it.Key[0] != pQueue {
			return fmt.Errorf("%w: key %x", ErrCorrupt, it.Key)
		}
		if to != 0 {
			v, err := s.value(it.Key)
			if err != nil {
				return err
			}
			if err := wb.Set(append([]byte{to}, it.Key[1:]...), v); err != nil {
				return err
			}
		}
		if err := wb.Delete(bytes.Clone(it.Key)); err != nil {
			return err
		}
	}
	if err := wb.Flush(); err != nil {
		if errors.Is(err, badger.ErrDBClosed) {
			return ErrClosed
		}
		return fmt.Errorf("forward: spool remove: %w", err)
	}
	s.pending.Add(-int64(len(items)))
	if to == pDead {
		s.dead.Add(int64(len(items)))
	}
	return nil
}

func (s *Spool) value(k []byte) ([]byte, error) {
	var v []byte
	err := s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(k)
		if err != nil {
			return err
		}
		v, err = item.ValueCopy(nil)
		return err
	})
	return v, err
}

type badgerLogger struct{ l *slog.Logger }

func (b badgerLogger) Errorf(f string, a ...any) {
	b.l.Error(fmt.Sprintf(f, a...), "component", "badger")
}
func (b badgerLogger) Warningf(f string, a ...any) {
	b.l.Warn(fmt.Sprintf(f, a...), "component", "badger")
}
func (b badgerLogger) Infof(f string, a ...any) {
	b.l.Debug(fmt.Sprintf(f, a...), "component", "badger")
}
func (b badgerLogger) Debugf(f string, a ...any) {
	b.l.Debug(fmt.Sprintf(f, a...), "component", "badger")
}
