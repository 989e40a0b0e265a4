package dnsd

import (
	"fmt"
	"net/netip"
	"sync"
	"time"
)

// RRLConfig is response-rate limiting for UDP (the idea of BIND's and NSD's
// RRL, keyed by client network only: a DNSBL's answers are per address, so
// limiting per name would limit nothing). A DNSBL's clients are a few busy
// resolvers, so limits are per network and meant to be generous: the
// 200/s of general-purpose servers would cap a mail provider's resolver.
type RRLConfig struct {
	// Rate is responses per second per client network; 0 turns RRL off.
	Rate int
	// Burst is how many responses a network may get at once; default Rate.
	Burst int
	// Slip: every Slip-th limited response is sent truncated (TC=1, no
	// answer) instead of dropped, so a real resolver retries over TCP; 0
	// drops them all. Default 2.
	Slip int
	// IPv4PrefixLen and IPv6PrefixLen size the client networks; default 24 and 56.
	IPv4PrefixLen, IPv6PrefixLen int
	// Exempt networks are never limited.
	Exempt []netip.Prefix
	// SlipSet tells Slip 0 apart from unset.
	SlipSet bool
}

func (c *RRLConfig) defaults() {
	if c.Burst == 0 {
		c.Burst = c.Rate
	}
	if c.Slip == 0 && !c.SlipSet {
		c.Slip = 2
	}
	if c.IPv4PrefixLen == 0 {
		c.IPv4PrefixLen = 24
	}
	if c.IPv6PrefixLen == 0 {
		c.IPv6PrefixLen = 56
	}
}

func (c RRLConfig) validate() error {
	if c.Rate < 0 || c.Burst < 0 || c.Slip < 0 || c.IPv4PrefixLen < 0 || c.IPv4PrefixLen > 32 || c.IPv6PrefixLen < 0 || c.IPv6PrefixLen > 64 {
		return fmt.Errorf("%w: rrl: negative value or prefix length out of range", ErrConfig)
	}
	return nil
}

type rrlAction uint8

const (
	rrlAllow rrlAction = iota
	rrlDrop
	rrlSlip
)

const rrlShards = 64

// rrl is a GCRA token bucket per client network, in sharded maps.
type rrl struct {
	cfg      RRLConfig
	interval int64 // ns between responses at the rate
	tol      int64 // burst tolerance
	shards   [rrlShards]rrlShard
}

type rrlKey struct {
	v6 bool
	k  uint64
}

type rrlShard struct {
	mu      sync.Mutex
	m       map[rrlKey]int64 // theoretical arrival time, unix ns
	limited uint64
	swept   int64
	_       [32]byte
}

func newRRL(cfg RRLConfig) *rrl {
	cfg.defaults()
	r := &rrl{cfg: cfg, interval: int64(time.Second) / int64(cfg.Rate)}
	r.tol = int64(max(cfg.Burst, 1)-1) * r.interval
	for i := range r.shards {
		r.shards[i].m = map[rrlKey]int64{}
	}
	return r
}

func (r *rrl) key(a netip.Addr) rrlKey {
	if a.Is4() {
		b := a.As4()
		v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
		if r.cfg.IPv4PrefixLen < 32 {
			v &^= 1<<(32-r.cfg.IPv4PrefixLen) - 1
		}
		return rrlKey{false, uint64(v)}
	}
	b := a.As16()
	var v uint64
	for i := 0; i < 8; i++ {
		v = v<<8 | uint64(b[i])
	}
	if r.cfg.IPv6PrefixLen < 64 {
		v &^= 1<<(64-r.cfg.IPv6PrefixLen) - 1
	}
	return rrlKey{true, v}
}

func (r *rrl) check(src netip.Addr, now time.Time) rrlAction {
	if !src.IsValid() {
		return rrlAllow
	}
	for _, p := range r.cfg.Exempt {
		if p.Contains(src) {
			return rrlAllow
		}
	}
	k := r.key(src)
	h := k.k * 0x9e3779b97f4a7c15
	sh := &r.shards[h>>58]
	t := now.UnixNano()
	sh.mu.Lock()
	defer sh.mu.Unlock()
	tat, ok := sh.m[k]
	if !ok || tat < t {
		tat = t
	}
	if tat-t > r.tol {
		sh.limited++
		if r.cfg.Slip > 0 && sh.limited%uint64(r.cfg.Slip) == 0 {
			return rrlSlip
		}
		return rrlDrop
	}
	sh.m[k] = tat + r.interval
	if len(sh.m) > 4096 && t-sh.swept > int64(time.Second) {
		sh.swept = t
		for key, v := range sh.m {
			if v < t {
				delete(sh.m, key)
			}
		}
	}
	return rrlAllow
}
