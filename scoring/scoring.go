// Package scoring turns evidence into listing decisions. It is pure: it
// takes evidence, manual actions, a policy and the current time, and returns
// decisions. It reads no clock and does no I/O, so any decision can be
// replayed and explained.
//
// # Model
//
// The evidence and manual actions of a unit are replayed in time order
// (events by time and id, an action after the events of its instant, so
// the input order never matters). Each hit of kind k adds
//
//	value = Weights[k] * novelty
//
// to the unit's score, and every value decays with HalfLife. Novelty is 1
// for a hit to a fresh trap address, SameAddress for a burst to the same
// trap address, SameDomain for a new address in a trap domain already hit;
// it recovers toward 1 as the earlier hits to that address or domain decay
// (novelty = 1 - (1-SameAddress)*min(1, residual/weight)). This keeps a
// property the defaults rely on: right after any hit the score is at least
// the hit's weight, so one fresh bounce lists whatever came before.
//
// A unit is listed when its score reaches ListThreshold at a hit. Once
// listed it stays listed until the decaying score falls below
// DelistThreshold, or MaxAge passes after its last hit (hysteresis). A unit
// listed again within RepeatMemory of an earlier listing is a repeat
// offender: its MaxAge is multiplied and its DelistThreshold divided by
// RepeatFactor per earlier listing, bounded by RepeatMax.
//
// A manual delist ends a listing and resets the score: evidence before it no
// longer counts, and a new hit lists again. A manual list lists until a
// delist. The allowlist wins over everything.
package scoring

import (
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strconv"
	"time"

	"github.com/blowback-dnsbl/blowback/store"
)

// Unit is the listing unit an address belongs to: the address itself for
// IPv4, its /64 for IPv6 (CONTRACT.md "DNS").
func Unit(a netip.Addr) netip.Prefix { return store.Unit(a) }

// Decision is the listing decision for one unit at one time.
type Decision struct {
	Unit      netip.Prefix
	Listed    bool
	Kinds     store.KindSet // kinds on record that count toward the listing
	Score     float64       // the unit's decayed score now
	Counts    map[store.Kind]int
	FirstSeen time.Time // first counted evidence (after the last delist)
	LastSeen  time.Time // last counted evidence
	Expires   time.Time // when the listing lapses without new evidence (zero if not listed or manual)
	Manual    string    // "list" or "delist" when a manual action decides
	// Reason is one line for humans. A Decider with Lazy set leaves it
	// empty: ReasonText builds it from the decision when asked.
	Reason string

	// Since is when the current listing started (zero if not listed).
	Since time.Time
	// Lapsed is when the last listing ended, if it is not listed now.
	Lapsed time.Time
	// Listings counts the listings that started within RepeatMemory of now
	// (the current one included).
	Listings int
	// Repeat is the repeat-offender multiplier of the current (or next) listing.
	Repeat float64
	// ListThreshold, DelistThreshold and MaxAge are the thresholds in force
	// for this unit (the delist threshold and max age after Repeat).
	ListThreshold   float64
	DelistThreshold float64
	MaxAge          time.Duration
	// Allowed is the allowlist entry protecting the unit, if any.
	Allowed netip.Prefix
	// Review is when this decision changes without new evidence: the
	// listing lapses or a kind ages out of it (zero: never). A live
	// listing re-scores the unit then. For a manual listing it is a hint
	// (the kinds of the action may stay the same).
	Review time.Time

	// What Reason is built from (ReasonText): a full rebuild decides
	// millions of units and reads none of their reasons.
	why reasonArgs
}

// reasonArgs is what a decision's reason text is made of: the case and the
// strings it quotes (no text is built until ReasonText).
type reasonArgs struct {
	kind   whyKind
	note   string // lapse cause, or the listing's first way out ("max age"/"score")
	who    string // of the manual action
	text   string // reason of the manual action
	public bool   // the delist was self-service
}

type whyKind uint8

