package store

import (
	"fmt"

	"github.com/dgraph-io/badger/v4"
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
