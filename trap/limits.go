package trap

import (
	"net/netip"
	"sync"
	"time"
)

// limiter bounds connections: overall, per client, per client prefix and
// per client rate. A client is an IPv4 address or an IPv6 /64 (the unit the
// DNSBL lists), so one IPv6 host cannot escape its limits by hopping
// addresses; its prefix is the IPv4 /24 or the IPv6 /48 around it, so a
// sender with many addresses (a /48 is 65536 /64s) cannot take every slot
// either.
type limiter struct {
	maxTotal     int
	maxPerIP     int
	maxPerPrefix [2]int  // IPv4 /24, IPv6 /48
	rate         float64 // tokens per second; 0 = no rate limit
	burst        float64
	maxRates     int // tracked rate buckets; past it, sweeps idle ones (fails open if all are busy)
	now          func() time.Time

	mu        sync.Mutex
	total     int
	perIP     map[netip.Addr]int
	perPrefix map[netip.Addr]int
	buckets   map[netip.Addr]*bucket
	lastSweep time.Time
}

type bucket struct {
	tokens float64
	last   time.Time
}

func newLimiter(maxTotal, maxPerIP, maxPer24, maxPer48 int, perMinute, burst int, now func() time.Time) *limiter {
	l := &limiter{maxTotal: maxTotal, maxPerIP: maxPerIP, maxPerPrefix: [2]int{maxPer24, maxPer48}, burst: float64(burst),
		maxRates: 1 << 16, now: now, perIP: map[netip.Addr]int{}, perPrefix: map[netip.Addr]int{}, buckets: map[netip.Addr]*bucket{}}
	if perMinute > 0 {
		l.rate = float64(perMinute) / 60
		if l.burst < 1 {
			l.burst = 1
		}
	}
	return l
}

// clientUnit maps an address to the unit limits apply to: the address for
// IPv4, its /64 for IPv6.
func clientUnit(a netip.Addr) netip.Addr {
	a = a.Unmap()
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.Addr()
	}
	return a
}

// clientPrefix maps a unit to the wider prefix the per-prefix cap counts:
// the /24 of an IPv4 address, the /48 of an IPv6 /64. The second result
// indexes limiter.maxPerPrefix.
func clientPrefix(unit netip.Addr) (netip.Addr, int) {
	if unit.Is4() {
		p, _ := unit.Prefix(24)
		return p.Addr(), 0
	}
	p, _ := unit.Prefix(48)
	return p.Addr(), 1
}

// acquireTotal takes an overall connection slot.
func (l *limiter) acquireTotal() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.total >= l.maxTotal {
		return false
	}
	l.total++
	return true
}

func (l *limiter) releaseTotal() {
	l.mu.Lock()
	l.total--
	l.mu.Unlock()
}

// acquireClient takes a per-client slot and a rate token for unit. It
// returns "" on success, else the name of the limit that refused.
func (l *limiter) acquireClient(unit netip.Addr) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.perIP[unit] >= l.maxPerIP {
		return limitConnsPerIP
	}
	pfx, fam := clientPrefix(unit)
	if max := l.maxPerPrefix[fam]; max > 0 && l.perPrefix[pfx] >= max {
		return [2]string{limitConnsPer24, limitConnsPer48}[fam]
	}
	if l.rate > 0 && !l.takeToken(unit) {
		return limitConnRate
	}
	l.perIP[unit]++
	l.perPrefix[pfx]++
	return ""
}

func (l *limiter) releaseClient(unit netip.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	dec(l.perIP, unit)
	pfx, _ := clientPrefix(unit)
	dec(l.perPrefix, pfx)
}

func dec(m map[netip.Addr]int, k netip.Addr) {
	if n := m[k]; n <= 1 {
		delete(m, k)
	} else {
		m[k] = n - 1
	}
}

// takeToken is a token bucket per client; l.mu is held.
func (l *limiter) takeToken(unit netip.Addr) bool {
	now := l.now()
	b := l.buckets[unit]
	if b == nil {
		if len(l.buckets) >= l.maxRates {
			l.sweep(now)
		}
		if len(l.buckets) >= l.maxRates {
			return true // every bucket busy: fail open, the other limits still hold
		}
		b = &bucket{tokens: l.burst, last: now}
		l.buckets[unit] = b
	}
	b.tokens = min(l.burst, b.tokens+now.Sub(b.last).Seconds()*l.rate)
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// sweep drops buckets that have refilled (they carry no state), at most
// once a second.
func (l *limiter) sweep(now time.Time) {
	if now.Sub(l.lastSweep) < time.Second {
		return
	}
	l.lastSweep = now
	full := time.Duration(l.burst / l.rate * float64(time.Second))
	for k, b := range l.buckets {
		if now.Sub(b.last) >= full {
			delete(l.buckets, k)
		}
	}
}

// stressed reports whether 3/4 or more of the connection slots are taken.
func (l *limiter) stressed() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return 4*l.total >= 3*l.maxTotal
}

// counts returns the open connections overall and for unit (tests, metrics).
func (l *limiter) counts(unit netip.Addr) (total, client int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.total, l.perIP[unit]
}
