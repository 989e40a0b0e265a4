package listing

import (
	"fmt"
	"net/netip"
	"slices"

	"github.com/blowback-dnsbl/blowback/zones"
)

// Escalated is a wider prefix (IPv4 /24, IPv6 /48 by default) listed as a
// whole because enough units in it are listed (Policy.Escalate, off by
// default). It is published as a range entry whose TXT names its scope.
type Escalated struct {
	Prefix  netip.Prefix `json:"prefix"`
	Members int          `json:"members"` // listed units inside
	Codes   zones.Codes  `json:"codes"`   // union of the members' codes
}

// entry is the zone entry for x, with the zone's TXT template extended by
// the scope (CONTRACT.md: every listed name has a TXT).
func (x Escalated) entry(txt string) zones.Entry {
	e := zones.Entry{Prefix: x.Prefix, Codes: x.Codes}
	if txt != "" {
		e.Value = &zones.Value{OwnTXT: true,
			TXT: txt + fmt.Sprintf(" (listed as part of %s: %d addresses in it listed)", x.Prefix, x.Members)}
	}
	return e
}

// countWide counts listed units per escalation prefix. e.mu is held.
func (e *Engine) countWide() map[netip.Prefix]int {
	m := map[netip.Prefix]int{}
	if !e.cfg.Policy.Escalate.Enabled {
		return m
	}
	e.listed.each(func(u netip.Prefix, _ slot) {
		if w, ok := e.cfg.Policy.EscalationPrefix(u); ok {
			m[w]++
		}
	})
	return m
}

// noteWideLocked updates the count of unit's wider prefix after a change
// and marks the escalations dirty when they may have changed. e.mu is held.
func (e *Engine) noteWideLocked(unit netip.Prefix, was, is bool) {
	w, ok := e.cfg.Policy.EscalationPrefix(unit)
	if !ok {
		return
	}
	switch {
	case is && !was:
		e.wide[w]++
	case was && !is:
		if e.wide[w]--; e.wide[w] <= 0 {
			delete(e.wide, w)
		}
	}
	_, on := e.escalated[w]
	if on || e.cfg.Policy.Escalates(w, e.wide[w]) {
		e.escDirty = true // flips, or its members or codes changed
	}
}

// updateEscalations recomputes e.escalated from e.wide. e.mu is held.
func (e *Engine) updateEscalations() {
	next := map[netip.Prefix]Escalated{}
	for w, n := range e.wide {
		if !e.cfg.Policy.Escalates(w, n) {
			continue
		}
		x := Escalated{Prefix: w, Members: n}
		if w.Addr().Is4() {
			base, _, _ := unitKey(w)
			for i := uint32(0); i < 1<<(32-w.Bits()); i++ {
				x.Codes |= e.listed.v4[base+i].codes
			}
		} else {
			for k, s := range e.listed.v6 {
				if w.Contains(unit6(k).Addr()) {
					x.Codes |= s.codes
				}
			}
		}
		next[w] = x
	}
	for w := range e.escalated {
		if _, ok := next[w]; !ok {
			e.log.Info("escalation lifted", "prefix", w)
		}
	}
	for w, x := range next {
		if _, ok := e.escalated[w]; !ok {
			e.log.Info("escalated", "prefix", w, "members", x.Members)
		}
	}
	e.escalated = next
}

// Escalations returns the wider prefixes listed as a whole now, sorted.
func (e *Engine) Escalations() []Escalated {
	e.mu.Lock()
	out := make([]Escalated, 0, len(e.escalated))
	for _, x := range e.escalated {
		out = append(out, x)
	}
	e.mu.Unlock()
	slices.SortFunc(out, func(a, b Escalated) int { return a.Prefix.Addr().Compare(b.Prefix.Addr()) })
	return out
}

// escalationOf returns the escalation covering unit, if any.
func (e *Engine) escalationOf(unit netip.Prefix) (Escalated, bool) {
	w, ok := e.cfg.Policy.EscalationPrefix(unit)
	if !ok {
		return Escalated{}, false
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	x, ok := e.escalated[w]
	return x, ok
}
