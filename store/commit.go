package store

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Group commit.
//
// badger with SyncWrites fsyncs its write-ahead log once per transaction
// (db.writeToLSM syncs per request), so concurrent Puts in their own
// transactions each pay an fsync. Instead every Put hands its prepared
// writes to one committer goroutine, which takes all the Puts waiting at
// that moment (up to maxGroup), writes them in one transaction and one
// fsync, and then answers each. While a commit is in flight new Puts queue
// up and form the next group, so under load the fsyncs are shared; alone, a
// Put costs what it did before. A Put returns only after its group's
// commit (synced) returned: a trap answers 250 only then.

const (
	maxGroup      = 256     // events per group transaction
	maxGroupBytes = 4 << 20 // value bytes per group transaction
)

type putReq struct {
	key, idx, val []byte
	rawKey, raw   []byte
	done          chan error

	// per-unit caps (unitcap.go); capKey nil: no caps; netKey nil: no
	// per-network caps
	capKey []byte
	unit   netip.Prefix
	netKey []byte
	net    netip.Prefix
	window time.Time
	time   time.Time
	kind   Kind
}

func (r *putReq) size() int { return len(r.key) + len(r.idx) + len(r.val) + len(r.rawKey) + len(r.raw) }

// CapStats reports how many events the per-unit and per-network caps
// summarised instead of storing, and how many were stored without their
// raw message (unitcap.go).
func (s *Store) CapStats() (summarised, rawDropped uint64) {
	return s.summarised[0].Load() + s.summarised[1].Load(), s.rawDropped[0].Load() + s.rawDropped[1].Load()
}

// CapStatsBy is CapStats for the events cap by (CapUnit or CapNet) decided.
func (s *Store) CapStatsBy(by CapBy) (summarised, rawDropped uint64) {
	if by != CapUnit && by != CapNet {
		return 0, 0
	}
	return s.summarised[by-1].Load(), s.rawDropped[by-1].Load()
}

// GroupStats reports how many events were committed in how many
// transactions (each one fsync): events/commits is the mean group size.
func (s *Store) GroupStats() (commits, events uint64) { return s.commits.Load(), s.puts.Load() }

func (s *Store) commit(ctx context.Context, r *putReq) error {
	// The read lock keeps Close from stopping the committer while a Put
	// is handing over; after Close, nothing is handed over any more.
	s.closeMu.RLock()
	if s.closed {
		s.closeMu.RUnlock()
		return ErrClosed
	}
	select {
	case s.putCh <- r:
	case <-ctx.Done():
		s.closeMu.RUnlock()
		return ctx.Err()
	}
	s.closeMu.RUnlock()
	// Once queued, wait for the outcome even if ctx ends: the write may
	// land, and the caller must not believe otherwise without knowing.
	return <-r.done
}

func (s *Store) committer() {
	defer s.wg.Done()
	group := make([]*putReq, 0, maxGroup)
	for {
		var r *putReq
		select {
		case r = <-s.putCh:
		case <-s.stop:
			// Answer what is still queued.
			for {
				select {
				case r := <-s.putCh:
					r.done <- ErrClosed
				default:
					return
				}
			}
		}
		group = append(group[:0], r)
		size := r.size()
	fill:
		for len(group) < maxGroup && size < maxGroupBytes {
			select {
			case r := <-s.putCh:
				group = append(group, r)
				size += r.size()
			default:
				break fill
			}
		}
		s.commitGroup(group)
	}
}

// commitGroup writes a group in one transaction; if that fails as a whole
// (too big, conflict), each Put is retried on its own so one bad event does
// not fail the others.
func (s *Store) commitGroup(group []*putReq) {
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("panic in store committer", "panic", p)
			for _, r := range group {
				select {
				case r.done <- fmt.Errorf("store: put event: internal error"):
				default:
				}
			}
		}
	}()
	var size int64
	for _, r := range group {
		size += int64(r.size())
	}
	// badger dies of SIGBUS on a full disk (space.go): refuse the group
	// before it is written, so every Put in it gets ErrDiskFull.
	if err := s.guard(2 * size); err != nil {
		for _, r := range group {
			r.done <- err
		}
		return
	}
	errs := make([]error, len(group))
	err := s.writeGroup(group, errs)
	if err != nil && len(group) > 1 {
		for i, r := range group {
			errs[i] = s.writeGroup([]*putReq{r}, errs[i:i+1])
		}
	} else if err != nil {
		errs[0] = err
	}
	for i, r := range group {
		r.done <- errs[i]
	}
}

// writeGroup commits the group; errs[i] gets ErrDuplicate for events already
// stored (or twice in the group). The returned error fails the whole group.
func (s *Store) writeGroup(group []*putReq, errs []error) error {
	rawTTL := s.opts.RawTTL
	if rawTTL == 0 {
		rawTTL = s.opts.Retention
	}
	var err error
	// what the caps did, by event: the cap that summarised it or dropped
	// its raw message
	summarised := make([]CapBy, len(group))
	rawDropped := make([]CapBy, len(group))
	for attempt := 0; attempt < 5; attempt++ {
		clear(summarised)
		clear(rawDropped)
		err = s.db.Update(func(txn *badger.Txn) error {
			seen := make(map[string]bool, len(group))
			caps := &capState{s: s, txn: txn, sums: map[string]*UnitSummary{}}
			for i, r := range group {
				errs[i] = nil
				if seen[string(r.idx)] {
					errs[i] = ErrDuplicate
					continue
				}
				seen[string(r.idx)] = true
				if _, err := txn.Get(r.idx); err == nil {
					errs[i] = ErrDuplicate
					continue
				} else if !errors.Is(err, badger.ErrKeyNotFound) {
					return err
				}
				a := Admission{Event: true, Raw: r.raw != nil}
				if r.capKey != nil {
					var err error
					if a, err = caps.admit(r); err != nil {
						return err
					}
				}
				if !a.Event {
					summarised[i] = a.By
					continue
				}
				if err := txn.SetEntry(s.ttlEntry(r.key, r.val, s.opts.Retention)); err != nil {
					return err
				}
				if err := txn.SetEntry(s.ttlEntry(r.idx, r.key, s.opts.Retention)); err != nil {
					return err
				}
				if a.Raw {
					if err := txn.SetEntry(s.ttlEntry(r.rawKey, r.raw, rawTTL)); err != nil {
						return err
					}
				} else if r.raw != nil {
					rawDropped[i] = a.By
				}
			}
			return caps.flush()
		})
		if !errors.Is(err, badger.ErrConflict) {
			break
		}
	}
	switch {
	case errors.Is(err, badger.ErrDBClosed):
		return ErrClosed
	case err != nil:
		return fmt.Errorf("store: put event: %w", err)
	}
	s.commits.Add(1)
	n := 0
	var sum, dropped [2]uint64
	for i, e := range errs {
		switch {
		case e != nil:
		case summarised[i] != CapNone:
			sum[summarised[i]-1]++
		default:
			n++
			if rawDropped[i] != CapNone {
				dropped[rawDropped[i]-1]++
			}
		}
	}
	s.puts.Add(uint64(n))
	for i := range sum {
		s.summarised[i].Add(sum[i])
		s.rawDropped[i].Add(dropped[i])
	}
	return nil
}
