package zones

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func TestGuard(t *testing.T) {
	zone := func(n int, extra ...string) *Snapshot {
		var es []Entry
		for i := range n {
			es = append(es, Entry{Prefix: netip.PrefixFrom(addr4(0xc0000200+uint32(i)), 32), Codes: CodeBounce})
		}
		for _, p := range extra {
			es = append(es, Entry{Prefix: netip.MustParsePrefix(strings.TrimPrefix(p, "!")), Codes: CodeBounce, Exclude: strings.HasPrefix(p, "!")})
		}
		return Build(Info{Zone: "z"}, es)
	}
	for _, c := range []struct {
		name string
		g    Guard
		prev int
		s    *Snapshot
		held string // "" : passes
	}{
		{"first publication, empty", Guard{}, -1, zone(0), ""},
		{"empty stays empty", Guard{}, 0, zone(0), ""},
		{"grows", Guard{}, 10, zone(100), ""},
		{"shrinks by half", Guard{}, 100, zone(50), ""},
		{"shrinks by more than half", Guard{}, 100, zone(49), "shrink from 100 to 49"},
		{"empties", Guard{}, 100, zone(0), "from 100 entries to none"},
		{"empties, allowed", Guard{AllowEmpty: true, MaxShrink: 1}, 100, zone(0), ""},
		{"shrink check off", Guard{MaxShrink: 1}, 100, zone(1), ""},
		{"stricter shrink", Guard{MaxShrink: 0.1}, 100, zone(89), "shrink"},
		{"the world", Guard{}, 1, zone(1, "0.0.0.0/0"), "0.0.0.0/0 is wider"},
		{"the IPv6 world", Guard{MinBits6: 1}, 1, zone(1, "::/0"), "::/0 is wider"},
		{"a /8", Guard{}, 1, zone(1, "10.0.0.0/8"), "10.0.0.0/8"},
		{"a /8, allowed", Guard{MinBits4: 8}, 1, zone(1, "10.0.0.0/8"), ""},
		{"a /16", Guard{}, 1, zone(1, "10.1.0.0/16"), ""},
		{"a wide exclusion", Guard{}, 1, zone(1, "!10.0.0.0/8"), ""},
		{"an IPv6 /24", Guard{}, 1, zone(1, "2001:d00::/24"), "2001:d00::/24"},
		{"an IPv6 /48", Guard{}, 1, zone(1, "2001:db8:1::/48"), ""},
	} {
		err := c.g.Check(c.prev, c.s)
		switch {
		case c.held == "" && err != nil:
			t.Errorf("%s: held back: %v", c.name, err)
		case c.held != "" && (err == nil || !errors.Is(err, ErrHeldBack) || !strings.Contains(err.Error(), c.held)):
			t.Errorf("%s: %v, want held back (%q)", c.name, err, c.held)
		}
	}
}
