package scoring

import (
	"math"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/blowback-dnsbl/blowback/store"
)

var (
	t0   = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	day  = 24 * time.Hour
	unit = netip.MustParsePrefix("192.0.2.7/32")
)

// hit is one piece of evidence at t0+at to trap address rcpt@dom.
func hit(at time.Duration, k store.Kind, rcpt, dom string) store.Ref {
	id := store.NewEventID()
	return store.Ref{ID: id, Addr: unit.Addr(), Time: t0.Add(at), Kind: k,
		Rcpt: store.Hash32(rcpt + "@" + dom), Domain: store.Hash32(dom)}
}

func bounce(at time.Duration, rcpt string) store.Ref {
	return hit(at, store.KindBounce, rcpt, "trap.test")
}

func act(at time.Duration, op string, kinds ...store.Kind) store.Action {
	return store.Action{Time: t0.Add(at), Prefix: unit, Op: op, Who: "admin:test", Reason: "test", Kinds: kinds}
}

// burst is n hits at t0+at, to n distinct addresses if distinct, else one.
func burst(at time.Duration, n int, distinct bool, domains bool) []store.Ref {
	var out []store.Ref
	for i := 0; i < n; i++ {
		rcpt, dom := "a", "trap.test"
		if distinct {
			rcpt = string(rune('a' + i))
		}
		if domains {
			dom = string(rune('a'+i)) + ".trap.test"
		}
		out = append(out, hit(at, store.KindBounce, rcpt, dom))
	}
	return out
}

