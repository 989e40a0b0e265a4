// Package scoring turns evidence into listing decisions. It is pure: it
// takes evidence, manual actions, a policy and the current time, and returns
// decisions. It reads no clock and does no I/O, so any decision can be
// replayed and explained.
package scoring

import (
	"net/netip"
	"time"

	"github.com/blowback-dnsbl/blowback/store"
)

// Policy is the listing policy. The zero value is not useful; start from
// DefaultPolicy.
type Policy struct {
	// MaxAge is how long an address stays listed after its last counted hit.
	MaxAge time.Duration
	// Allow lists networks that are never listed (their evidence is still kept).
	Allow []netip.Prefix
}

// DefaultPolicy is the documented default policy.
func DefaultPolicy() Policy {
	return Policy{MaxAge: 28 * 24 * time.Hour}
}

// Unit is the listing unit an address belongs to: the address itself for
// IPv4, its /64 for IPv6 (CONTRACT.md "DNS").
func Unit(a netip.Addr) netip.Prefix {
	a = a.Unmap()
	if a.Is4() {
		return netip.PrefixFrom(a, 32)
	}
	p, _ := a.Prefix(64)
	return p
}

// Decision is the listing decision for one unit at one time.
type Decision struct {
	Unit      netip.Prefix
	Listed    bool
	Kinds     store.KindSet // kinds on record that count toward the listing
	Score     float64       // weight of the evidence that counts, now
	Counts    map[store.Kind]int
	FirstSeen time.Time // first counted evidence
	LastSeen  time.Time // last counted evidence
	Expires   time.Time // when the listing lapses without new evidence (zero if not listed)
	Manual    string    // "list" or "delist" when a manual action decides
	Reason    string    // one line for humans
}

// Item explains one piece of evidence in a decision.
type Item struct {
	Ref     store.Ref
	Weight  float64 // weight of its kind
	Value   float64 // what it adds to the score now
	Counted bool
	Why     string // why it counts or not
}

// Decide returns the decision for unit given its evidence and manual actions at now.
// refs and actions may be in any order.
func Decide(p *Policy, unit netip.Prefix, refs []store.Ref, actions []store.Action, now time.Time) Decision {
	return decide(p, unit, refs, actions, now, nil)
}

// Explain is Decide with the part each piece of evidence played.
func Explain(p *Policy, unit netip.Prefix, refs []store.Ref, actions []store.Action, now time.Time) (Decision, []Item) {
	items := make([]Item, 0, len(refs))
	d := decide(p, unit, refs, actions, now, &items)
	return d, items
}

func decide(p *Policy, unit netip.Prefix, refs []store.Ref, actions []store.Action, now time.Time, items *[]Item) Decision {
	d := Decision{Unit: unit, Counts: map[store.Kind]int{}}
	note := func(r store.Ref, counted bool, why string) {
		if items != nil {
			it := Item{Ref: r, Counted: counted, Why: why}
			if r.Kind.Backscatter() {
				it.Weight = 1
			}
			if counted {
				it.Value = 1
			}
			*items = append(*items, it)
		}
	}
	for _, a := range p.Allow {
		if a.Overlaps(unit) && a.Bits() <= unit.Bits() {
			d.Reason = "allowlisted (" + a.String() + ")"
			for _, r := range refs {
				d.Counts[r.Kind]++
				note(r, false, "allowlisted")
			}
			return d
		}
	}
	// The latest manual action before now decides what counts.
	var last *store.Action
	for i := range actions {
		a := &actions[i]
		if a.Time.After(now) {
			continue
		}
		if last == nil || a.Time.After(last.Time) {
			last = a
		}
	}
	var since time.Time
	if last != nil && last.Op == store.OpDelist {
		since = last.Time // evidence before a delist no longer counts
	}
	cutoff := now.Add(-p.MaxAge)
	for _, r := range refs {
		d.Counts[r.Kind]++
		switch {
		case !r.Kind.Backscatter():
			note(r, false, r.Kind.String()+" is not backscatter")
			continue
		case r.Time.After(now):
			note(r, false, "in the future")
			continue
		case !r.Time.After(since):
			note(r, false, "before the delist of "+since.UTC().Format(time.RFC3339))
			continue
		case r.Time.Before(cutoff):
			note(r, false, "older than "+p.MaxAge.String())
			continue
		}
		note(r, true, "backscatter within "+p.MaxAge.String())
		d.Kinds = d.Kinds.Add(r.Kind)
		d.Score++
		if d.FirstSeen.IsZero() || r.Time.Before(d.FirstSeen) {
			d.FirstSeen = r.Time
		}
		if r.Time.After(d.LastSeen) {
			d.LastSeen = r.Time
		}
	}
	if last != nil && last.Op == store.OpList {
		d.Listed = true
		d.Manual = store.OpList
		for _, k := range last.Kinds {
			d.Kinds = d.Kinds.Add(k)
		}
		if len(last.Kinds) == 0 && d.Kinds == 0 {
			d.Kinds = d.Kinds.Add(store.KindBounce)
		}
		d.Reason = "listed manually: " + last.Reason
		return d
	}
	if d.Kinds != 0 {
		d.Listed = true
		d.Expires = d.LastSeen.Add(p.MaxAge)
		d.Reason = "backscatter received within the last " + p.MaxAge.String()
		return d
	}
	if last != nil && last.Op == store.OpDelist {
		d.Manual = store.OpDelist
		d.Reason = "delisted: " + last.Reason
		return d
	}
	d.Reason = "no backscatter within the last " + p.MaxAge.String()
	return d
}

// Describe lists the policy's settings for explanations.
func (p *Policy) Describe() map[string]string {
	m := map[string]string{"max_age": p.MaxAge.String()}
	if len(p.Allow) > 0 {
		s := ""
		for i, a := range p.Allow {
			if i > 0 {
				s += " "
			}
			s += a.String()
		}
		m["allow"] = s
	}
	return m
}