const (
	whyNone whyKind = iota
	whyNotListable
	whyAllowed
	whyManualList
	whyListed
	whyDelisted
	whyLapsed
	whyBelow
)

// ReasonText returns Reason, or builds it when the decision was made
// without it (Decider.Lazy). The text is the same either way.
func (d *Decision) ReasonText() string {
	if d.Reason != "" {
		return d.Reason
	}
	return d.reasonText()
}

func (d *Decision) reasonText() string {
	w := &d.why
	switch w.kind {
	case whyNotListable:
		return notListableReason(d.Unit.Addr())
	case whyAllowed:
		return "allowlisted (" + d.Allowed.String() + "): evidence is kept, the address is never listed"
	case whyManualList:
		return "listed manually by " + w.who + ": " + w.text
	case whyListed:
		r := fmt.Sprintf("listed since %s: score %s reached %s; stays listed until the score falls below %s or %s after the last hit (%s first)",
			d.Since.Format(time.RFC3339), ff(d.Score), ff(d.ListThreshold), ff(d.DelistThreshold), durString(d.MaxAge), w.note)
		if d.Repeat > 1 {
			r += fmt.Sprintf("; repeat offender (%d listings): x%s", d.Listings, ff(d.Repeat))
		}
		return r
	case whyDelisted:
		if w.public {
			return "delisted (self-service): " + w.text
		}
		return "delisted by " + w.who + ": " + w.text
	case whyLapsed:
		return "listing lapsed at " + d.Lapsed.Format(time.RFC3339) + ": " + w.note
	case whyBelow:
		return fmt.Sprintf("score %s below the list threshold %s", ff(d.Score), ff(d.ListThreshold))
	}
	return "no backscatter on record"
}

// Item explains one piece of evidence in a decision.
type Item struct {
	Ref     store.Ref
	Weight  float64 // weight of its kind
	Novelty float64 // multiplier for repeated trap addresses and domains
	Initial float64 // what it added to the score when it came (Weight*Novelty)
	Value   float64 // what it adds to the score now (Initial, decayed)
	Counted bool
	Why     string // why it counts or not
}

// Decide returns the decision for unit given its evidence and manual actions at now.
// refs and actions may be in any order; they are not modified.
func Decide(p *Policy, unit netip.Prefix, refs []store.Ref, actions []store.Action, now time.Time) Decision {
	var d Decider
	d.Policy = p
	return d.run(unit, refs, actions, now, nil, true)
}

// Explain is Decide with the part each piece of evidence played, oldest first.
func Explain(p *Policy, unit netip.Prefix, refs []store.Ref, actions []store.Action, now time.Time) (Decision, []Item) {
	var d Decider
	d.Policy = p
	items := make([]Item, 0, len(refs))
	dec := d.run(unit, refs, actions, now, &items, true)
	return dec, items
}

// Decider decides many units in a row reusing its buffers (for a full
// rebuild). It is not safe for concurrent use.
type Decider struct {
	Policy *Policy
	// Lazy leaves Decision.Reason empty (Decision.ReasonText builds it on
	// demand): a rebuild then allocates no text per unit.
	Lazy bool

	refs []store.Ref
	acts []store.Action
	res  []residual
	// resIdx indexes res by resKey once it holds linearResiduals or more
	// (its first resIndexed entries); below that a scan is faster.
	resIdx     map[uint64]int32
	resIndexed int
	// starts of listings, unix nanoseconds
	starts []int64
}

// NewDecider returns a Decider for p.
func NewDecider(p *Policy) *Decider { return &Decider{Policy: p} }

// Decide is Decide without Counts (nil), for the hot path.
func (d *Decider) Decide(unit netip.Prefix, refs []store.Ref, actions []store.Action, now time.Time) Decision {
	return d.run(unit, refs, actions, now, nil, false)
}

// residual is the decayed value already credited to one trap address or
// domain of the unit.
type residual struct {
	key uint32
	dom bool
	v   float64
	t   int64
}

const eps = 1e-9

