package listing

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/blowback-dnsbl/blowback/scoring"
	"github.com/blowback-dnsbl/blowback/store"
)

// Allowlist changes by admins. The configured allowlist ([policy] allow)
// stays; admin actions add networks to it or take added ones out again.
// Every change is kept (store metadata, with an audit entry) like a manual
// action; on a cluster replica it goes through the log and every replica
// applies it at the same position (ApplyAllow).

// Allowlist operations.
const (
	AllowAdd    = "add"
	AllowRemove = "remove"
)

// ErrAllow is a refused allowlist change.
var ErrAllow = errors.New("listing: allowlist")

// metaAllow is the store metadata key of the allowlist changes (JSON, oldest first).
const metaAllow = "allowlist_changes"

// maxAllowChanges bounds the kept history (the oldest go first; the
// effective set is kept whole).
const maxAllowChanges = 10000

// AllowChange is one admin change of the allowlist.
type AllowChange struct {
	ID     string       `json:"id"` // minted once; a change applied twice is kept once
	Time   time.Time    `json:"time"`
	Op     string       `json:"op"` // AllowAdd or AllowRemove
	Prefix netip.Prefix `json:"prefix"`
	Who    string       `json:"who"`
	Reason string       `json:"reason"`
}

// AllowEntry is a network of the effective allowlist.
type AllowEntry struct {
	Prefix netip.Prefix `json:"prefix"`
	Source string       `json:"source"` // "config" or "admin"
	Time   *time.Time   `json:"time,omitempty"`
	Who    string       `json:"who,omitempty"`
	Reason string       `json:"reason,omitempty"`
}

// allowChanges returns the stored allowlist changes, oldest first.
func (e *Engine) allowChanges() ([]AllowChange, error) {
	b, err := e.st.GetMeta(metaAllow)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []AllowChange
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("%w: stored changes: %v", ErrAllow, err)
	}
	return out, nil
}

// allowFold returns the admin-added networks after changes, with the add
// that holds each.
func allowFold(changes []AllowChange) map[netip.Prefix]AllowChange {
	on := map[netip.Prefix]AllowChange{}
	for _, c := range changes {
		if c.Op == AllowAdd {
			on[c.Prefix] = c
		} else {
			delete(on, c.Prefix)
		}
	}
	return on
}

// loadAllow sets the policy's dynamic allowlist from the store.
func (e *Engine) loadAllow() error {
	changes, err := e.allowChanges()
	if err != nil {
		return err
	}
	e.setAllow(changes)
	return nil
}

// setAllow sets the policy's dynamic allowlist to what changes give.
func (e *Engine) setAllow(changes []AllowChange) {
	e.cfg.Policy.Dynamic.Set(slices.Collect(maps.Keys(allowFold(changes))))
}

// Allowlist returns the effective allowlist: the configured networks and
// the admin-added ones.
func (e *Engine) Allowlist() ([]AllowEntry, error) {
	changes, err := e.allowChanges()
	if err != nil {
		return nil, err
	}
	out := []AllowEntry{}
	for _, p := range e.cfg.Policy.Allow {
		out = append(out, AllowEntry{Prefix: p, Source: "config"})
	}
	for p, c := range allowFold(changes) {
		t := c.Time
		out = append(out, AllowEntry{Prefix: p, Source: "admin", Time: &t, Who: c.Who, Reason: c.Reason})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Prefix != out[j].Prefix {
			return out[i].Prefix.String() < out[j].Prefix.String()
		}
		return out[i].Source < out[j].Source
	})
	return out, nil
}

// CheckAllow validates c before it is applied or appended to the log.
func (e *Engine) CheckAllow(c AllowChange) (AllowChange, error) {
	if !c.Prefix.IsValid() {
		return c, fmt.Errorf("%w: no network", ErrAllow)
	}
	c.Prefix = c.Prefix.Masked()
	if c.Op != AllowAdd && c.Op != AllowRemove {
		return c, fmt.Errorf("%w: op %q (want add or remove)", ErrAllow, c.Op)
	}
	c.Reason = strings.TrimSpace(c.Reason)
	if c.Reason == "" {
		return c, fmt.Errorf("%w: a reason is required", ErrAllow)
	}
	if len(c.Reason) > 1000 || len(c.Who) > 200 {
		return c, fmt.Errorf("%w: reason or who too long", ErrAllow)
	}
	if c.Op == AllowRemove {
		for _, p := range e.cfg.Policy.Allow {
			if p == c.Prefix {
				return c, fmt.Errorf("%w: %s is in the configuration ([policy] allow): remove it there", ErrAllow, c.Prefix)
			}
		}
	}
	if c.ID == "" {
		c.ID = store.NewEventID().String()
	}
	return c, nil
}