func TestDecideTable(t *testing.T) {
	def := DefaultPolicy()
	weak := DefaultPolicy()
	weak.Weights = map[store.Kind]float64{store.KindBounce: 1, store.KindCallout: 0.5}
	allow := DefaultPolicy()
	allow.Allow = []netip.Prefix{netip.MustParsePrefix("192.0.2.0/28")}
	noRepeat := DefaultPolicy()
	noRepeat.RepeatFactor = 1
	h := 7 * day // default half-life
	// life is how long a score lasts above a delist threshold.
	life := func(score, delist float64) time.Duration {
		return time.Duration(float64(h) * math.Log2(score/delist))
	}
	s30 := 1 + math.Exp2(-30.0/7) // a hit 30 days after a first one
	cases := []struct {
		name    string
		p       *Policy
		refs    []store.Ref
		acts    []store.Action
		now     time.Duration
		listed  bool
		score   float64       // checked when >= 0
		expires time.Duration // checked when listed and > 0
		repeat  float64       // checked when > 0
	}{
		{"no evidence", &def, nil, nil, 0, false, 0, 0, 0},
		{"one fresh bounce lists", &def, []store.Ref{bounce(0, "a")}, nil, 0, true, 1, 2 * h, 1},
		{"one bounce 13 days ago", &def, []store.Ref{bounce(0, "a")}, nil, 13 * day, true, math.Exp2(-13.0 / 7), 2 * h, 0},
		{"one bounce 15 days ago lapsed", &def, []store.Ref{bounce(0, "a")}, nil, 15 * day, false, math.Exp2(-15.0 / 7), 0, 0},
		{"burst to one address", &def, burst(0, 10, false, false), nil, 0, true, 1 + 9*0.1, 0, 0},
		{"ten addresses one domain", &def, burst(0, 10, true, false), nil, 0, true, 1 + 9*0.5, 0, 0},
		{"ten addresses ten domains", &def, burst(0, 10, true, true), nil, 0, true, 10, 0, 0},
		{"heavy source capped by max age", &def, burst(0, 8, true, true), nil, 27 * day, true, -1, 28 * day, 0},
		{"heavy source after max age", &def, burst(0, 8, true, true), nil, 28 * day, false, -1, 0, 0},
		{"report is not backscatter", &def, []store.Ref{hit(0, store.KindReport, "a", "trap.test")}, nil, 0, false, 0, 0, 0},
		{"spam is not backscatter", &def, []store.Ref{hit(0, store.KindSpam, "a", "trap.test")}, nil, 0, false, 0, 0, 0},
		{"future evidence ignored", &def, []store.Ref{bounce(time.Hour, "a")}, nil, 0, false, 0, 0, 0},
		{"allowlisted never listed", &allow, burst(0, 10, true, true), []store.Action{act(0, store.OpList)}, 0, false, 0, 0, 0},
		{"delist ends listing", &def, []store.Ref{bounce(0, "a")}, []store.Action{act(time.Hour, store.OpDelist)}, 2 * time.Hour, false, 0, 0, 0},
		{"evidence at the delist instant does not count", &def, []store.Ref{bounce(time.Hour, "a")}, []store.Action{act(time.Hour, store.OpDelist)}, 2 * time.Hour, false, 0, 0, 0},
		{"new hit after delist relists", &def, []store.Ref{bounce(0, "a"), bounce(2*time.Hour, "a")}, []store.Action{act(time.Hour, store.OpDelist)}, 2 * time.Hour, true, 1, 0, 0},
		{"manual list without evidence", &def, nil, []store.Action{act(0, store.OpList)}, 400 * day, true, 0, 0, 0},
		{"manual list then delist", &def, nil, []store.Action{act(0, store.OpList), act(day, store.OpDelist)}, 2 * day, false, 0, 0, 0},
		{"weak kind below threshold", &weak, []store.Ref{hit(0, store.KindCallout, "a", "trap.test")}, nil, 0, false, 0.5, 0, 0},
		{"two weak hits list", &weak, []store.Ref{hit(0, store.KindCallout, "a", "x.test"), hit(0, store.KindCallout, "b", "y.test")}, nil, 0, true, 1, 0, 0},
		// Hysteresis: listed at 1.0, still listed at 0.5 (between the thresholds)...
		{"hysteresis keeps listing", &weak, []store.Ref{hit(0, store.KindCallout, "a", "x.test"), hit(0, store.KindCallout, "b", "y.test")}, nil, h, true, 0.5, 0, 0},
		// ...while the same score reached without a listing does not list.
		{"hysteresis needs the upper threshold", &weak, []store.Ref{hit(0, store.KindCallout, "a", "x.test"), hit(h, store.KindCallout, "b", "y.test")}, nil, h, false, 0.75, 0, 0},
		{"repeat offender stays longer", &def, []store.Ref{bounce(0, "a"), hit(30*day, store.KindBounce, "b", "b.test")}, nil, 30 * day, true, -1, 30*day + life(s30, 0.125), 2},
		{"third listing bounded", &def, []store.Ref{bounce(0, "a"), hit(30*day, store.KindBounce, "b", "b.test"), hit(90*day, store.KindBounce, "c", "c.test")}, nil, 90 * day, true, -1, 90*day + life(1+math.Exp2(-60.0/7)+math.Exp2(-90.0/7), 0.0625), 4},
		{"repeat memory forgets", &def, []store.Ref{bounce(0, "a"), hit(200*day, store.KindBounce, "b", "b.test")}, nil, 200 * day, true, -1, 200*day + life(1+math.Exp2(-200.0/7), 0.25), 1},
		{"repeat off", &noRepeat, []store.Ref{bounce(0, "a"), hit(30*day, store.KindBounce, "b", "b.test")}, nil, 30 * day, true, -1, 30*day + life(s30, 0.25), 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := Decide(c.p, unit, c.refs, c.acts, t0.Add(c.now))
			if d.Listed != c.listed {
				t.Fatalf("listed = %v, want %v (%s)", d.Listed, c.listed, d.Reason)
			}
			if c.score >= 0 && math.Abs(d.Score-c.score) > 1e-6 {
				t.Errorf("score = %v, want %v (%s)", d.Score, c.score, d.Reason)
			}
			if c.listed && c.expires > 0 && d.Manual == "" {
				if got := d.Expires.Sub(t0); (got - c.expires).Abs() > time.Second {
					t.Errorf("expires after %v, want %v (%s)", got, c.expires, d.Reason)
				}
			}
			if c.repeat > 0 && d.Repeat != c.repeat {
				t.Errorf("repeat = %v, want %v", d.Repeat, c.repeat)
			}
			if d.Listed && d.Kinds == 0 {
				t.Errorf("listed without kinds")
			}
			if !d.Listed && (d.Kinds != 0 || !d.Expires.IsZero()) {
				t.Errorf("not listed but kinds %v expires %v", d.Kinds, d.Expires)
			}
			if d.Reason == "" {
				t.Errorf("no reason")
			}
			lazy := &Decider{Policy: c.p, Lazy: true}
			l := lazy.Decide(unit, c.refs, c.acts, t0.Add(c.now))
			if l.Reason != "" || l.ReasonText() != d.Reason {
				t.Errorf("lazy reason %q / %q, want \"\" / %q", l.Reason, l.ReasonText(), d.Reason)
			}
		})
	}
}

