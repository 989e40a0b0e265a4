package web

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/blowback-dnsbl/blowback/internal/httpjson"
	"github.com/blowback-dnsbl/blowback/listing"
	"github.com/blowback-dnsbl/blowback/scoring"
	"github.com/blowback-dnsbl/blowback/store"
	"github.com/blowback-dnsbl/blowback/zones"
)

// EvidenceView is an evidence item as shown publicly: the trap's local part
// is never shown (CONTRACT.md "HTTP"), not even inside a Message-ID.
type EvidenceView struct {
	Time       time.Time `json:"time"`
	Kind       string    `json:"kind"`
	SubKind    string    `json:"sub_kind,omitempty"`
	HELO       string    `json:"helo"`
	TrapDomain string    `json:"trap_domain"`
	// MessageID is the Message-ID of the original message (the one with the
	// forged sender that was bounced or answered).
	MessageID string `json:"message_id,omitempty"`
	// BounceMessageID is the Message-ID of the bounce or reply itself.
	BounceMessageID string `json:"bounce_message_id,omitempty"`
	// Status is the DSN status code (RFC 3464 §2.3.4), for bounces.
	Status string `json:"status,omitempty"`
}

// GrepHints is what a listed operator can search their own logs for.
type GrepHints struct {
	// MessageIDs of the original messages their server bounced or answered.
	MessageIDs []string `json:"message_ids"`
	// BounceMessageIDs of the bounces and replies they sent.
	BounceMessageIDs []string `json:"bounce_message_ids"`
	// RecipientDomains their server sent the backscatter to.
	RecipientDomains []string `json:"recipient_domains"`
	// HELOs their server announced.
	HELOs []string `json:"helos"`
	// From and To bound the time of the evidence shown (UTC, to the minute).
	From *time.Time `json:"from"`
	To   *time.Time `json:"to"`
}

// Lookup is the public lookup answer (CONTRACT.md "HTTP").
type Lookup struct {
	IP        string         `json:"ip"`
	Unit      string         `json:"unit"`
	Listed    bool           `json:"listed"`
	Codes     []string       `json:"codes"`
	CodeNames []string       `json:"code_names"`
	Score     float64        `json:"score"`
	FirstSeen *time.Time     `json:"first_seen"`
	LastSeen  *time.Time     `json:"last_seen"`
	Expires   *time.Time     `json:"expires"`
	Counts    map[string]int `json:"counts"`
	Reason    string         `json:"reason"`
	Manual    string         `json:"manual,omitempty"`     // "list" or "delist" when a manual action decides
	TestPoint bool           `json:"test_point,omitempty"` // RFC 5782 §5 test address
	Published bool           `json:"published"`            // in the zone served now
	QueryName string         `json:"query_name"`           // the DNS name to check
	Evidence  []EvidenceView `json:"evidence"`
	Grep      GrepHints      `json:"grep"`
	// CountsPartial: the unit has more evidence stored than a decision
	// considers (the newest listing.Config.MaxRefs); Counts are of those.
	CountsPartial bool `json:"counts_partial,omitempty"`
	// Summarised counts, by kind, more events the store only counted (past
	// its per-unit cap), not kept one by one.
	Summarised map[string]int `json:"summarised,omitempty"`
	// Advice is the fix for the software and kinds in the evidence (advice.go).
	Advice []Advice `json:"advice"`
	// History is the listing history and the network view (history.go).
	History *History `json:"history"`
}

// tptr truncates to the second (CONTRACT.md: RFC 3339 UTC), nil for zero.
func tptr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC().Truncate(time.Second)
	return &u
}

// maxEvidenceShown bounds the public evidence list.
const maxEvidenceShown = 50

