// Package ratelimit limits requests per key (a requester, a domain, an
// address) with O(1) work per request and a bounded number of keys,
// whatever keys an attacker sends.
//
// # Algorithm
//
// Each key holds one time (GCRA, the generic cell rate algorithm, ITU-T
// I.371 "virtual scheduling"): its theoretical arrival time tat. With n
// requests per window, interval = window/n; a request at now is allowed
// when tat-now <= window-interval, and then moves tat to
// max(tat, now)+interval. So a key gets n requests at once, then one per
// interval: n per window in the long run. It is not a sliding window: a key
// that spent its n at once gets one more an interval later, so any span of
// one window may hold up to 2n-1 requests (at most n + d/interval in any
// span d). "3 per day" is 3 at once, then one every 8 hours.
//
// A key whose tat is not after now has fully recovered: it is in the same
// state as a key never seen, so forgetting it loses nothing.
//
// # A full map
//
// Keys live in an LRU map (internal/lru) of fixed capacity. When a new key
// comes and the map is full, the policy decides:
//
//   - FailOpen: the least recently used key is forgotten, whatever its
//     state. Memory is bounded and nobody is ever refused for lack of room,
//     but a flood of capacity new keys within a window resets a live limit
//     (the key comes back with its full allowance). For limits that only
//     share a cost fairly (the public delist), where refusing everyone
//     during a flood would be worse.
//   - FailClosed: the least recently used key is forgotten only when its
//     limit has recovered (its tat is not after now); otherwise the new key
//     is refused (Take reports false and nothing is stored). A live limit
//     is never forgotten, so the limiter never allows a request that an
//     unbounded one would refuse; the price is that new keys are refused
//     while the map is full of live ones. That needs capacity keys all used
//     within the last window (a key used longer ago than window has
//     recovered, and the least recently used key is the one used longest
//     ago). For limits an attacker must not be able to reset (the mail the
//     self-test sends to a domain).
//
// A Limiter is safe for concurrent use.
package ratelimit

import (
	"sync"
	"time"

	"github.com/blowback-dnsbl/blowback/internal/lru"
)

// Policy is what a full Limiter does with a new key.
type Policy int

// Policies; see the package doc.
const (
	// FailOpen forgets the least recently used key to make room.
	FailOpen Policy = iota
	// FailClosed refuses a new key rather than forget a live limit.
	FailClosed
)

func (p Policy) String() string {
	switch p {
	case FailOpen:
		return "fail-open"
	case FailClosed:
		return "fail-closed"
	}
	return "unknown"
}

// Limiter allows n requests per window for each key, for at most capacity
// keys at once.
type Limiter[K comparable] struct {
	n        int
	window   time.Duration
	interval time.Duration
	capacity int
	policy   Policy

	mu   sync.Mutex
	keys *lru.Map[K, time.Time] // each key's tat
}

// New returns a Limiter of n requests per window (n at least 1) for each
// key, holding at most capacity keys (at least 1), with policy p for a
// full map.
func New[K comparable](n int, window time.Duration, capacity int, p Policy) *Limiter[K] {
	n, capacity = max(n, 1), max(capacity, 1)
	return &Limiter[K]{n: n, window: window, interval: window / time.Duration(n), capacity: capacity, policy: p,
		keys: lru.New[K, time.Time](capacity)}
}

// Allowed reports whether k may have one more request at now, without
// taking it (Take at the same now would agree).
func (l *Limiter[K]) Allowed(k K, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if tat := l.keys.Peek(k); tat != nil {
		return l.fits(*tat, now)
	}
	return l.roomLocked(now)
}

// Take counts one request of k at now; it reports false (and counts
// nothing) when k is over its limit, or when k is new and a FailClosed map
// has no room for it.
func (l *Limiter[K]) Take(k K, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.keys.Peek(k) == nil && !l.roomLocked(now) {
		return false
	}
	tat, _ := l.keys.Use(k, func() time.Time { return now })
	if !l.fits(*tat, now) {
		return false
	}
	*tat = later(*tat, now).Add(l.interval)
	return true
}

// Len is the number of keys held (at most the capacity).
func (l *Limiter[K]) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.keys.Len()
}

// fits reports whether a key at tat may have a request at now.
func (l *Limiter[K]) fits(tat, now time.Time) bool { return tat.Sub(now) <= l.window-l.interval }

// roomLocked reports whether a new key may be added at now.
func (l *Limiter[K]) roomLocked(now time.Time) bool {
	if l.policy == FailOpen || l.keys.Len() < l.capacity {
		return true
	}
	_, tat, _ := l.keys.Oldest()
	return !tat.After(now)
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
