package listing

import (
	"net/netip"
	"time"

	"github.com/blowback-dnsbl/blowback/scoring"
	"github.com/blowback-dnsbl/blowback/store"
	"github.com/blowback-dnsbl/blowback/zones"
)

// Explanation is the listing decision for one address with its reasons:
// what `blowback explain` prints and GET /api/v1/explain/{ip} returns.
type Explanation struct {
	IP        string            `json:"ip"`
	Unit      string            `json:"unit"`
	Listed    bool              `json:"listed"`
	Codes     []string          `json:"codes"`
	Score     float64           `json:"score"`
	Reason    string            `json:"reason"`
	Manual    string            `json:"manual,omitempty"`
	FirstSeen *time.Time        `json:"first_seen"`
	LastSeen  *time.Time        `json:"last_seen"`
	Expires   *time.Time        `json:"expires"`
	Published bool              `json:"published"` // in the zone being served now
	Policy    map[string]string `json:"policy"`
	Evidence  []ExplainedEvent  `json:"evidence"`
	Actions   []store.Action    `json:"actions"`

	// The thresholds in force for this unit (after the repeat-offender multiplier).
	ListThreshold   float64 `json:"list_threshold"`
	DelistThreshold float64 `json:"delist_threshold"`
	MaxAge          string  `json:"max_age"`
	HalfLife        string  `json:"half_life"`
	// Since is when the current listing started; Lapsed when the last one ended.
	Since  *time.Time `json:"since"`
	Lapsed *time.Time `json:"lapsed,omitempty"`
	// Listings within the repeat memory, and the repeat-offender multiplier.
	Listings int     `json:"listings"`
	Repeat   float64 `json:"repeat"`
	// Allowed is the allowlist entry protecting the address, if any.
	Allowed string `json:"allowed,omitempty"`
	// Escalated is the wider prefix listed as a whole that holds the address, if any.
	Escalated *Escalated `json:"escalated,omitempty"`
}

// ExplainedEvent is one piece of evidence and the part it plays.
type ExplainedEvent struct {
	ID      string    `json:"id"`
	Time    time.Time `json:"time"`
	Addr    string    `json:"addr"`
	Kind    string    `json:"kind"`
	Weight  float64   `json:"weight"`
	Novelty float64   `json:"novelty"` // multiplier for repeated trap addresses and domains
	Initial float64   `json:"initial"` // what it added when it came (weight * novelty)
	Value   float64   `json:"value"`   // what it adds now (initial, decayed)
	Counted bool      `json:"counted"`
	Why     string    `json:"why"`
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

// Explain decides for a and says why.
func (e *Engine) Explain(a netip.Addr) (Explanation, error) {
	unit := scoring.Unit(a)
	refs, err := e.st.Refs(unit)
	if err != nil {
		return Explanation{}, err
	}
	acts, err := e.st.Actions(unit)
	if err != nil {
		return Explanation{}, err
	}
	d, items := scoring.Explain(&e.cfg.Policy, unit, refs, acts, e.cfg.Now())
	x := Explanation{IP: a.String(), Unit: unit.String(), Listed: d.Listed, Score: d.Score, Reason: d.Reason,
		Manual: d.Manual, FirstSeen: timePtr(d.FirstSeen), LastSeen: timePtr(d.LastSeen), Expires: timePtr(d.Expires),
		Codes: []string{}, Evidence: []ExplainedEvent{}, Actions: acts, Policy: e.cfg.Policy.Describe()}
	x.ListThreshold, x.DelistThreshold, x.Listings, x.Repeat = d.ListThreshold, d.DelistThreshold, d.Listings, d.Repeat
	x.MaxAge, x.HalfLife = d.MaxAge.String(), e.cfg.Policy.HalfLife.String()
	x.Since, x.Lapsed = timePtr(d.Since), timePtr(d.Lapsed)
	if d.Allowed.IsValid() {
		x.Allowed = d.Allowed.String()
	}
	if esc, ok := e.escalationOf(unit); ok {
		x.Escalated = &esc
	}
	if x.Actions == nil {
		x.Actions = []store.Action{}
	}
	if d.Listed {
		for _, c := range zones.CodesOf(d.Kinds).Addrs() {
			x.Codes = append(x.Codes, c.String())
		}
	}
	if snap := e.cur.Load(); snap != nil {
		x.Published = snap.Lookup(a) != 0
	}
	for _, it := range items {
		x.Evidence = append(x.Evidence, ExplainedEvent{ID: it.Ref.ID.String(), Time: it.Ref.Time, Addr: it.Ref.Addr.String(),
			Kind: it.Ref.Kind.String(), Weight: it.Weight, Novelty: it.Novelty, Initial: it.Initial, Value: it.Value, Counted: it.Counted, Why: it.Why})
	}
	return x, nil
}