// lookup is the public answer for a. It reads a bounded amount whatever
// is stored: the decision from the unit's newest refs (listing.Config.MaxRefs,
// keys only) and the newest maxEvidenceShown events.
func (s *Server) lookup(a netip.Addr) (Lookup, error) {
	a = a.Unmap()
	d, refs, acts, err := s.read.Decide(a)
	if err != nil {
		return Lookup{}, err
	}
	out := Lookup{IP: a.String(), Unit: d.Unit.String(), Score: d.Score, Reason: listing.PublicReason(d, acts), Manual: d.Manual,
		FirstSeen: tptr(d.FirstSeen), LastSeen: tptr(d.LastSeen), Counts: map[string]int{},
		Codes: []string{}, CodeNames: []string{}, Evidence: []EvidenceView{}, QueryName: queryName(a, s.zone())}
	for k, n := range d.Counts {
		out.Counts[k.String()] = n
	}
	out.CountsPartial = len(refs) >= s.read.MaxRefs()
	if out.Summarised, err = s.read.Summarised(d.Unit); err != nil {
		return Lookup{}, err
	}
	codes := s.listedCodes(a, d)
	if d.Listed && codes != 0 {
		out.Expires = tptr(d.Expires)
	}
	if snap := s.cur.Load(); snap != nil {
		out.Published = snap.Lookup(a) != 0
	}
	switch {
	case a == zones.TestListed:
		out.TestPoint = true
		out.Reason = "RFC 5782 test point: always listed with every code"
	case a == zones.TestNotListed:
		out.TestPoint = true
		out.Reason = "RFC 5782 test point: never listed"
	case codes != 0 && !d.Listed:
		out.Reason = "listed in the published zone (as part of a wider listed range, or until the next expiry sweep)"
	}
	out.Listed = codes != 0
	for _, c := range codes.Addrs() {
		out.Codes = append(out.Codes, c.String())
	}
	out.CodeNames = append(out.CodeNames, codes.Names()...)
	evs, err := s.read.Events(d.Unit, maxEvidenceShown)
	if err != nil {
		return Lookup{}, err
	}
	out.Grep = GrepHints{MessageIDs: []string{}, BounceMessageIDs: []string{}, RecipientDomains: []string{}, HELOs: []string{}}
	seen := map[string]bool{}
	add := func(list *[]string, v string) {
		if v = strings.TrimSpace(v); v != "" && !seen[v] && len(*list) < 20 {
			seen[v] = true
			*list = append(*list, v)
		}
	}
	var lo, hi time.Time
	for _, e := range evs {
		hide := newRedactor(e.Rcpts).Hide
		v := EvidenceView{Time: e.Time.UTC().Truncate(time.Second), Kind: e.Kind.String(), SubKind: e.SubKind,
			HELO: hide(e.HELO), TrapDomain: trapDomain(&e), MessageID: hide(e.Original.MessageID),
			BounceMessageID: hide(e.MessageID)}
		if e.DSN != nil {
			v.Status = e.DSN.Status
		}
		out.Evidence = append(out.Evidence, v)
		add(&out.Grep.MessageIDs, v.MessageID)
		add(&out.Grep.BounceMessageIDs, v.BounceMessageID)
		add(&out.Grep.RecipientDomains, v.TrapDomain)
		add(&out.Grep.HELOs, v.HELO)
		if lo.IsZero() || e.Time.Before(lo) {
			lo = e.Time
		}
		if e.Time.After(hi) {
			hi = e.Time
		}
	}
	if !lo.IsZero() {
		// Widen to whole minutes: the operator's log clock is not ours.
		from, to := lo.UTC().Truncate(time.Minute).Add(-time.Minute), hi.UTC().Truncate(time.Minute).Add(2*time.Minute)
		out.Grep.From, out.Grep.To = &from, &to
	}
	if err := s.lookupExtras(&out, a, evs); err != nil {
		return Lookup{}, err
	}
	return out, nil
}

func trapDomain(e *store.Event) string {
	if e.TrapDomain != "" {
		return strings.ToLower(e.TrapDomain)
	}
	if _, dom, ok := strings.Cut(e.TrapAddress(), "@"); ok {
		return dom
	}
	return ""
}

// queryName is the DNSBL name for a (RFC 5782 §2.1 IPv4, §2.4 IPv6).
func queryName(a netip.Addr, zone string) string {
	a = a.Unmap()
	if !a.Is4() {
		return nibbles(a, zone)
	}
	b := a.As4()
	name := fmt.Sprintf("%d.%d.%d.%d", b[3], b[2], b[1], b[0])
	if zone != "" {
		name += "." + zone
	}
	return name
}

func (s *Server) zone() string {
	if snap := s.cur.Load(); snap != nil {
		return snap.Zone
	}
	return ""
}

func parseIP(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(strings.TrimSpace(s))
	if err != nil || a.Zone() != "" {
		return netip.Addr{}, fmt.Errorf("%w: not an IP address: %q", ErrBadRequest, s)
	}
	return a.Unmap(), nil
}

// publicError is err's text without the package prefix.
func publicError(err error) string {
	return strings.TrimPrefix(err.Error(), ErrBadRequest.Error()+": ")
}

func (s *Server) apiLookup(w http.ResponseWriter, r *http.Request) {
	a, err := parseIP(r.PathValue("ip"))
	if err != nil {
		jsonError(w, http.StatusBadRequest, publicError(err))
		return
	}
	s.writeLookup(w, a)
}

