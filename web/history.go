package web

import (
	"context"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/blowback-dnsbl/blowback/scoring"
	"github.com/blowback-dnsbl/blowback/store"
)

// Listing history per address, and a per-network view: how many addresses
// of the address's IPv4 /24 (IPv6 /48) are listed now and were in the last
// 90 days. Every read is bounded (newest N); the history is the policy
// replayed (scoring is pure), walking back from one listing to the one
// before.

// Bounds of the public history.
const (
	historyRefs      = 2000  // newest refs of the unit replayed
	historyEvents    = 50    // newest history entries shown
	historySelfTests = 10    // newest self-test outcomes shown
	networkRefs      = 20000 // refs read for the network view
	networkUnits     = 512   // units decided for the network view
	historyCacheTTL  = 30 * time.Second
	networkWindow    = 90 * 24 * time.Hour
	networkCacheTTL  = time.Minute
)

// History is an address's listing history (newest first).
type History struct {
	Unit      string           `json:"unit"`
	Events    []HistoryEvent   `json:"events"`
	SelfTests []SelfTestView   `json:"self_tests"`
	Partial   bool             `json:"partial"` // older evidence was left out
	Network   *NetworkActivity `json:"network"`
}

// HistoryEvent is one change of the listing.
type HistoryEvent struct {
	Time  time.Time `json:"time"`
	Event string    `json:"event"` // listed, delisted, expired, selftest
	Why   string    `json:"why"`
}

// SelfTestView is a self-test outcome in the history.
type SelfTestView struct {
	ID       string    `json:"id"`
	Time     time.Time `json:"time"`
	Domain   string    `json:"domain"`
	Verdict  string    `json:"verdict"`
	Summary  string    `json:"summary"`
	Delisted bool      `json:"delisted"`
}

// NetworkActivity is the per-network view.
type NetworkActivity struct {
	Prefix    string `json:"prefix"`
	ListedNow int    `json:"listed_now"`
	Listed90d int    `json:"listed_90d"`
	WithEvid  int    `json:"with_evidence"` // units with evidence on record in the prefix
	Partial   bool   `json:"partial"`       // the prefix has more evidence than was read
}

// history replays the unit's listing.
func (s *Server) history(ctx context.Context, a netip.Addr) (*History, error) {
	unit := scoring.Unit(a)
	// The newest historyRefs only, read bounded (store.RefsNewest), not
	// every stored ref cut afterwards (issue 13.2).
	refs, more, err := s.st.RefsNewest(unit, historyRefs)
	if err != nil {
		return nil, err
	}
	acts, err := s.st.Actions(unit)
	if err != nil {
		return nil, err
	}
	h := &History{Unit: unit.String(), Events: []HistoryEvent{}, SelfTests: []SelfTestView{}, Partial: more}
	slices.SortFunc(refs, func(a, b store.Ref) int { return a.Time.Compare(b.Time) })
	now := s.now()
	p := s.eng.Policy()
	h.Events = s.replayCached(scoring.NewDecider(p), unit, refs, acts, now)
	if len(h.Events) > historyEvents {
		h.Events, h.Partial = h.Events[:historyEvents], true
	}
	tests, err := s.st.SelfTests(unit, historySelfTests)
	if err != nil {
		return nil, err
	}
	for _, t := range tests {
		h.SelfTests = append(h.SelfTests, SelfTestView{ID: t.ID, Time: t.Time.UTC().Truncate(time.Second), Domain: t.Domain,
			Verdict: t.Verdict, Summary: t.Summary, Delisted: t.Delisted})
	}
	h.Network, err = s.network(ctx, a)
	return h, err
}

