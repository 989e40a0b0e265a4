package scoring

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/blowback-dnsbl/blowback/store"
)

// ErrPolicy is returned by Policy.Validate.
var ErrPolicy = errors.New("scoring: bad policy")

// Policy is the listing policy. The zero value is not useful; start from
// DefaultPolicy. docs/policy.md explains every field with examples.
type Policy struct {
	// Weights is the weight of one hit of each kind. Kinds missing from the
	// map weigh 0 and never count (report, spam, other by default).
	Weights map[store.Kind]float64
	// HalfLife is the half-life of a hit's value; zero disables decay.
	HalfLife time.Duration
	// ListThreshold: a unit is listed when its score reaches it at a hit.
	ListThreshold float64
	// DelistThreshold (< ListThreshold): a listed unit stays listed until its
	// decaying score falls below it (hysteresis), or MaxAge passes.
	DelistThreshold float64
	// MaxAge is how long a unit stays listed after its last hit, at most.
	MaxAge time.Duration
	// SameAddress is the novelty of a hit to a trap address whose earlier
	// hits from this unit are still fresh: a burst to one address adds
	// Weight*SameAddress per message, not Weight. Novelty recovers toward 1
	// as the earlier hits decay.
	SameAddress float64
	// SameDomain is the novelty of a hit to a new trap address in a trap
	// domain already hit (fresh) from this unit.
	SameDomain float64
	// RepeatFactor multiplies MaxAge and divides DelistThreshold for a unit
	// listed again after a lapse: once per earlier listing that started
	// within RepeatMemory, bounded by RepeatMax. 1 disables.
	RepeatFactor float64
	RepeatMax    float64
	RepeatMemory time.Duration
	// Allow lists networks that are never listed (their evidence is still
	// kept). A prefix that overlaps a unit protects the whole unit.
	Allow []netip.Prefix
	// Dynamic adds the allowlist changed by admin actions (nil: none).
	Dynamic *AllowSet
	// Escalate lists a whole IPv4 /24 (IPv6 /48) once enough units in it are
	// listed. Off by default.
	Escalate Escalation
}

// Escalation is the optional listing of a wider prefix.
type Escalation struct {
	Enabled bool
	// Min is the number of listed units in one prefix that escalates it.
	Min int
	// Bits4 and Bits6 are the escalated prefix lengths (24 and 48).
	Bits4, Bits6 int
}

// Documented defaults (docs/policy.md). They keep "one fresh bounce lists",
// as the backscatter lists do.
const (
	DefaultHalfLife        = 7 * 24 * time.Hour
	DefaultListThreshold   = 1.0
	DefaultDelistThreshold = 0.25
	DefaultMaxAge          = 28 * 24 * time.Hour
	DefaultSameAddress     = 0.1
	DefaultSameDomain      = 0.5
	DefaultRepeatFactor    = 2.0
	DefaultRepeatMax       = 4.0
	DefaultRepeatMemory    = 180 * 24 * time.Hour
	DefaultEscalateMin     = 4
)

// DefaultWeights weigh every backscatter kind 1 (one hit lists) and the
// rest 0.
func DefaultWeights() map[store.Kind]float64 {
	return map[store.Kind]float64{
		store.KindBounce: 1, store.KindAutoreply: 1, store.KindChallenge: 1,
		store.KindMDN: 1, store.KindCallout: 1,
	}
}

// DefaultPolicy is the documented default policy.
func DefaultPolicy() Policy {
	return Policy{
		Weights:         DefaultWeights(),
		HalfLife:        DefaultHalfLife,
		ListThreshold:   DefaultListThreshold,
		DelistThreshold: DefaultDelistThreshold,
		MaxAge:          DefaultMaxAge,
		SameAddress:     DefaultSameAddress,
		SameDomain:      DefaultSameDomain,
		RepeatFactor:    DefaultRepeatFactor,
		RepeatMax:       DefaultRepeatMax,
		RepeatMemory:    DefaultRepeatMemory,
		Escalate:        Escalation{Min: DefaultEscalateMin, Bits4: 24, Bits6: 48},
	}
}