func TestKindsAndCounts(t *testing.T) {
	p := DefaultPolicy()
	refs := []store.Ref{bounce(0, "a"), hit(time.Hour, store.KindCallout, "b", "trap.test"),
		hit(2*time.Hour, store.KindMDN, "c", "trap.test"), hit(3*time.Hour, store.KindSpam, "d", "trap.test")}
	d := Decide(&p, unit, refs, nil, t0.Add(4*time.Hour))
	want := store.KindSet(0).Add(store.KindBounce).Add(store.KindCallout).Add(store.KindMDN)
	if !d.Listed || d.Kinds != want {
		t.Fatalf("kinds = %v, want %v", d.Kinds.Kinds(), want.Kinds())
	}
	if d.Counts[store.KindSpam] != 1 || d.Counts[store.KindBounce] != 1 {
		t.Fatalf("counts = %v", d.Counts)
	}
	if !d.FirstSeen.Equal(t0) || !d.LastSeen.Equal(t0.Add(2*time.Hour)) {
		t.Fatalf("first %v last %v", d.FirstSeen, d.LastSeen)
	}
	// Manual list with kinds publishes them.
	d = Decide(&p, unit, nil, []store.Action{act(0, store.OpList, store.KindChallenge)}, t0)
	if !d.Listed || d.Kinds != store.KindSet(0).Add(store.KindChallenge) || d.Manual != store.OpList || !d.Expires.IsZero() {
		t.Fatalf("manual: %+v", d)
	}
}

func TestExplainItems(t *testing.T) {
	p := DefaultPolicy()
	refs := []store.Ref{bounce(0, "a"), bounce(0, "a"), bounce(time.Hour, "b"), hit(2*time.Hour, store.KindReport, "c", "trap.test")}
	d, items := Explain(&p, unit, refs, []store.Action{act(30*time.Minute, store.OpDelist)}, t0.Add(7*day+time.Hour))
	if len(items) != len(refs) {
		t.Fatalf("%d items for %d refs", len(items), len(refs))
	}
	counted := 0
	for _, it := range items {
		if it.Why == "" {
			t.Errorf("item without why: %+v", it)
		}
		if it.Counted {
			counted++
			if math.Abs(it.Value-0.5) > 1e-9 || it.Initial != 1 || it.Weight != 1 {
				t.Errorf("counted item: %+v, want value 0.5 after one half-life", it)
			}
		} else if it.Value != 0 {
			t.Errorf("uncounted item with value: %+v", it)
		}
	}
	if counted != 1 || !d.Listed {
		t.Fatalf("counted %d, listed %v: %s", counted, d.Listed, d.Reason)
	}
	if d.Score != items[2].Value {
		t.Fatalf("score %v != sum of values %v", d.Score, items[2].Value)
	}
}