// replay walks the unit's listings backwards from now: a listing's start
// is the decision's Since, the end of the one before is the decision's
// Lapsed (expiry) or the last delist action that found it listed. Two
// decisions per change at most, newest historyEvents changes; newest first.
// It stops at changes before stop (zero: none).
func replay(dec *scoring.Decider, unit netip.Prefix, refs []store.Ref, acts []store.Action, now, stop time.Time) []HistoryEvent {
	var out []HistoryEvent
	t := now
	for steps := 0; len(out) < historyEvents && steps < 4*historyEvents && !t.Before(stop); steps++ {
		d := dec.Decide(unit, refs, acts, t)
		if d.Listed {
			when := d.Since
			if when.IsZero() || when.After(t) {
				when = t
			}
			why := "backscatter reached the listing threshold (" + kindList(d.Kinds) + ")"
			if d.Manual == store.OpList {
				why = "listed by the list's administrators"
				if a := lastAction(acts, t, store.OpList); a != nil && a.Reason != "" {
					why += ": " + a.Reason
				}
			}
			out = append(out, HistoryEvent{Time: when.UTC(), Event: "listed", Why: why})
			t = when.Add(-time.Nanosecond)
			continue
		}
		a := lastAction(acts, t, store.OpDelist)
		if a != nil && (d.Lapsed.IsZero() || a.Time.After(d.Lapsed)) {
			if dec.Decide(unit, refs, acts, a.Time.Add(-time.Nanosecond)).Listed {
				out = append(out, HistoryEvent{Time: a.Time.UTC(), Event: "delisted", Why: delistWhy(a)})
			}
			t = a.Time.Add(-time.Nanosecond)
			continue
		}
		if d.Lapsed.IsZero() {
			break // never listed before t
		}
		why := d.Reason
		if _, after, ok := strings.Cut(why, ": "); ok && strings.HasPrefix(why, "listing lapsed") {
			why = after
		}
		out = append(out, HistoryEvent{Time: d.Lapsed.UTC(), Event: "expired", Why: why})
		t = d.Lapsed.Add(-time.Nanosecond)
	}
	for i := range out {
		out[i].Time = out[i].Time.Truncate(time.Second)
	}
	return out
}

// histKey identifies the input of a unit's replay.
type histKey struct {
	unit             netip.Prefix
	refs, acts       int
	lastRef, lastAct time.Time
}

type histCached struct {
	at  time.Time
	evs []HistoryEvent
}

// replayCached is replay from now, reused for historyCacheTTL while the
// unit's evidence and actions stay the same (lookups repeat).
func (s *Server) replayCached(dec *scoring.Decider, unit netip.Prefix, refs []store.Ref, acts []store.Action, now time.Time) []HistoryEvent {
	k := histKey{unit: unit, refs: len(refs), acts: len(acts)}
	if len(refs) > 0 {
		k.lastRef = refs[len(refs)-1].Time
	}
	for _, a := range acts {
		if a.Time.After(k.lastAct) {
			k.lastAct = a.Time
		}
	}
	s.op.histMu.Lock()
	c, ok := s.op.hist[k]
	s.op.histMu.Unlock()
	if ok && now.Sub(c.at) < historyCacheTTL && !now.Before(c.at) {
		return append([]HistoryEvent(nil), c.evs...)
	}
	evs := replay(dec, unit, refs, acts, now, time.Time{})
	s.op.histMu.Lock()
	if s.op.hist == nil || len(s.op.hist) > 10000 {
		s.op.hist = map[histKey]histCached{}
	}
	s.op.hist[k] = histCached{at: now, evs: evs}
	s.op.histMu.Unlock()
	return append([]HistoryEvent(nil), evs...)
}

func kindList(ks store.KindSet) string {
	var n []string
	for _, k := range ks.Kinds() {
		n = append(n, k.String())
	}
	if len(n) == 0 {
		return "evidence"
	}
	return strings.Join(n, ", ")
}

func lastAction(acts []store.Action, at time.Time, op string) *store.Action {
	var out *store.Action
	for i := range acts {
		if acts[i].Op == op && !acts[i].Time.After(at) && (out == nil || acts[i].Time.After(out.Time)) {
			out = &acts[i]
		}
	}
	return out
}

