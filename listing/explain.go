package listing

import (
	"context"
	"net/netip"
	"slices"
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
	// Evidence is one page of the evidence considered, newest first:
	// Offset and Limit as asked, NextOffset to ask for the next page (nil
	// on the last). EvidenceTotal is how many pieces were considered (the
	// newest Config.MaxRefs at most); EvidencePartial says more is stored.
	Evidence        []ExplainedEvent `json:"evidence"`
	EvidenceTotal   int              `json:"evidence_total"`
	EvidencePartial bool             `json:"evidence_partial,omitempty"`
	Offset          int              `json:"offset"`
	Limit           int              `json:"limit"`
	NextOffset      *int             `json:"next_offset"`
	// Summary is the evidence considered per kind (all of it, not one page).
	Summary []KindSummary `json:"summary"`
	// Summarised counts, by kind, the events the store only counted (past
	// its per-unit cap: store.UnitSummary), which no decision reads.
	Summarised map[string]int `json:"summarised,omitempty"`
	// Actions are the newest manual actions (at most MaxActionsShown);
	// ActionsTotal counts all of them.
	Actions      []store.Action `json:"actions"`
	ActionsTotal int            `json:"actions_total"`

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

	publicReason string // Reason without text from the public or the allowlist (PublicReason)
}

// KindSummary sums up the evidence of one kind.
type KindSummary struct {
	Kind    string     `json:"kind"`
	Events  int        `json:"events"`
	Counted int        `json:"counted"`
	Initial float64    `json:"initial"` // what the counted ones added when they came
	Value   float64    `json:"value"`   // what they add now
	First   *time.Time `json:"first"`
	Last    *time.Time `json:"last"`
}