func TestValidate(t *testing.T) {
	good := DefaultPolicy()
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, mut := range map[string]func(p *Policy){
		"delist above list": func(p *Policy) { p.DelistThreshold = 2 },
		"zero list":         func(p *Policy) { p.ListThreshold = 0 },
		"never lapses":      func(p *Policy) { p.MaxAge, p.HalfLife = 0, 0 },
		"negative weight":   func(p *Policy) { p.Weights[store.KindBounce] = -1 },
		"same address > 1":  func(p *Policy) { p.SameAddress = 2 },
		"escalate min 1":    func(p *Policy) { p.Escalate.Enabled, p.Escalate.Min = true, 1 },
		"repeat below 1":    func(p *Policy) { p.RepeatFactor = 0.5 },
	} {
		p := DefaultPolicy()
		mut(&p)
		if err := p.Validate(); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestEscalation(t *testing.T) {
	p := DefaultPolicy()
	w, ok := p.EscalationPrefix(unit)
	if ok || p.Escalates(w, 100) {
		t.Fatal("escalation must be off by default")
	}
	p.Escalate.Enabled = true
	w, ok = p.EscalationPrefix(unit)
	if !ok || w != netip.MustParsePrefix("192.0.2.0/24") {
		t.Fatalf("prefix %v %v", w, ok)
	}
	if p.Escalates(w, 3) || !p.Escalates(w, 4) {
		t.Fatal("threshold")
	}
	w6, _ := p.EscalationPrefix(Unit(netip.MustParseAddr("2001:db8:1:2::5")))
	if w6 != netip.MustParsePrefix("2001:db8:1::/48") {
		t.Fatalf("v6 prefix %v", w6)
	}
	p.Allow = []netip.Prefix{netip.MustParsePrefix("192.0.2.200/32")}
	if p.Escalates(w, 100) {
		t.Fatal("a /24 holding an allowlisted address escalated")
	}
}

// --- property tests (seeded, reproducible) ---

type history struct {
	refs []store.Ref
	acts []store.Action
}

// randHistory makes up to 40 hits and a few actions within 120 days.
func randHistory(r *rand.Rand, withActions bool) history {
	var h history
	kinds := []store.Kind{store.KindBounce, store.KindAutoreply, store.KindCallout, store.KindSpam, store.KindReport, store.KindMDN}
	n := r.IntN(40)
	for i := 0; i < n; i++ {
		at := time.Duration(r.Int64N(int64(120 * day)))
		h.refs = append(h.refs, hit(at, kinds[r.IntN(len(kinds))], string(rune('a'+r.IntN(4))), string(rune('a'+r.IntN(2)))+".test"))
		if r.IntN(4) == 0 { // bursts
			h.refs = append(h.refs, hit(at+time.Duration(r.IntN(60))*time.Second, store.KindBounce, "a", "a.test"))
		}
	}
	if withActions {
		for i := r.IntN(3); i > 0; i-- {
			op := store.OpDelist
			if r.IntN(3) == 0 {
				op = store.OpList
			}
			h.acts = append(h.acts, act(time.Duration(r.Int64N(int64(120*day))), op))
		}
	}
	return h
}

func randPolicy(r *rand.Rand) Policy {
	p := DefaultPolicy()
	if r.IntN(2) == 0 {
		p.Weights[store.KindCallout] = 0.25 + r.Float64()
		p.ListThreshold = 0.5 + r.Float64()
		p.DelistThreshold = p.ListThreshold * r.Float64()
		p.HalfLife = time.Duration(1+r.IntN(20)) * day
		p.MaxAge = time.Duration(1+r.IntN(40)) * day
	}
	return p
}

const propRuns = 300

func TestPropertyReplayIsDeterministic(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < propRuns; i++ {
		p := randPolicy(r)
		h := randHistory(r, true)
		now := t0.Add(time.Duration(r.Int64N(int64(150 * day))))
		a, ai := Explain(&p, unit, h.refs, h.acts, now)
		refs := append([]store.Ref(nil), h.refs...)
		acts := append([]store.Action(nil), h.acts...)
		r.Shuffle(len(refs), func(i, j int) { refs[i], refs[j] = refs[j], refs[i] })
		b, bi := Explain(&p, unit, refs, acts, now)
		if !reflect.DeepEqual(a, b) || !reflect.DeepEqual(ai, bi) {
			t.Fatalf("run %d: same evidence, same time, different decision:\n%+v\n%+v", i, a, b)
		}
		dd := NewDecider(&p)
		c := dd.Decide(unit, refs, acts, now)
		c.Counts = a.Counts
		if !reflect.DeepEqual(a, c) {
			t.Fatalf("run %d: Decider differs:\n%+v\n%+v", i, a, c)
		}
		lazy := &Decider{Policy: &p, Lazy: true}
		l := lazy.Decide(unit, refs, acts, now)
		if l.Reason != "" || l.ReasonText() != a.Reason {
			t.Fatalf("run %d: lazy reason %q / %q, want \"\" / %q", i, l.Reason, l.ReasonText(), a.Reason)
		}
		l.Reason, l.Counts = a.Reason, a.Counts
		if !reflect.DeepEqual(a, l) {
			t.Fatalf("run %d: lazy Decider differs:\n%+v\n%+v", i, a, l)
		}
	}
}

func TestPropertyDecayMonotone(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < propRuns; i++ {
		p := randPolicy(r)
		h := randHistory(r, true)
		last := t0
		for _, x := range h.refs {
			if x.Time.After(last) {
				last = x.Time
			}
		}
		for _, a := range h.acts {
			if a.Time.After(last) {
				last = a.Time
			}
		}
		prev := Decide(&p, unit, h.refs, h.acts, last)
		for step := 0; step < 20; step++ {
			at := last.Add(time.Duration(step+1) * time.Duration(r.Int64N(int64(3*day))))
			d := Decide(&p, unit, h.refs, h.acts, at)
			if d.Score > prev.Score+1e-12 {
				t.Fatalf("run %d: score rose without evidence: %v -> %v", i, prev.Score, d.Score)
			}
			if d.Listed && !prev.Listed {
				t.Fatalf("run %d: listed again without evidence at %v", i, at)
			}
			prev, last = d, at
		}
	}
}

func TestPropertyNewHitAfterDelistRelists(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for i := 0; i < propRuns; i++ {
		p := DefaultPolicy() // a bounce weighs at least the list threshold
		h := randHistory(r, true)
		at := time.Duration(r.Int64N(int64(150 * day)))
		acts := append(h.acts, act(at, store.OpDelist))
		after := Decide(&p, unit, h.refs, acts, t0.Add(at))
		if after.Listed {
			t.Fatalf("run %d: listed right after a delist: %s", i, after.Reason)
		}
		refs := append(h.refs, bounce(at+time.Duration(1+r.Int64N(int64(10*day))), "z"))
		now := refs[len(refs)-1].Time
		d := Decide(&p, unit, refs, acts, now)
		if !d.Listed || d.Since.Before(t0.Add(at)) {
			t.Fatalf("run %d: a new hit after the delist did not relist: %s", i, d.Reason)
		}
	}
}

func TestPropertyFreshHitLists(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for i := 0; i < propRuns; i++ {
		p := DefaultPolicy()
		h := randHistory(r, false)
		at := t0.Add(time.Duration(r.Int64N(int64(150 * day))))
		refs := append(h.refs, store.Ref{ID: store.NewEventID(), Addr: unit.Addr(), Time: at, Kind: store.KindBounce,
			Rcpt: store.Hash32("a@a.test"), Domain: store.Hash32("a.test")})
		if d := Decide(&p, unit, refs, nil, at); !d.Listed || d.Score < 1-1e-9 {
			t.Fatalf("run %d: one fresh bounce did not list: %s", i, d.Reason)
		}
	}
}

func TestPropertyAllowlistedNeverListed(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	for i := 0; i < propRuns; i++ {
		p := randPolicy(r)
		p.Allow = []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}
		h := randHistory(r, true)
		h.acts = append(h.acts, act(time.Duration(r.Int64N(int64(120*day))), store.OpList))
		for step := 0; step < 10; step++ {
			now := t0.Add(time.Duration(r.Int64N(int64(150 * day))))
			d := Decide(&p, unit, h.refs, h.acts, now)
			if d.Listed || d.Kinds != 0 || d.Allowed != p.Allow[0] {
				t.Fatalf("run %d: allowlisted unit listed: %+v", i, d)
			}
			if got := d.Counts[store.KindBounce]; got != countKind(h.refs, store.KindBounce) {
				t.Fatalf("run %d: evidence counts lost: %d", i, got)
			}
		}
	}
}

func countKind(refs []store.Ref, k store.Kind) int {
	n := 0
	for _, r := range refs {
		if r.Kind == k {
			n++
		}
	}
	return n
}

// TestPropertyHysteresis walks time in steps and checks each change of
// state has its cause: a listing starts only at a hit (or manual list) whose
// score reached the list threshold; one ends only at a delist, when the
// score fell below the delist threshold, or when max age passed.
func TestPropertyHysteresis(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	for i := 0; i < propRuns; i++ {
		p := randPolicy(r)
		h := randHistory(r, true)
		between := func(a, b time.Time) (hits bool, acts bool) {
			for _, x := range h.refs {
				if x.Time.After(a) && !x.Time.After(b) && p.Weight(x.Kind) > 0 {
					hits = true
				}
			}
			for _, x := range h.acts {
				if x.Time.After(a) && !x.Time.After(b) {
					acts = true
				}
			}
			return
		}
		prevT := t0.Add(-time.Hour)
		prev := Decide(&p, unit, h.refs, h.acts, prevT)
		for at := t0; at.Before(t0.Add(160 * day)); at = at.Add(time.Duration(1+r.IntN(36)) * time.Hour) {
			d := Decide(&p, unit, h.refs, h.acts, at)
			hits, acts := between(prevT, at)
			switch {
			case d.Listed && !prev.Listed && !hits && !acts:
				t.Fatalf("run %d: listed at %v without a hit or action since %v", i, at, prevT)
			case d.Listed && !prev.Listed && d.Manual == "" && hits:
				// The listing started at a hit that reached the threshold.
				if s := Decide(&p, unit, h.refs, h.acts, d.Since); !s.Listed || s.Score < p.ListThreshold-1e-9 {
					t.Fatalf("run %d: listing started at %v with score %v < %v", i, d.Since, s.Score, p.ListThreshold)
				}
			case !d.Listed && prev.Listed && !hits && !acts:
				aged := at.Sub(prev.LastSeen) >= time.Duration(float64(p.MaxAge)*prev.Repeat)-time.Second
				low := d.Score < p.DelistThreshold/prev.Repeat+1e-9
				if !aged && !low {
					t.Fatalf("run %d: delisted at %v with score %v >= %v and age %v < max age", i, at, d.Score, p.DelistThreshold/prev.Repeat, at.Sub(prev.LastSeen))
				}
			case d.Listed && prev.Listed && !hits && !acts && prev.Manual == "":
				// Between the thresholds the listing holds.
				if d.Score < p.DelistThreshold/d.Repeat-1e-9 {
					t.Fatalf("run %d: listed at %v with score %v below delist threshold", i, at, d.Score)
				}
			}
			prev, prevT = d, at
		}
	}
}

// TestPropertyReview: a decision holds until its Review time and changes there.
func TestPropertyReview(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 14))
	checked := 0
	for i := 0; i < propRuns; i++ {
		p := randPolicy(r)
		h := randHistory(r, true)
		last := t0.Add(120 * day) // after every hit and action
		d := Decide(&p, unit, h.refs, h.acts, last)
		if !d.Listed || d.Review.IsZero() || d.Manual != "" {
			continue // for a manual listing Review is a hint: it may hold
		}
		checked++
		before := Decide(&p, unit, h.refs, h.acts, d.Review.Add(-time.Nanosecond))
		at := Decide(&p, unit, h.refs, h.acts, d.Review)
		if before.Listed != d.Listed || before.Kinds != d.Kinds {
			t.Fatalf("run %d: decision changed before its review time %v", i, d.Review)
		}
		if at.Listed == d.Listed && at.Kinds == d.Kinds {
			t.Fatalf("run %d: decision unchanged at its review time %v: %s", i, d.Review, at.Reason)
		}
	}
	if checked < propRuns/10 {
		t.Fatalf("only %d listed histories checked", checked)
	}
}