// linearResiduals is how many residuals credit scans before it indexes
// them: a unit hit at many distinct trap addresses (backscatter to random
// recipients is the common case) has one residual per address, and a scan
// per ref made a decision quadratic in them (2000 refs to distinct
// addresses: 200 decisions of the public history took 33 ms).
const linearResiduals = 32

func resKey(key uint32, dom bool) uint64 {
	k := uint64(key) << 1
	if dom {
		k |= 1
	}
	return k
}

// credit returns the index of the residual for key (appending may move
// the slice), scanning: the common case, small enough to inline; run calls
// creditIndexed instead once there are linearResiduals.
func (d *Decider) credit(key uint32, dom bool, at int64) int {
	for i := range d.res {
		if r := &d.res[i]; r.key == key && r.dom == dom {
			return i
		}
	}
	d.res = append(d.res, residual{key: key, dom: dom, t: at})
	return len(d.res) - 1
}

// creditIndexed is credit through resIdx, indexing what is not yet.
func (d *Decider) creditIndexed(key uint32, dom bool, at int64) int {
	if d.resIdx == nil {
		d.resIdx = make(map[uint64]int32, 2*linearResiduals)
	}
	for ; d.resIndexed < len(d.res); d.resIndexed++ {
		r := &d.res[d.resIndexed]
		d.resIdx[resKey(r.key, r.dom)] = int32(d.resIndexed)
	}
	if i, ok := d.resIdx[resKey(key, dom)]; ok {
		return int(i)
	}
	d.res = append(d.res, residual{key: key, dom: dom, t: at})
	return len(d.res) - 1
}

// resetResiduals forgets every residual (a new decision, or a delist).
func (d *Decider) resetResiduals() {
	d.res = d.res[:0]
	if d.resIndexed > 0 {
		clear(d.resIdx)
		d.resIndexed = 0
	}
}

