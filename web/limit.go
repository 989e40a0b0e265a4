package web

import (
	"container/list"
	"net/netip"
	"sync"
	"time"

	"github.com/blowback-dnsbl/blowback/store"
)

// limiter is a rate limiter over many keys with O(1) work per request and
// bounded memory at any number of keys.
//
// Each key holds one time (GCRA, the generic cell rate algorithm): its
// "theoretical arrival time" tat. A request at now is allowed when
// tat-now <= window-interval, where interval = window/n, and then moves
// tat to max(tat, now)+interval: n requests at once, then one per
// interval, which is n per window. Keys live in a map and an LRU list; at
// capacity the least recently used key is forgotten (it is almost always
// one whose limit has long recovered: a key only matters while tat > now).
type limiter struct {
	n        int
	window   time.Duration
	interval time.Duration
	cap      int

	mu   sync.Mutex
	keys map[netip.Prefix]*list.Element
	lru  list.List // of *limitEntry, most recent at the front
}

type limitEntry struct {
	key netip.Prefix
	tat time.Time
}

func newLimiter(n int, window time.Duration, capacity int) *limiter {
	n = max(n, 1)
	return &limiter{n: n, window: window, interval: window / time.Duration(n), cap: max(capacity, 1),
		keys: map[netip.Prefix]*list.Element{}}
}

// allowed reports whether key may have one more request at now, without taking it.
func (l *limiter) allowed(key netip.Prefix, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	el, ok := l.keys[key]
	return !ok || el.Value.(*limitEntry).tat.Sub(now) <= l.window-l.interval
}

// take counts one request of key at now; it reports false (and counts
// nothing) when the key is over its limit.
func (l *limiter) take(key netip.Prefix, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	el, ok := l.keys[key]
	if !ok {
		if len(l.keys) >= l.cap {
			old := l.lru.Back()
			l.lru.Remove(old)
			delete(l.keys, old.Value.(*limitEntry).key)
		}
		el = l.lru.PushFront(&limitEntry{key: key, tat: now})
		l.keys[key] = el
	}
	e := el.Value.(*limitEntry)
	if e.tat.Sub(now) > l.window-l.interval {
		return false
	}
	if e.tat.Before(now) {
		e.tat = now
	}
	e.tat = e.tat.Add(l.interval)
	l.lru.MoveToFront(el)
	return true
}

func (l *limiter) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.keys)
}

// requesterKey is the rate-limit key of a requester: the listing unit,
// store.Unit (the address for IPv4, its /64 for IPv6: one subscriber's
// allocation, like the trap's per-client caps).
func requesterKey(a netip.Addr) netip.Prefix { return store.Unit(a) }