// writeLookup answers with the lookup of a (500 when it fails).
func (s *Server) writeLookup(w http.ResponseWriter, a netip.Addr) {
	l, err := s.lookup(a)
	if err != nil {
		s.log.Error("lookup", "err", err)
		jsonError(w, http.StatusInternalServerError, "internal error")
		return
	}
	writeJSON(w, http.StatusOK, l)
}

func (s *Server) apiExplain(w http.ResponseWriter, r *http.Request) {
	a, err := parseIP(r.PathValue("ip"))
	if err != nil {
		jsonError(w, http.StatusBadRequest, publicError(err))
		return
	}
	// The admin (a valid bearer token) gets everything; the public what
	// the lookup page shows (listing.Explanation.Public).
	isAdmin := false
	if r.Header.Get("Authorization") != "" {
		if !tokenMatch(httpjson.Bearer(r), s.cfg.AdminTokens) {
			s.unauthorized(w, "bad admin token (leave Authorization out for the public explanation)")
			return
		}
		isAdmin = true
	}
	q := r.URL.Query()
	num := func(name string) (int, bool) {
		v := q.Get(name)
		if v == "" {
			return 0, true
		}
		n, err := strconv.Atoi(v)
		return n, err == nil && n >= 0 && n <= 1<<20
	}
	offset, ok1 := num("offset")
	limit, ok2 := num("limit")
	if !ok1 || !ok2 {
		jsonError(w, http.StatusBadRequest, "offset and limit: want numbers >= 0")
		return
	}
	x, err := s.read.ExplainPage(a, offset, limit)
	if err != nil {
		s.log.Error("explain", "err", err)
		jsonError(w, http.StatusInternalServerError, "internal error")
		return
	}
	if !isAdmin {
		x = x.Public()
	}
	writeJSON(w, http.StatusOK, x)
}

type delistRequest struct {
	IP     string `json:"ip"`
	Reason string `json:"reason"`
}

const maxBody = 1 << 20

// decodeJSON reads one JSON object from the body: unknown fields and
// trailing data are errors.
func decodeJSON(w http.ResponseWriter, r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: bad JSON body: %v", ErrBadRequest, err)
	}
	if dec.More() {
		return fmt.Errorf("%w: bad JSON body: trailing data", ErrBadRequest)
	}
	return nil
}

// Delist performs the public self-service delist for a, from requester.
// It returns the HTTP status and a message. Only a real delist of a
// listed address is charged to the requester's and the address's
// allowance and recorded: the RFC 5782 test points, never-listed,
// allowlisted and unlisted addresses get 409 with the reason, and nothing
// is counted or written.
func (s *Server) Delist(ctx context.Context, a netip.Addr, reason string, requester netip.Addr) (int, string) {
	reason = strings.TrimSpace(reason)
	if reason == "" {
		s.metrics.delists.WithLabelValues("rejected").Inc()
		return http.StatusBadRequest, "a reason is required"
	}
	if len(reason) > 1000 {
		s.metrics.delists.WithLabelValues("rejected").Inc()
		return http.StatusBadRequest, "reason too long (1000 bytes at most)"
	}
	a = a.Unmap()
	unit := scoring.Unit(a)
	if msg := s.notDelistable(a); msg != "" {
		s.metrics.delists.WithLabelValues("not_listed").Inc()
		return http.StatusConflict, msg
	}
	// Check both allowances before taking either, so a refusal by one does
	// not use up the other.
	now, rk := s.now(), requesterKey(requester)
	if !s.limReq.Allowed(rk, now) || !s.limAddr.Allowed(unit, now) || !s.limReq.Take(rk, now) || !s.limAddr.Take(unit, now) {
		s.metrics.delists.WithLabelValues("rate_limited").Inc()
		return http.StatusTooManyRequests, "too many delist requests; try again later"
	}
	who := "public:" + requester.String()
	if !requester.IsValid() {
		who = "public:unknown"
	}
	_, err := s.delister.Act(ctx, store.Action{Prefix: unit, Op: store.OpDelist, Who: who, Reason: reason, Public: true})
	if err != nil {
		s.log.Error("public delist", "err", err)
		s.metrics.delists.WithLabelValues("error").Inc()
		return http.StatusInternalServerError, "internal error"
	}
	s.metrics.delists.WithLabelValues("ok").Inc()
	s.log.Info("public delist", "unit", unit.String())
	return http.StatusOK, "delisted: " + unit.String()
}