func (d *Decider) run(unit netip.Prefix, refs []store.Ref, actions []store.Action, now time.Time, items *[]Item, counts bool) Decision {
	p := d.Policy
	dec := Decision{Unit: unit, ListThreshold: p.ListThreshold, DelistThreshold: p.DelistThreshold, MaxAge: p.MaxAge, Repeat: 1}
	if counts {
		dec.Counts = map[store.Kind]int{}
		for _, r := range refs {
			dec.Counts[r.Kind]++
		}
	}
	nowN := now.UnixNano()

	// Order the timeline: refs by (time, id), actions by time (stable).
	d.refs = append(d.refs[:0], refs...)
	slices.SortFunc(d.refs, func(a, b store.Ref) int {
		if c := a.Time.Compare(b.Time); c != 0 {
			return c
		}
		return slices.Compare(a.ID[:], b.ID[:])
	})
	d.acts = d.acts[:0]
	var cutoff *store.Action // the last delist at or before now
	var last *store.Action   // the last action at or before now
	for _, a := range actions {
		if a.Time.After(now) {
			continue
		}
		d.acts = append(d.acts, a)
	}
	slices.SortStableFunc(d.acts, func(a, b store.Action) int { return a.Time.Compare(b.Time) })
	for i := range d.acts {
		last = &d.acts[i]
		if last.Op == store.OpDelist {
			cutoff = last
		}
	}
	var cutoffN int64 = math.MinInt64
	if cutoff != nil {
		cutoffN = cutoff.Time.UnixNano()
	}

	if !Listable(unit.Addr()) {
		dec.why.kind = whyNotListable
		d.fill(&dec)
		if items != nil {
			for _, r := range d.refs {
				*items = append(*items, Item{Ref: r, Weight: p.Weight(r.Kind), Why: "address never listed"})
			}
		}
		return dec
	}
	if a, ok := p.Allowed(unit); ok {
		dec.Allowed = a
		dec.why.kind = whyAllowed
		d.fill(&dec)
		if items != nil {
			for _, r := range d.refs {
				*items = append(*items, Item{Ref: r, Weight: p.Weight(r.Kind), Why: "allowlisted"})
			}
		}
		return dec
	}

	// Replay state.
	var (
		score     float64 // at scoreT
		scoreT    int64
		listed    bool
		manual    bool
		lastHit   int64
		since     int64
		lapsed    int64
		repeat    = 1.0
		kindT     [16]int64 // last counted hit per kind within the current listing
		firstSeen int64
		lastSeen  int64
		lapseWhy  string
	)
	d.resetResiduals()
	d.starts = d.starts[:0]
	memory := int64(p.RepeatMemory)
	startListing := func(at int64) {
		n := 0
		for _, s := range d.starts {
			if at-s < memory {
				n++
			}
		}
		repeat = p.repeat(n)
		d.starts = append(d.starts, at)
		listed, since = true, at
		kindT = [16]int64{}
	}
	// expiry is when the current automatic listing lapses without new hits.
	expiry := func() (int64, string) {
		exp, why := int64(math.MaxInt64), ""
		if p.MaxAge > 0 {
			exp, why = lastHit+int64(float64(p.MaxAge)*repeat), "max age passed"
		}
		if del := p.DelistThreshold / repeat; p.HalfLife > 0 && del > 0 {
			t := scoreT
			if score > del {
				t += int64(float64(p.HalfLife) * math.Log2(score/del))
			}
			if t < exp {
				exp, why = t, "score fell below the delist threshold"
			}
		}
		return exp, why
	}
	advance := func(to int64) {
		if listed && !manual {
			if exp, why := expiry(); to >= exp {
				listed, lapsed, lapseWhy = false, exp, why
			}
		}
	}
	decayTo := func(v float64, from, to int64) float64 {
		return v * p.decay(time.Duration(to-from))
	}

	ai := 0
	for ri := 0; ri <= len(d.refs); ri++ {
		// Actions before this ref's time go first; at equal times evidence
		// goes first, so evidence at the instant of a delist does not count.
		var rt int64 = math.MaxInt64
		if ri < len(d.refs) {
			rt = d.refs[ri].Time.UnixNano()
		}
		for ai < len(d.acts) && (d.acts[ai].Time.UnixNano() < rt || ri == len(d.refs)) {
			a := &d.acts[ai]
			ai++
			at := a.Time.UnixNano()
			advance(at)
			switch a.Op {
			case store.OpDelist:
				if listed {
					lapsed, lapseWhy = at, "delisted"
				}
				listed, manual = false, false
				score, scoreT = 0, at
				d.resetResiduals()
			case store.OpList:
				if !listed {
					startListing(at)
				}
				manual = true
			}
		}
		if ri == len(d.refs) {
			break
		}
		r := d.refs[ri]
		w := p.Weight(r.Kind)
		it := Item{Ref: r, Weight: w}
		// The per-item texts are built only for Explain (items != nil).
		note := func(counted bool, why string) {
			it.Counted, it.Why = counted, why
			*items = append(*items, it)
		}
		switch {
		case rt > nowN:
			if items != nil {
				note(false, "in the future")
			}
			continue
		case w <= 0:
			if items != nil {
				note(false, r.Kind.String()+" has weight 0 (not backscatter)")
			}
			continue
		}
		advance(rt)
		score, scoreT = decayTo(score, scoreT, rt), rt
		var ia, id int
		if len(d.res) < linearResiduals {
			ia, id = d.credit(r.Rcpt, false, rt), d.credit(r.Domain, true, rt)
		} else {
			ia, id = d.creditIndexed(r.Rcpt, false, rt), d.creditIndexed(r.Domain, true, rt)
		}
		ra, rd := &d.res[ia], &d.res[id]
		ra.v, ra.t = decayTo(ra.v, ra.t, rt), rt
		rd.v, rd.t = decayTo(rd.v, rd.t, rt), rt
		nov, why := 1.0, "new trap address"
		if n := 1 - (1-p.SameAddress)*min(1, ra.v/w); ra.v > 0 && n < nov {
			nov, why = n, "trap address hit again"
		}
		if n := 1 - (1-p.SameDomain)*min(1, rd.v/w); rd.v > 0 && n < nov {
			nov, why = n, "new address in a trap domain hit again"
		}
		v := w * nov
		score += v
		ra.v += v
		rd.v += v
		lastHit = rt
		listedNow := false
		if !listed && score >= p.ListThreshold-eps {
			startListing(rt)
			listedNow = true
		}
		if listed && int(r.Kind) < len(kindT) {
			kindT[r.Kind] = rt
		}
		if rt > cutoffN {
			if firstSeen == 0 {
				firstSeen = rt
			}
			lastSeen = rt
			it.Novelty, it.Initial = nov, v
			it.Value = decayTo(v, rt, nowN)
			if items != nil {
				if listedNow {
					why += ", listed"
				}
				note(true, why+fmt.Sprintf(" (novelty %.2f, score %.3f after it)", nov, score))
			}
		} else if items != nil {
			note(false, "before the delist of "+cutoff.Time.UTC().Format(time.RFC3339))
		}
	}
	advance(nowN)

	dec.Score = decayTo(score, scoreT, nowN)
	if firstSeen != 0 {
		dec.FirstSeen, dec.LastSeen = time.Unix(0, firstSeen).UTC(), time.Unix(0, lastSeen).UTC()
	}
	for _, s := range d.starts {
		if nowN-s < memory {
			dec.Listings++
		}
	}
	if !listed {
		// The multiplier the next listing would get.
		repeat = p.repeat(dec.Listings)
	}
	dec.Repeat = repeat
	dec.DelistThreshold = p.DelistThreshold / repeat
	dec.MaxAge = time.Duration(float64(p.MaxAge) * repeat)
	maxAgeN := int64(dec.MaxAge)
	var review int64 = math.MaxInt64
	if listed {
		dec.Listed = true
		dec.Since = time.Unix(0, since).UTC()
		for k := range kindT {
			if kindT[k] != 0 && (p.MaxAge == 0 || nowN-kindT[k] < maxAgeN) {
				dec.Kinds = dec.Kinds.Add(store.Kind(k))
				if p.MaxAge > 0 {
					review = min(review, kindT[k]+maxAgeN)
				}
			}
		}
	} else if lapsed != 0 && (cutoff == nil || lapsed > cutoffN) {
		dec.Lapsed = time.Unix(0, lapsed).UTC()
	}
	switch {
	case listed && manual:
		dec.Manual = store.OpList
		for _, k := range last.Kinds {
			dec.Kinds = dec.Kinds.Add(k)
		}
		if dec.Kinds == 0 {
			dec.Kinds = dec.Kinds.Add(store.KindBounce)
		}
		if review != math.MaxInt64 {
			dec.Review = time.Unix(0, review).UTC()
		}
		dec.why = reasonArgs{kind: whyManualList, who: last.Who, text: last.Reason}
	case listed:
		exp, why := expiry()
		dec.Expires = time.Unix(0, exp).UTC()
		dec.Review = time.Unix(0, min(exp, review)).UTC()
		dec.why = reasonArgs{kind: whyListed, note: shortWhy(why)}
	case cutoff != nil && lastSeen == 0:
		dec.Manual = store.OpDelist
		dec.why = reasonArgs{kind: whyDelisted, who: cutoff.Who, text: cutoff.Reason, public: cutoff.Public}
	case !dec.Lapsed.IsZero():
		dec.why = reasonArgs{kind: whyLapsed, note: lapseWhy}
	case lastSeen != 0:
		dec.why.kind = whyBelow
	}
	d.fill(&dec)
	return dec
}

// fill sets dec.Reason unless the decider is lazy.
func (d *Decider) fill(dec *Decision) {
	if !d.Lazy {
		dec.Reason = dec.reasonText()
	}
}

func ff(v float64) string { return strconv.FormatFloat(v, 'g', 4, 64) }

func shortWhy(why string) string {
	if why == "max age passed" {
		return "max age"
	}
	return "score"
}
