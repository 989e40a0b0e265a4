package store

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/pb"
	"github.com/dgraph-io/ristretto/v2/z"
)

// Loader bulk-loads events (imports of old mail, benchmarks) through
// badger's WriteBatch: no fsync per event and no duplicate check (an event
// loaded twice overwrites its own keys). Nothing is durable before Flush
// returns. Not safe for concurrent use.
type Loader struct {
	s  *Store
	wb *badger.WriteBatch
	n  int
}

// NewLoader starts a bulk load.
func (s *Store) NewLoader() *Loader { return &Loader{s: s, wb: s.db.NewWriteBatch()} }

// Add queues one event (and its raw message, if not nil).
func (l *Loader) Add(e *Event, raw []byte) error {
	if err := e.Validate(); err != nil {
		return err
	}
	// The batch writes in the background as it fills: check the space
	// every 256 events (space.go).
	if l.n%256 == 0 {
		if err := l.s.guard(8 << 20); err != nil {
			return err
		}
	}
	val, err := encodeEvent(e)
	if err != nil {
		return err
	}
	key := eventKey(e)
	if err := l.wb.SetEntry(l.s.ttlEntry(key, val, l.s.opts.Retention)); err != nil {
		return fmt.Errorf("store: load: %w", err)
	}
	if err := l.wb.SetEntry(l.s.ttlEntry(append([]byte{pIndex}, e.ID[:]...), key, l.s.opts.Retention)); err != nil {
		return fmt.Errorf("store: load: %w", err)
	}
	if raw != nil {
		rv, err := compress(raw, l.s.opts.RawMax)
		if err != nil {
			return err
		}
		ttl := l.s.opts.RawTTL
		if ttl == 0 {
			ttl = l.s.opts.Retention
		}
		if err := l.wb.SetEntry(l.s.ttlEntry(append([]byte{pRaw}, e.ID[:]...), rv, ttl)); err != nil {
			return fmt.Errorf("store: load: %w", err)
		}
	}
	l.n++
	return nil
}

// Flush writes what is queued and syncs; it returns the number of events loaded.
func (l *Loader) Flush() (int, error) {
	if err := l.wb.Flush(); err != nil {
		return l.n, fmt.Errorf("store: load: %w", err)
	}
	if err := l.s.db.Sync(); err != nil {
		return l.n, fmt.Errorf("store: load sync: %w", err)
	}
	return l.n, nil
}

// SortedLoader fills an empty store with events given in key order through
// badger's StreamWriter: tables are written straight to the bottom level
// and values to the value log, with no memtable, no write-ahead log and no
// compaction, about ten times faster than the Loader. It is a facility for
// benchmarks and tests that need a large store (bench/scoring: 10M events),
// not a production path: it needs an empty store (NewSortedLoader refuses
// one that holds any key), events in key order (address, then SortByKey's
// order within an address: Add refuses anything else) and event ids that
// increase in that same order (a counter does), so that the id index is
// written in order in the same pass. Raw messages are not loaded. Until
// Flush returns the store must not be used otherwise.
type SortedLoader struct {
	s       *Store
	sw      *badger.StreamWriter
	buf     *z.Buffer
	lastKey []byte
	lastID  EventID
	n       int
	err     error
}

// ErrNotSorted: SortedLoader.Add got an event out of key or id order.
var ErrNotSorted = errors.New("store: sorted load: events out of order")

// Streams of a sorted load: one per table, their key ranges apart.
const (
	streamEvents = 1
	streamIndex  = 2
)

// NewSortedLoader starts a sorted bulk load into the empty store s.
func (s *Store) NewSortedLoader() (*SortedLoader, error) {
	empty := true
	if err := s.db.View(func(txn *badger.Txn) error {
		o := badger.DefaultIteratorOptions
		o.PrefetchValues = false
		it := txn.NewIterator(o)
		defer it.Close()
		it.Rewind()
		empty = !it.Valid()
		return nil
	}); err != nil {
		return nil, fmt.Errorf("store: sorted load: %w", err)
	}
	if !empty {
		return nil, fmt.Errorf("%w: sorted load into a store that is not empty", ErrInvalid)
	}
	sw := s.db.NewStreamWriter()
	if err := sw.Prepare(); err != nil {
		return nil, fmt.Errorf("store: sorted load: %w", err)
	}
	return &SortedLoader{s: s, sw: sw, buf: z.NewBuffer(32<<20, "store.SortedLoader")}, nil
}

// Add queues one event. It must sort after the previous one (key order)
// and carry a greater id.
func (l *SortedLoader) Add(e *Event) error {
	if l.err != nil {
		return l.err
	}
	if err := e.Validate(); err != nil {
		return err
	}
	val, err := encodeEvent(e)
	if err != nil {
		return err
	}
	key := eventKey(e)
	if l.n > 0 && (bytes.Compare(key, l.lastKey) <= 0 || bytes.Compare(e.ID[:], l.lastID[:]) <= 0) {
		return fmt.Errorf("%w: event %d (%s at %s)", ErrNotSorted, l.n, e.ClientIP, e.Time.Format(time.RFC3339))
	}
	l.lastKey, l.lastID = append(l.lastKey[:0], key...), e.ID
	var exp uint64
	if l.s.opts.Retention > 0 {
		exp = uint64(time.Now().Add(l.s.opts.Retention).Unix())
	}
	badger.KVToBuffer(&pb.KV{Key: key, Value: val, Version: 1, ExpiresAt: exp, StreamId: streamEvents}, l.buf)
	badger.KVToBuffer(&pb.KV{Key: append([]byte{pIndex}, e.ID[:]...), Value: key, Version: 1, ExpiresAt: exp, StreamId: streamIndex}, l.buf)
	l.n++
	if l.buf.LenNoPadding() >= 16<<20 {
		return l.write()
	}
	return nil
}

// write hands the queued entries to the stream writer, checking the space
// first (space.go).
func (l *SortedLoader) write() error {
	if err := l.s.guard(int64(l.buf.LenNoPadding())); err != nil {
		l.err = err
		return err
	}
	if err := l.sw.Write(l.buf); err != nil {
		l.err = fmt.Errorf("store: sorted load: %w", err)
		return l.err
	}
	l.buf.Reset()
	return nil
}

// Flush writes what is queued, finishes the tables and syncs; it returns
// the number of events loaded. The store is usable again after it.
func (l *SortedLoader) Flush() (int, error) {
	defer l.buf.Release()
	if l.err == nil {
		l.write()
	}
	if l.err != nil {
		l.sw.Cancel()
		return l.n, l.err
	}
	if err := l.sw.Flush(); err != nil {
		return l.n, fmt.Errorf("store: sorted load: %w", err)
	}
	if err := l.s.db.Sync(); err != nil {
		return l.n, fmt.Errorf("store: sorted load sync: %w", err)
	}
	return l.n, nil
}

// SortByKey sorts the events of one address in the order of their keys
// (time, kind, trap address, trap domain, id), the order SortedLoader.Add
// needs within an address.
func SortByKey(evs []*Event) {
	keys := make(map[*Event][]byte, len(evs))
	for _, e := range evs {
		keys[e] = eventKey(e)
	}
	slices.SortStableFunc(evs, func(a, b *Event) int { return bytes.Compare(keys[a], keys[b]) })
}