// notDelistable says why a cannot be delisted (empty when it can): the
// same answer the lookup gives (listedCodes), so page, API and DNS agree.
func (s *Server) notDelistable(a netip.Addr) string {
	switch {
	case a == zones.TestListed:
		return a.String() + " is the RFC 5782 test point: it is always listed and cannot be delisted"
	case !scoring.Listable(a):
		return a.String() + " is never listed (RFC 5782 test point or reserved address): nothing to delist"
	}
	d, _, acts, err := s.read.Decide(a)
	if err != nil {
		return "" // let the delist try, and report its error
	}
	if d.Allowed.IsValid() {
		return a.String() + " is allowlisted: it is never listed, nothing to delist"
	}
	if s.listedCodes(a, d) == 0 {
		if d.Manual == store.OpDelist {
			return a.String() + " is not listed: " + listing.PublicReason(d, acts)
		}
		return a.String() + " is not listed: nothing to delist"
	}
	return ""
}

// listedCodes are the codes a is listed with, as DNS answers them: the
// decision's (published within milliseconds) and the published zone's
// (test points, escalated ranges, a lapse the sweep has yet to publish).
func (s *Server) listedCodes(a netip.Addr, d scoring.Decision) zones.Codes {
	var c zones.Codes
	if d.Listed && scoring.Listable(a) {
		c = zones.CodesOf(d.Kinds)
	}
	if snap := s.cur.Load(); snap != nil {
		c |= snap.Lookup(a)
	}
	if a.Unmap() == zones.TestNotListed {
		return 0 // RFC 5782 §5
	}
	return c
}

func (s *Server) apiDelist(w http.ResponseWriter, r *http.Request) {
	var req delistRequest
	if err := decodeJSON(w, r, &req); err != nil {
		s.metrics.delists.WithLabelValues("rejected").Inc()
		jsonError(w, http.StatusBadRequest, publicError(err))
		return
	}
	a, err := parseIP(req.IP)
	if err != nil {
		s.metrics.delists.WithLabelValues("rejected").Inc()
		jsonError(w, http.StatusBadRequest, publicError(err))
		return
	}
	code, msg := s.Delist(r.Context(), a, req.Reason, s.requesterAddr(r))
	if code != http.StatusOK {
		if code == http.StatusTooManyRequests {
			w.Header().Set("Retry-After", "3600")
		}
		jsonError(w, code, msg)
		return
	}
	l, err := s.lookup(a)
	if err != nil {
		jsonError(w, http.StatusInternalServerError, "internal error")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"result": msg, "lookup": l})
}

type adminActionRequest struct {
	IP     string   `json:"ip"`
	Reason string   `json:"reason"`
	Who    string   `json:"who"`
	Kinds  []string `json:"kinds"`
}

func (s *Server) apiAdminAction(op string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req adminActionRequest
		if err := decodeJSON(w, r, &req); err != nil {
			jsonError(w, http.StatusBadRequest, publicError(err))
			return
		}
		a, err := parseIP(req.IP)
		if err != nil {
			jsonError(w, http.StatusBadRequest, publicError(err))
			return
		}
		if strings.TrimSpace(req.Reason) == "" {
			jsonError(w, http.StatusBadRequest, "a reason is required")
			return
		}
		act := store.Action{Prefix: scoring.Unit(a), Op: op, Who: "admin", Reason: req.Reason}
		if req.Who != "" {
			act.Who = "admin:" + req.Who
		}
		for _, k := range req.Kinds {
			kind, err := store.ParseKind(k)
			if err != nil {
				jsonError(w, http.StatusBadRequest, "unknown kind "+strconv.Quote(k))
				return
			}
			act.Kinds = append(act.Kinds, kind)
		}
		if _, err := s.eng.Act(r.Context(), act); err != nil {
			s.log.Error("admin action", "err", err)
			jsonError(w, http.StatusInternalServerError, "internal error")
			return
		}
		s.writeLookup(w, a)
	}
}

