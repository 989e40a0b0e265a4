package zones

import (
	"errors"
	"fmt"
)

// ErrHeldBack: a new zone looks like an accident and is not published
// (exported or transferred) unless forced.
var ErrHeldBack = errors.New("zones: export held back")

// Guard is the sanity check between the listing and the mirrors: a zone
// that empties, shrinks by more than MaxShrink, or lists very wide
// prefixes is held back. The zero value holds back nothing but empties and
// wide prefixes at the defaults.
type Guard struct {
	// MaxShrink is the largest fraction (0..1) of entries a new zone may
	// lose against the last published one; 0 means the default 0.5, 1
	// turns the check off.
	MaxShrink float64
	// MinBits4 and MinBits6 are the widest prefixes a zone may list
	// (default /16 and /32); no zone may list 0.0.0.0/0 or ::/0, whatever
	// they say.
	MinBits4, MinBits6 int
	// AllowEmpty lets a zone that had entries become empty.
	AllowEmpty bool
}

func (g Guard) withDefaults() Guard {
	if g.MaxShrink <= 0 {
		g.MaxShrink = 0.5
	}
	if g.MinBits4 <= 0 {
		g.MinBits4 = 16
	}
	if g.MinBits6 <= 0 {
		g.MinBits6 = 32
	}
	return g
}

// Check returns nil when s may replace a published zone of prev entries
// (prev < 0: nothing published yet), else an error wrapping ErrHeldBack
// that says why.
func (g Guard) Check(prev int, s *Snapshot) error {
	g = g.withDefaults()
	n := s.Len()
	if prev > 0 && n == 0 && !g.AllowEmpty {
		return fmt.Errorf("%w: the zone would go from %d entries to none", ErrHeldBack, prev)
	}
	if prev > 0 && g.MaxShrink < 1 && float64(n) < float64(prev)*(1-g.MaxShrink) {
		return fmt.Errorf("%w: the zone would shrink from %d to %d entries (more than %.0f%%)", ErrHeldBack, prev, n, g.MaxShrink*100)
	}
	var wide *Entry
	s.Entries(func(e Entry) bool {
		if e.Exclude {
			return true
		}
		min := g.MinBits6
		if e.Prefix.Addr().Is4() {
			min = g.MinBits4
		}
		if e.Prefix.Bits() < min || e.Prefix.Bits() == 0 {
			wide = &e
			return false
		}
		return true
	})
	if wide != nil {
		return fmt.Errorf("%w: %s is wider than the widest listing allowed", ErrHeldBack, wide.Prefix)
	}
	return nil
}