// delistWhy says who removed a listing, without the requester's address
// or the reason they gave.
func delistWhy(a *store.Action) string {
	switch {
	case a.Who == "selftest":
		return "self-test passed (" + a.Reason + ")"
	case a.Public:
		return "self-service removal" // the requester's reason is free text from the public (issue 13.8): admin only
	}
	return "removed by the list's administrators: " + a.Reason
}

// networkPrefix is the address's IPv4 /24 or IPv6 /48.
func networkPrefix(a netip.Addr) netip.Prefix { return maskTo(a, 24, 48) }

type netCache struct {
	mu sync.Mutex
	m  map[netip.Prefix]netCached
}

type netCached struct {
	at time.Time
	v  NetworkActivity
}

// network counts the listed units of a's /24 or /48 now and in the last
// 90 days, from at most networkRefs pieces of evidence; cached a minute.
func (s *Server) network(ctx context.Context, a netip.Addr) (*NetworkActivity, error) {
	p := networkPrefix(a)
	now := s.now()
	s.op.netc.mu.Lock()
	if c, ok := s.op.netc.m[p]; ok && now.Sub(c.at) < networkCacheTTL {
		s.op.netc.mu.Unlock()
		v := c.v
		return &v, nil
	}
	s.op.netc.mu.Unlock()
	refs, more, err := s.st.RefsBounded(ctx, p, networkRefs)
	if err != nil {
		return nil, err
	}
	acts, err := s.st.Actions(p)
	if err != nil {
		return nil, err
	}
	v := NetworkActivity{Prefix: p.String(), Partial: more}
	byUnit := map[netip.Prefix][]store.Ref{}
	var order []netip.Prefix
	for _, r := range refs {
		u := scoring.Unit(r.Addr)
		if _, ok := byUnit[u]; !ok {
			order = append(order, u)
		}
		byUnit[u] = append(byUnit[u], r)
	}
	actsBy := map[netip.Prefix][]store.Action{}
	for _, x := range acts {
		u := scoring.Unit(x.Prefix.Addr())
		if _, ok := byUnit[u]; !ok {
			order = append(order, u)
			byUnit[u] = nil
		}
		actsBy[u] = append(actsBy[u], x)
	}
	if len(order) > networkUnits {
		order, v.Partial = order[:networkUnits], true
	}
	dec := scoring.NewDecider(s.eng.Policy())
	from := now.Add(-networkWindow)
	for _, u := range order {
		rs, as := byUnit[u], actsBy[u]
		if len(rs) > 0 {
			v.WithEvid++
		}
		// Listed at some time in the window: listed now, or a listing
		// ended (expired or delisted) inside it.
		evs := replay(dec, u, rs, as, now, from)
		switch {
		case len(evs) > 0 && evs[0].Event == "listed": // the walk starts at now
			v.ListedNow++
			v.Listed90d++
		default:
			for _, e := range evs {
				if e.Event != "listed" && !e.Time.Before(from.Truncate(time.Second)) {
					v.Listed90d++
					break
				}
			}
		}
	}
	s.op.netc.mu.Lock()
	if s.op.netc.m == nil || len(s.op.netc.m) > 1000 {
		s.op.netc.m = map[netip.Prefix]netCached{}
	}
	s.op.netc.m[p] = netCached{at: now, v: v}
	s.op.netc.mu.Unlock()
	return &v, nil
}

// apiHistory: GET /api/v1/history/{ip}, rate-limited per requester.
func (s *Server) apiHistory(w http.ResponseWriter, r *http.Request) {
	a, err := parseIP(r.PathValue("ip"))
	if err != nil {
		jsonError(w, http.StatusBadRequest, publicError(err))
		return
	}
	if !s.limHist.Take(requesterKey(s.requesterAddr(r)), s.now()) {
		w.Header().Set("Retry-After", "60")
		jsonError(w, http.StatusTooManyRequests, "too many requests; try again in a minute")
		return
	}
	h, err := s.history(r.Context(), a)
	if err != nil {
		s.log.Error("history", "err", err)
		jsonError(w, http.StatusInternalServerError, "internal error")
		return
	}
	writeJSON(w, http.StatusOK, h)
}
