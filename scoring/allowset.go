package scoring

import (
	"net/netip"
	"sort"
	"sync/atomic"
)

// AllowSet is the allowlist changed at run time by admin actions (package
// listing stores them; on a cluster they come from the log). It adds to
// Policy.Allow, the configured list; it is safe for concurrent use.
type AllowSet struct {
	p atomic.Pointer[[]netip.Prefix]
}

// Set replaces the set's networks.
func (s *AllowSet) Set(nets []netip.Prefix) {
	c := append([]netip.Prefix(nil), nets...)
	sort.Slice(c, func(i, j int) bool { return c[i].String() < c[j].String() })
	s.p.Store(&c)
}

// Networks returns the set's networks, sorted.
func (s *AllowSet) Networks() []netip.Prefix {
	if s == nil {
		return nil
	}
	if p := s.p.Load(); p != nil {
		return *p
	}
	return nil
}

// allowed returns the network of the set that overlaps unit, if any.
func (s *AllowSet) allowed(unit netip.Prefix) (netip.Prefix, bool) {
	for _, a := range s.Networks() {
		if a.Overlaps(unit) {
			return a, true
		}
	}
	return netip.Prefix{}, false
}