// Validate reports settings that cannot work together.
func (p *Policy) Validate() error {
	var errs []error
	bad := func(f string, a ...any) { errs = append(errs, fmt.Errorf("%w: "+f, append([]any{ErrPolicy}, a...)...)) }
	for k, w := range p.Weights {
		if w < 0 || math.IsNaN(w) || math.IsInf(w, 0) {
			bad("weight of %s: %v", k, w)
		}
	}
	if !(p.ListThreshold > 0) {
		bad("list threshold %v must be > 0", p.ListThreshold)
	}
	if p.DelistThreshold < 0 || p.DelistThreshold > p.ListThreshold {
		bad("delist threshold %v must be in [0, list threshold %v]", p.DelistThreshold, p.ListThreshold)
	}
	if p.HalfLife < 0 || p.MaxAge < 0 || p.RepeatMemory < 0 {
		bad("durations must not be negative")
	}
	if p.MaxAge == 0 && (p.HalfLife == 0 || p.DelistThreshold == 0) {
		bad("max age 0 needs a half-life and a delist threshold > 0, or listings never lapse")
	}
	if p.SameAddress < 0 || p.SameAddress > 1 || p.SameDomain < 0 || p.SameDomain > 1 {
		bad("same_address and same_domain must be in [0, 1]")
	}
	if p.RepeatFactor != 0 && p.RepeatFactor < 1 || p.RepeatMax != 0 && p.RepeatMax < 1 {
		bad("repeat factor and repeat max must be >= 1")
	}
	if e := p.Escalate; e.Enabled {
		if e.Min < 2 {
			bad("escalate min %d must be >= 2", e.Min)
		}
		if e.Bits4 < 8 || e.Bits4 >= 32 || e.Bits6 < 16 || e.Bits6 >= 64 {
			bad("escalate prefix lengths /%d, /%d out of range (8..31, 16..63)", e.Bits4, e.Bits6)
		}
	}
	for _, a := range p.Allow {
		if !a.IsValid() {
			bad("allow: invalid prefix")
		}
	}
	return errors.Join(errs...)
}

// Weight is the weight of one hit of kind k.
func (p *Policy) Weight(k store.Kind) float64 { return p.Weights[k] }

// decay is the factor a value keeps after d.
func (p *Policy) decay(d time.Duration) float64 {
	if p.HalfLife <= 0 || d <= 0 {
		return 1
	}
	return math.Exp2(-float64(d) / float64(p.HalfLife))
}

// Allowed returns the allowlist entry that protects unit, if any.
func (p *Policy) Allowed(unit netip.Prefix) (netip.Prefix, bool) {
	for _, a := range p.Allow {
		if a.Overlaps(unit) {
			return a, true
		}
	}
	return p.Dynamic.allowed(unit)
}

// repeat is the repeat-offender multiplier after n earlier listings.
func (p *Policy) repeat(n int) float64 {
	f := 1.0
	if p.RepeatFactor <= 1 {
		return f
	}
	for i := 0; i < n; i++ {
		f *= p.RepeatFactor
		if p.RepeatMax >= 1 && f >= p.RepeatMax {
			return p.RepeatMax
		}
	}
	return f
}

// EscalationPrefix is the wider prefix unit escalates to, when escalation is on.
func (p *Policy) EscalationPrefix(unit netip.Prefix) (netip.Prefix, bool) {
	if !p.Escalate.Enabled {
		return netip.Prefix{}, false
	}
	a := unit.Addr().Unmap()
	bits := p.Escalate.Bits6
	if a.Is4() {
		bits = p.Escalate.Bits4
	}
	w, err := a.Prefix(bits)
	return w, err == nil
}

// Escalates decides whether the wider prefix w, holding listed units that
// are listed now, is listed as a whole: at least Escalate.Min of them, and
// no allowlisted network inside (innocent neighbours stay unlisted).
func (p *Policy) Escalates(w netip.Prefix, listed int) bool {
	if !p.Escalate.Enabled || listed < p.Escalate.Min {
		return false
	}
	_, allowed := p.Allowed(w)
	return !allowed
}

// Describe lists the policy's settings for explanations, by their TOML names.
func (p *Policy) Describe() map[string]string {
	f := func(v float64) string { return strconv.FormatFloat(v, 'g', 4, 64) }
	m := map[string]string{
		"half_life":        durString(p.HalfLife),
		"list_threshold":   f(p.ListThreshold),
		"delist_threshold": f(p.DelistThreshold),
		"max_age":          durString(p.MaxAge),
		"same_address":     f(p.SameAddress),
		"same_domain":      f(p.SameDomain),
		"repeat_factor":    f(p.RepeatFactor),
		"repeat_max":       f(p.RepeatMax),
		"repeat_memory":    durString(p.RepeatMemory),
	}
	var ws []string
	for k, w := range p.Weights {
		if w != 0 {
			ws = append(ws, k.String()+":"+f(w))
		}
	}
	sort.Strings(ws)
	m["weights"] = strings.Join(ws, ",")
	if len(p.Allow) > 0 {
		var s []string
		for _, a := range p.Allow {
			s = append(s, a.String())
		}
		m["allow"] = strings.Join(s, " ")
	}
	if p.Escalate.Enabled {
		m["escalate"] = fmt.Sprintf("%d per /%d or /%d", p.Escalate.Min, p.Escalate.Bits4, p.Escalate.Bits6)
	}
	return m
}

// durString prints whole days as "28d", else as time.Duration does.
func durString(d time.Duration) string {
	if d > 0 && d%(24*time.Hour) == 0 {
		return strconv.FormatInt(int64(d/(24*time.Hour)), 10) + "d"
	}
	return d.String()
}