// apiAdminEvidence returns what the store holds for the unit of {ip}: its
// newest events, its manual actions and what the per-unit and per-network
// caps summarised instead of storing.
func (s *Server) apiAdminEvidence(w http.ResponseWriter, r *http.Request) {
	a, err := parseIP(r.PathValue("ip"))
	if err != nil {
		jsonError(w, http.StatusBadRequest, publicError(err))
		return
	}
	d, _, acts, err := s.eng.Decide(a)
	if err != nil {
		jsonError(w, http.StatusInternalServerError, "internal error")
		return
	}
	// Newest first, ?limit=N (default 1000, at most 10000): bounded even
	// for the admin, whatever one unit has stored.
	limit := 1000
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			jsonError(w, http.StatusBadRequest, "limit: want a number > 0")
			return
		}
		limit = min(n, 10000)
	}
	evs, err := s.st.Events(d.Unit, limit)
	if err != nil {
		jsonError(w, http.StatusInternalServerError, "internal error")
		return
	}
	if evs == nil {
		evs = []store.Event{}
	}
	if acts == nil {
		acts = []store.Action{}
	}
	// What the caps did (store/unitcap.go): the unit's and its network's
	// summaries, newest window first, at most maxCapWindows each; the
	// network's exist only while network caps are on.
	net := store.Network(a)
	sums, err := s.st.Summaries(r.Context(), d.Unit, maxCapWindows)
	if err != nil {
		jsonError(w, http.StatusInternalServerError, "internal error")
		return
	}
	nets, err := s.st.NetSummaries(r.Context(), net, maxCapWindows)
	if err != nil {
		jsonError(w, http.StatusInternalServerError, "internal error")
		return
	}
	if sums == nil {
		sums = []store.UnitSummary{}
	}
	if nets == nil {
		nets = []store.UnitSummary{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"unit": d.Unit.String(), "events": evs, "actions": acts,
		"summaries": sums, "network": net.String(), "network_summaries": nets})
}

// maxCapWindows is how many cap windows (store.UnitSummary) the admin
// evidence shows for a unit and for its network.
const maxCapWindows = 168

// apiAdminAudit returns the audit log: ?since=RFC3339&limit=N (default 1000).
func (s *Server) apiAdminAudit(w http.ResponseWriter, r *http.Request) {
	var since time.Time
	if v := r.URL.Query().Get("since"); v != "" {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			jsonError(w, http.StatusBadRequest, "since: want RFC 3339 time")
			return
		}
		since = t
	}
	limit := 1000
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			jsonError(w, http.StatusBadRequest, "limit: want a number >= 0")
			return
		}
		limit = n
	}
	if limit == 0 || limit > 100000 { // bounded: page with ?since
		limit = 100000
	}
	entries, err := s.st.AuditLog(since, limit)
	if err != nil {
		jsonError(w, http.StatusInternalServerError, "internal error")
		return
	}
	if entries == nil {
		entries = []store.AuditEntry{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"entries": entries})
}

func (s *Server) apiAdminZone(w http.ResponseWriter, r *http.Request) {
	f, err := zones.ParseFormat(r.URL.Query().Get("format"))
	if err != nil {
		jsonError(w, http.StatusBadRequest, err.Error())
		return
	}
	snap := s.cur.Load()
	if snap == nil {
		jsonError(w, http.StatusServiceUnavailable, "no zone yet")
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if err := zones.Write(w, f, snap, s.cfg.SOA); err != nil {
		s.log.Error("zone download", "err", err)
	}
}

func (s *Server) apiAdminBackup(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/octet-stream")
	if err := s.st.Backup(w); err != nil {
		s.log.Error("backup", "err", err)
	}
}

// Status is the zone's state and the recent trap traffic (GET /api/v1/status).
type Status struct {
	Zone       string     `json:"zone"`
	Serial     uint32     `json:"serial"`
	Entries    int        `json:"entries"`
	Built      *time.Time `json:"built"`
	AgeSeconds float64    `json:"age_seconds"`
	Fresh      bool       `json:"fresh"`
	Listed     int        `json:"listed"` // listed units known to the engine
	// Hourly hits per kind, oldest first, ending with the current hour.
	Hourly      map[string][]uint64 `json:"hourly"`
	HourlyStart time.Time           `json:"hourly_start"`
	Daily       map[string][]uint64 `json:"daily"`
	DailyStart  time.Time           `json:"daily_start"`
	Counting    bool                `json:"counting"` // still reading past evidence
}

func (s *Server) status() Status {
	now := s.now().UTC()
	var st Status
	if s.eng != nil {
		st.Listed = s.eng.Listed()
	}
	if snap := s.cur.Load(); snap != nil {
		st.Zone, st.Serial, st.Entries, st.Built = snap.Zone, snap.Serial, snap.Len(), tptr(snap.Built)
		st.AgeSeconds = now.Sub(snap.Built).Seconds()
		st.Fresh = now.Sub(snap.Built) < s.cfg.StaleAfter
	}
	s.startSeeding()
	s.sampleCounters()
	st.Hourly, st.HourlyStart, st.Daily, st.DailyStart, st.Counting = s.stats.series(now)
	return st
}

func (s *Server) apiStatus(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.status())
}

// sortedKinds lists kind names in store order for tables.
func sortedKinds(m map[string]int) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	order := map[string]int{}
	for i, k := range store.Kinds() {
		order[k.String()] = i
	}
	sort.Slice(out, func(i, j int) bool { return order[out[i]] < order[out[j]] })
	return out
}
