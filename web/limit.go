package web

import (
	"net/netip"
	"sync"
	"time"

	"github.com/blowback-dnsbl/blowback/internal/lru"
	"github.com/blowback-dnsbl/blowback/store"
)

// limiter is a rate limiter over many keys with O(1) work per request and
// bounded memory at any number of keys.
//
// Each key holds one time (GCRA, the generic cell rate algorithm): its
// "theoretical arrival time" tat. A request at now is allowed when
// tat-now <= window-interval, where interval = window/n, and then moves
// tat to max(tat, now)+interval: n requests at once, then one per
// interval, which is n per window. Keys live in a bounded LRU map; at
// capacity the least recently used key is forgotten (it is almost always
// one whose limit has long recovered: a key only matters while tat > now).
type limiter struct {
	n        int
	window   time.Duration
	interval time.Duration

	mu   sync.Mutex
	keys *lru.Map[netip.Prefix, time.Time] // each key's tat
}

func newLimiter(n int, window time.Duration, capacity int) *limiter {
	n = max(n, 1)
	return &limiter{n: n, window: window, interval: window / time.Duration(n), keys: lru.New[netip.Prefix, time.Time](capacity)}
}

// allowed reports whether key may have one more request at now, without taking it.
func (l *limiter) allowed(key netip.Prefix, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	tat := l.keys.Peek(key)
	return tat == nil || tat.Sub(now) <= l.window-l.interval
}

// take counts one request of key at now; it reports false (and counts
// nothing) when the key is over its limit.
func (l *limiter) take(key netip.Prefix, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	tat, _ := l.keys.Use(key, func() time.Time { return now })
	if tat.Sub(now) > l.window-l.interval {
		return false
	}
	if tat.Before(now) {
		*tat = now
	}
	*tat = tat.Add(l.interval)
	return true
}

func (l *limiter) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.keys.Len()
}

// requesterKey is the rate-limit key of a requester: the listing unit,
// store.Unit (the address for IPv4, its /64 for IPv6: one subscriber's
// allocation, like the trap's per-client caps).
func requesterKey(a netip.Addr) netip.Prefix { return store.Unit(a) }