// TestManyTrapAddresses: past linearResiduals distinct trap addresses (each
// in a domain of its own: two residuals per ref) the residuals are found
// through an index. Every address hit a second time,
// the first or the last of many, counts as "hit again"; after a delist the
// index starts over, so the round after it counts as new. One Decider is
// reused across decisions, as the engine does.
func TestManyTrapAddresses(t *testing.T) {
	p := DefaultPolicy()
	const n = 3 * linearResiduals
	round := func(r int) []store.Ref {
		var out []store.Ref
		for i := range n {
			nn := string(rune('0'+i/10)) + string(rune('0'+i%10))
			out = append(out, hit(time.Duration(r*n+i)*time.Second, store.KindBounce, "r"+nn, "d"+nn+".test"))
		}
		return out
	}
	refs := append(round(0), round(1)...)
	delist := act(time.Duration(2*n)*time.Second-time.Millisecond, store.OpDelist)
	withDelist := append(append([]store.Ref(nil), refs...), round(2)...)
	dec := NewDecider(&p)
	for range 2 {
		d, items := Explain(&p, unit, refs, nil, t0.Add(time.Hour))
		for i, it := range items {
			want := "trap address hit again"
			if i < n {
				want = "new trap address"
			}
			if !it.Counted || !strings.HasPrefix(it.Why, want) {
				t.Fatalf("ref %d: %q, want %q", i, it.Why, want)
			}
		}
		if got := dec.Decide(unit, refs, nil, t0.Add(time.Hour)); got.Score != d.Score || got.Listed != d.Listed {
			t.Fatalf("Decide %v/%v, Explain %v/%v", got.Score, got.Listed, d.Score, d.Listed)
		}
		d, items = Explain(&p, unit, withDelist, []store.Action{delist}, t0.Add(time.Hour))
		for i, it := range items[2*n:] {
			if want := "new trap address"; !it.Counted || !strings.HasPrefix(it.Why, want) {
				t.Fatalf("after the delist, ref %d: %q, want %q", i, it.Why, want)
			}
		}
		if got := dec.Decide(unit, withDelist, []store.Action{delist}, t0.Add(time.Hour)); got.Score != d.Score || got.Listed != d.Listed {
			t.Fatalf("after the delist: Decide %v/%v, Explain %v/%v", got.Score, got.Listed, d.Score, d.Listed)
		}
	}
}
