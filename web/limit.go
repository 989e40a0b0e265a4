package web

import (
	"net/netip"
	"time"

	"github.com/blowback-dnsbl/blowback/internal/ratelimit"
	"github.com/blowback-dnsbl/blowback/store"
)

// newLimiter is a limiter of the public endpoints (delist, history API):
// n per window per key, at most capacity keys. FailOpen: at capacity the
// least recently used key is forgotten rather than refusing newcomers (it
// is almost always one whose limit has long recovered); these limits share
// a free service fairly, and a flood that resets one requester's allowance
// gains it a few delists, each still only of a listed address and audited.
func newLimiter(n int, window time.Duration, capacity int) *ratelimit.Limiter[netip.Prefix] {
	return ratelimit.New[netip.Prefix](n, window, capacity, ratelimit.FailOpen)
}

// requesterKey is the rate-limit key of a requester: the listing unit,
// store.Unit (the address for IPv4, its /64 for IPv6: one subscriber's
// allocation, like the trap's per-client caps).
func requesterKey(a netip.Addr) netip.Prefix { return store.Unit(a) }
