package store

import (
	"bytes"
	"container/heap"
	"context"
	"errors"
	"net/netip"

	"github.com/dgraph-io/badger/v4"
)

// RefsNewest returns at most n refs of the addresses in p: the newest per
// address, newest first in key order (callers that need time order sort).
// It reads keys only, newest first, at most n keys per address and 4n keys
// in all, so time and memory are bounded by n whatever is stored; more
// reports that refs were left out. For one address (an IPv4 unit) the
// result is exactly its newest n refs; for a /64 with more than 4n refs
// over many addresses, the newest n of those read.
func (s *Store) RefsNewest(p netip.Prefix, n int) (refs []Ref, more bool, err error) {
	if n <= 0 {
		return nil, false, nil
	}
	h := &refHeap{}
	budget := 4 * n
	prefix := addrPrefixKey(pEvent, p)
	err = s.db.View(func(txn *badger.Txn) error {
		o := badger.DefaultIteratorOptions
		o.PrefetchValues = false
		o.Reverse = true
		o.Prefix = prefix
		it := txn.NewIterator(o)
		defer it.Close()
		seek := append(append([]byte{}, prefix...), bytes.Repeat([]byte{0xff}, 60)...)
		var cur netip.Addr
		perAddr := 0
		for it.Seek(seek); it.Valid(); {
			if budget == 0 {
				more = true
				return nil
			}
			budget--
			r, ok := parseRef(it.Item().Key())
			if !ok || !p.Contains(r.Addr) {
				it.Next()
				continue
			}
			if r.Addr != cur {
				cur, perAddr = r.Addr, 0
			}
			if perAddr == n {
				// The rest of this address is older than n of its own:
				// skip to the previous address (the largest key below
				// this address's keys).
				more = true
				it.Seek(appendAddr([]byte{pEvent}, cur))
				continue
			}
			perAddr++
			if h.Len() < n {
				heap.Push(h, r)
			} else if r.Time.After((*h)[0].Time) {
				(*h)[0] = r
				heap.Fix(h, 0)
				more = true
			} else {
				more = true
			}
			it.Next()
		}
		return nil
	})
	return *h, more, err
}

// RefsBounded returns the compact evidence of the addresses in p in key
// order (address, then time), at most limit refs; more reports whether
// some were left out. For public views of wide prefixes.
func (s *Store) RefsBounded(ctx context.Context, p netip.Prefix, limit int) (refs []Ref, more bool, err error) {
	errStop := errors.New("store: stop")
	err = s.scanRefs(ctx, addrPrefixKey(pEvent, p), func(r Ref) error {
		if !p.Contains(r.Addr) {
			return nil
		}
		if len(refs) >= limit {
			more = true
			return errStop
		}
		refs = append(refs, r)
		return nil
	})
	if err == errStop {
		err = nil
	}
	return refs, more, err
}

// refHeap is a min-heap of refs by time (the oldest on top).
type refHeap []Ref

func (h refHeap) Len() int           { return len(h) }
func (h refHeap) Less(i, j int) bool { return h[i].Time.Before(h[j].Time) }
func (h refHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *refHeap) Push(x any)        { *h = append(*h, x.(Ref)) }
func (h *refHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