// ChangeAllow adds a network to the allowlist or removes an added one, and
// returns when the DNS server answers accordingly. On a cluster replica it
// goes through the log (Log.AppendAllow) and returns once the cluster has
// it and, within a short bound, this replica applied it.
func (e *Engine) ChangeAllow(ctx context.Context, c AllowChange) error {
	if c.Time.IsZero() {
		c.Time = e.cfg.Now()
	}
	c, err := e.CheckAllow(c)
	if err != nil {
		return err
	}
	if e.wlog != nil {
		return e.wlog.AppendAllow(ctx, c)
	}
	units, err := e.ApplyAllow(ctx, c)
	if err != nil {
		return err
	}
	var gen uint64
	for _, u := range units {
		_, g, err := e.rescore(ctx, u)
		if err != nil {
			return err
		}
		gen = max(gen, g)
	}
	if gen == 0 {
		gen = e.escalationTouched(c.Prefix)
	}
	if gen == 0 {
		return nil
	}
	if !e.running() {
		e.publish()
		return nil
	}
	return e.waitPublished(ctx, gen)
}

// ApplyAllow records c (once, by its id) and updates the allowlist; it
// returns (also for a change applied before) the units with evidence or manual actions inside c's network,
// which the caller re-scores (a replica applying the log does so at the
// batch's clock). It does not re-score.
func (e *Engine) ApplyAllow(ctx context.Context, c AllowChange) ([]netip.Prefix, error) {
	e.allowMu.Lock()
	defer e.allowMu.Unlock()
	changes, err := e.allowChanges()
	if err != nil {
		return nil, err
	}
	for _, x := range changes {
		if x.ID == c.ID {
			// Applied before (a batch applied again after a failure that
			// may have come before the re-scoring): re-score again.
			return e.unitsIn(c.Prefix)
		}
	}
	c.Time = c.Time.UTC()
	changes = append(changes, c)
	if len(changes) > maxAllowChanges {
		// Keep the effective adds, drop the oldest history.
		on := allowFold(changes)
		kept := changes[len(changes)-maxAllowChanges/2:]
		var base []AllowChange
		for _, x := range on {
			base = append(base, x)
		}
		sort.Slice(base, func(i, j int) bool { return base[i].Time.Before(base[j].Time) })
		changes = append(base, kept...)
	}
	b, err := json.Marshal(changes)
	if err != nil {
		return nil, err
	}
	if err := e.st.SetMeta(metaAllow, b); err != nil {
		return nil, err
	}
	e.setAllow(changes)
	if e.cfg.Policy.Escalate.Enabled {
		// A wider prefix with an allowlisted network inside is never
		// escalated (Policy.Escalates): decide the escalations again.
		e.mu.Lock()
		e.escDirty = true
		e.mu.Unlock()
	}
	if err := e.st.Audit(ctx, store.AuditEntry{Time: c.Time, Who: c.Who, Action: "allow-" + c.Op, Target: c.Prefix.String(), Reason: c.Reason}); err != nil {
		e.log.Error("audit", "err", err)
	}
	return e.unitsIn(c.Prefix)
}

// escalationTouched queues a publication when an escalated prefix overlaps
// p and no unit changed (ApplyAllow marked the escalations to be decided
// again; a publication does it), and returns its generation (0: none).
func (e *Engine) escalationTouched(p netip.Prefix) uint64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	hit := false
	for x := range e.escalated {
		hit = hit || x.Overlaps(p)
	}
	if !hit {
		return 0
	}
	u := scoring.Unit(p.Addr())
	cur, _ := e.listed.get(u)
	e.pending[u] = cur.codes // unchanged: the publication carries the escalations
	select {
	case e.kick <- struct{}{}:
	default:
	}
	return e.taken + 1
}

// unitsIn returns the units with evidence or manual actions in p.
func (e *Engine) unitsIn(p netip.Prefix) ([]netip.Prefix, error) {
	seen := map[netip.Prefix]struct{}{}
	var out []netip.Prefix
	add := func(u netip.Prefix) {
		if _, ok := seen[u]; !ok {
			seen[u] = struct{}{}
			out = append(out, u)
		}
	}
	refs, err := e.st.Refs(p)
	if err != nil {
		return nil, err
	}
	for _, r := range refs {
		add(scoring.Unit(r.Addr))
	}
	acts, err := e.st.Actions(p)
	if err != nil {
		return nil, err
	}
	for _, a := range acts {
		add(scoring.Unit(a.Prefix.Addr()))
	}
	// A unit wider than p (an IPv6 /64 holding p) has its evidence outside p too.
	if u := scoring.Unit(p.Addr()); u.Bits() < p.Bits() {
		add(u)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Addr().Less(out[j].Addr()) })
	return out, nil
}