// ExplainedEvent is one piece of evidence and the part it plays.
type ExplainedEvent struct {
	ID      string    `json:"id,omitempty"`
	Time    time.Time `json:"time"`
	Addr    string    `json:"addr,omitempty"`
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

// Pages of evidence: DefaultExplainLimit items unless asked, MaxExplainLimit at most.
const (
	DefaultExplainLimit = 100
	MaxExplainLimit     = 1000
	// MaxActionsShown bounds the manual actions in an explanation.
	MaxActionsShown = 50
)

// Explain decides for a and says why, with the first page of evidence.
func (e *Engine) Explain(a netip.Addr) (Explanation, error) {
	return e.ExplainPage(a, 0, DefaultExplainLimit)
}

// ExplainPage is Explain with the evidence from offset (newest first), at
// most limit items (DefaultExplainLimit when 0, MaxExplainLimit at most).
// It reads the newest Config.MaxRefs refs of the unit (keys only), so its
// time, memory and answer are bounded whatever is stored.
func (e *Engine) ExplainPage(a netip.Addr, offset, limit int) (Explanation, error) {
	if limit <= 0 {
		limit = DefaultExplainLimit
	}
	limit = min(limit, MaxExplainLimit)
	offset = max(offset, 0)
	unit := scoring.Unit(a)
	refs, more, err := e.st.RefsNewest(unit, e.cfg.MaxRefs)
	if err != nil {
		return Explanation{}, err
	}
	acts, err := e.st.Actions(unit)
	if err != nil {
		return Explanation{}, err
	}
	summarised, err := e.Summarised(unit)
	if err != nil {
		return Explanation{}, err
	}
	d, items := scoring.Explain(&e.cfg.Policy, unit, refs, acts, e.cfg.Now())
	x := Explanation{IP: a.String(), Unit: unit.String(), Listed: d.Listed, Score: d.Score, Reason: d.Reason,
		Manual: d.Manual, FirstSeen: timePtr(d.FirstSeen), LastSeen: timePtr(d.LastSeen), Expires: timePtr(d.Expires),
		Codes: []string{}, Evidence: []ExplainedEvent{}, Summary: []KindSummary{}, Policy: e.cfg.Policy.Describe(),
		EvidenceTotal: len(items), EvidencePartial: more, Offset: offset, Limit: limit,
		ActionsTotal: len(acts), publicReason: PublicReason(d, acts), Summarised: summarised}
	x.ListThreshold, x.DelistThreshold, x.Listings, x.Repeat = d.ListThreshold, d.DelistThreshold, d.Listings, d.Repeat
	x.MaxAge, x.HalfLife = d.MaxAge.String(), e.cfg.Policy.HalfLife.String()
	x.Since, x.Lapsed = timePtr(d.Since), timePtr(d.Lapsed)
	if d.Allowed.IsValid() {
		x.Allowed = d.Allowed.String()
	}
	if esc, ok := e.escalationOf(unit); ok {
		x.Escalated = &esc
	}
	x.Actions = acts[max(0, len(acts)-MaxActionsShown):]
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
	// Summary per kind over everything considered; the page newest first.
	sum := map[store.Kind]*KindSummary{}
	for _, it := range items {
		k := sum[it.Ref.Kind]
		if k == nil {
			k = &KindSummary{Kind: it.Ref.Kind.String()}
			sum[it.Ref.Kind] = k
		}
		k.Events++
		if it.Counted {
			k.Counted++
			k.Initial += it.Initial
			k.Value += it.Value
		}
		if t := it.Ref.Time.UTC(); k.First == nil || t.Before(*k.First) {
			k.First = &t
		}
		if t := it.Ref.Time.UTC(); k.Last == nil || t.After(*k.Last) {
			k.Last = &t
		}
	}
	for _, k := range store.Kinds() {
		if s := sum[k]; s != nil {
			x.Summary = append(x.Summary, *s)
		}
	}
	slices.Reverse(items) // items are oldest first
	if offset < len(items) {
		for _, it := range items[offset:min(len(items), offset+limit)] {
			x.Evidence = append(x.Evidence, ExplainedEvent{ID: it.Ref.ID.String(), Time: it.Ref.Time, Addr: it.Ref.Addr.String(),
				Kind: it.Ref.Kind.String(), Weight: it.Weight, Novelty: it.Novelty, Initial: it.Initial, Value: it.Value, Counted: it.Counted, Why: it.Why})
		}
		if next := offset + limit; next < len(items) {
			x.NextOffset = &next
		}
	}
	return x, nil
}

// Summarised counts, by kind, the events of unit the store only counted
// past its per-unit cap (store.Summaries); nil when none.
func (e *Engine) Summarised(unit netip.Prefix) (map[string]int, error) {
	sums, err := e.st.Summaries(context.Background(), unit, 0)
	if err != nil {
		return nil, err
	}
	var out map[string]int
	for _, u := range sums {
		for k, n := range u.Summarised {
			if n > 0 {
				if out == nil {
					out = map[string]int{}
				}
				out[k.String()] += n
			}
		}
	}
	return out, nil
}

// PublicReason is d.Reason as the public may read it: without text the
// public wrote (the reason given with a self-service delist) and without
// the allowlist entry that protects the address. Admin-written reasons
// (a manual list or delist) stay.
func PublicReason(d scoring.Decision, acts []store.Action) string {
	switch {
	case d.Allowed.IsValid():
		return "allowlisted: evidence is kept, the address is never listed"
	case d.Manual == store.OpDelist:
		var last *store.Action
		for i := range acts {
			if acts[i].Op == store.OpDelist && (last == nil || !acts[i].Time.Before(last.Time)) {
				last = &acts[i]
			}
		}
		if last == nil || last.Public {
			return "delisted through the self-service form"
		}
	}
	return d.Reason
}

// Public is what the public may see of x (GET /api/v1/explain without the
// admin token): what the lookup page shows. The reason without public
// free text or the allowlist entry; manual actions without who and why
// (a self-service delist names its requester); no allowlist entry; no
// event ids or source addresses.
func (x Explanation) Public() Explanation {
	if x.publicReason != "" {
		x.Reason = x.publicReason
	}
	x.Allowed = ""
	pol := make(map[string]string, len(x.Policy))
	for k, v := range x.Policy {
		if k != "allow" { // the allowlist itself
			pol[k] = v
		}
	}
	x.Policy = pol
	acts := make([]store.Action, 0, len(x.Actions))
	for _, a := range x.Actions {
		who := "operator"
		if a.Public {
			who = "self-service"
		}
		acts = append(acts, store.Action{Time: a.Time, Prefix: a.Prefix, Op: a.Op, Who: who, Public: a.Public, Kinds: a.Kinds})
	}
	x.Actions = acts
	// Event ids and the exact source inside a /64 are not on the page either.
	ev := make([]ExplainedEvent, len(x.Evidence))
	for i, e := range x.Evidence {
		e.ID, e.Addr = "", ""
		ev[i] = e
	}
	x.Evidence = ev
	return x
}
