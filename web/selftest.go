package web

import (
	"context"
	"errors"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/blowback-dnsbl/blowback/scoring"
	"github.com/blowback-dnsbl/blowback/selftest"
	"github.com/blowback-dnsbl/blowback/store"
)

// The operator pages: the self-test form and result page, and the hooks
// that put advice, history and the self-test on the lookup page.

// SelfTester runs operator self-tests (*selftest.Tester).
type SelfTester interface {
	Start(req selftest.Request) (string, error)
	Get(id string) (selftest.Result, bool)
	Watch() time.Duration
}

var _ SelfTester = (*selftest.Tester)(nil)

// operator is the operator pages' state in Server.
type operator struct {
	netc   netCache
	histMu sync.Mutex
	hist   map[histKey]histCached
}

func (s *Server) operatorRoutes(h func(pattern, name string, fn http.HandlerFunc)) {
	h("GET /zone", "page_zone", s.pageZone)
	h("GET /api/v1/zone", "api_zone", s.apiZone)
	h("GET /api/v1/history/{ip}", "api_history", s.apiHistory)
	h("POST /selftest", "page_selftest", s.pageSelfTestStart)
	h("GET /selftest/{id}", "page_selftest", s.pageSelfTest)
	h("POST /api/v1/selftest", "api_selftest", s.jsonPost(s.apiSelfTestStart)) // CT and cross-site check (csrf.go)
	h("GET /api/v1/selftest/{id}", "api_selftest", s.apiSelfTest)
}

// opView is what the lookup page adds: advice, history, the self-test form.
type opView struct {
	ShowHistory  bool
	Advice       []Advice
	UnknownMTA   bool
	History      []historyRow
	SelfTests    []selfTestRow
	Partial      bool
	Network      *NetworkActivity
	SelfTestForm bool
	Watch        string
}

type historyRow struct {
	HistoryEvent
	When, ISO string
}

type selfTestRow struct {
	SelfTestView
	When, ISO string
}

func (s *Server) opView(l Lookup) *opView {
	v := &opView{Advice: l.Advice}
	for _, a := range l.Advice {
		if !a.Known {
			v.UnknownMTA = true
		}
	}
	if h := l.History; h != nil {
		v.ShowHistory = true
		v.Partial, v.Network = h.Partial, h.Network
		for _, e := range h.Events {
			t, iso := minute(&e.Time)
			v.History = append(v.History, historyRow{HistoryEvent: e, When: t, ISO: iso})
		}
		for _, e := range h.SelfTests {
			t, iso := minute(&e.Time)
			v.SelfTests = append(v.SelfTests, selfTestRow{SelfTestView: e, When: t, ISO: iso})
		}
	}
	if s.cfg.SelfTest != nil && l.Listed && !l.TestPoint {
		v.SelfTestForm = true
		v.Watch = humanAge(s.cfg.SelfTest.Watch())
	}
	return v
}

// lookupExtras fills the lookup answer's advice and history.
func (s *Server) lookupExtras(out *Lookup, a netip.Addr, evs []store.Event) error {
	out.Advice = adviceOf(evs)
	if out.TestPoint || s.st == nil { // s.st: NewWith, pages over a Reader only
		return nil // RFC 5782 test point: no history of its own
	}
	h, err := s.history(context.Background(), a)
	if err != nil {
		return err
	}
	out.History = h
	return nil
}

// hostsOf lists the host names the evidence gives for the sending server.
func hostsOf(evs []store.Event) []string {
	seen := map[string]bool{}
	var out []string
	add := func(h string) {
		h = strings.ToLower(strings.TrimSpace(h))
		if _, rest, ok := strings.Cut(h, ";"); ok { // Reporting-MTA: dns; host
			h = strings.TrimSpace(rest)
		}
		if h != "" && !seen[h] && len(out) < 20 {
			seen[h] = true
			out = append(out, h)
		}
	}
	for i := range evs {
		add(evs[i].HELO)
		if evs[i].DSN != nil {
			add(evs[i].DSN.ReportingMTA)
		}
	}
	return out
}

// startSelfTest checks and starts a test for ip and domain.
func (s *Server) startSelfTest(r *http.Request, ipText, domain string) (string, int, string) {
	if s.cfg.SelfTest == nil {
		return "", http.StatusNotFound, "self-tests are not enabled on this list"
	}
	if len(domain) > 300 {
		return "", http.StatusBadRequest, "domain too long"
	}
	a, err := parseIP(ipText)
	if err != nil {
		return "", http.StatusBadRequest, publicError(err)
	}
	unit := scoring.Unit(a)
	if snap := s.cur.Load(); snap == nil || snap.Lookup(a) == 0 || a == netip.MustParseAddr("127.0.0.2") {
		return "", http.StatusConflict, a.String() + " is not listed: there is nothing to test for"
	}
	evs, err := s.st.Events(unit, maxEvidenceShown)
	if err != nil {
		s.log.Error("self-test evidence", "err", err)
		return "", http.StatusInternalServerError, "internal error"
	}
	id, err := s.cfg.SelfTest.Start(selftest.Request{IP: a, Unit: unit, Domain: domain, Requester: s.selfTestRequester(r), Hosts: hostsOf(evs)})
	switch {
	case errors.Is(err, selftest.ErrBadDomain):
		return "", http.StatusBadRequest, strings.TrimPrefix(err.Error(), selftest.ErrBadDomain.Error()+": ")
	case errors.Is(err, selftest.ErrRateLimited):
		return "", http.StatusTooManyRequests, "too many self-tests for this domain or from your address; try again later"
	case errors.Is(err, selftest.ErrBusy):
		return "", http.StatusServiceUnavailable, "too many self-tests are running; try again in a few minutes"
	case errors.Is(err, selftest.ErrDisabled):
		return "", http.StatusNotFound, "self-tests are not enabled on this list"
	case err != nil:
		s.log.Error("self-test start", "err", err)
		return "", http.StatusInternalServerError, "internal error"
	}
	return id, http.StatusAccepted, ""
}

func (s *Server) pageSelfTestStart(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if err := r.ParseForm(); err != nil {
		s.renderError(w, r, http.StatusBadRequest, "could not read the form")
		return
	}
	q := r.PostFormValue("ip")
	d := pageData{Title: "Look up", Active: "lookup", Query: q, Domain: r.PostFormValue("domain")}
	if err := s.checkForm(r); err != nil {
		d.Error = strings.TrimPrefix(err.Error(), ErrForbidden.Error()+": ")
		s.lookupPage(w, r, http.StatusForbidden, d)
		return
	}
	id, code, msg := s.startSelfTest(r, q, d.Domain)
	if id == "" {
		if code == http.StatusTooManyRequests {
			w.Header().Set("Retry-After", "3600")
		}
		d.Error = msg
		if _, err := parseIP(q); err != nil {
			s.render(w, code, "lookup", d)
			return
		}
		s.lookupPage(w, r, code, d)
		return
	}
	http.Redirect(w, r, "/selftest/"+url.PathEscape(id), http.StatusSeeOther)
}

func validTestID(id string) bool {
	if len(id) != 32 {
		return false
	}
	for _, c := range id {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

func (s *Server) getSelfTest(r *http.Request) (selftest.Result, bool) {
	id := r.PathValue("id")
	if s.cfg.SelfTest == nil || !validTestID(id) {
		return selftest.Result{}, false
	}
	return s.cfg.SelfTest.Get(id)
}

// selfTestView is the self-test page.
type selfTestView struct {
	R                    selftest.Result
	Started, StartedISO  string
	Ended, EndedISO      string
	WatchTill, WatchISO  string
	Replies              []replyRow
	Advice               []Advice
	Running, Pass, Fail  bool
	Inconclusive, Errord bool
}

type replyRow struct {
	selftest.Reply
	When, ISO string
}

func (s *Server) pageSelfTest(w http.ResponseWriter, r *http.Request) {
	res, ok := s.getSelfTest(r)
	if !ok {
		s.renderError(w, r, http.StatusNotFound, "no such self-test (results are kept for a day)")
		return
	}
	v := &selfTestView{R: res, Running: res.Verdict == selftest.Running, Pass: res.Verdict == selftest.Pass,
		Fail: res.Verdict == selftest.Fail, Inconclusive: res.Verdict == selftest.Inconclusive, Errord: res.Verdict == selftest.Error}
	v.Started, v.StartedISO = minute(&res.Started)
	v.Ended, v.EndedISO = minute(res.Ended)
	v.WatchTill, v.WatchISO = minute(res.WatchTill)
	var kinds []store.Event
	for _, rp := range res.Replies {
		t, iso := minute(&rp.Time)
		v.Replies = append(v.Replies, replyRow{Reply: rp, When: t, ISO: iso})
		if k, err := store.ParseKind(rp.Kind); err == nil {
			kinds = append(kinds, store.Event{Kind: k, MTA: rp.MTA, Subject: rp.Subject, HELO: rp.HELO})
		}
	}
	if v.Fail {
		v.Advice = adviceOf(kinds)
	}
	d := pageData{Title: "Self-test of " + res.Domain, Active: "lookup", SelfTest: v}
	if v.Running {
		d.Refresh = 10
	}
	s.render(w, http.StatusOK, "selftest", d)
}

type selfTestRequest struct {
	IP     string `json:"ip"`
	Domain string `json:"domain"`
}

func (s *Server) apiSelfTestStart(w http.ResponseWriter, r *http.Request) {
	if s.cfg.SelfTest == nil {
		jsonError(w, http.StatusNotFound, "self-tests are not enabled on this list")
		return
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(strings.ToLower(strings.TrimSpace(ct)), "application/json") {
		jsonError(w, http.StatusUnsupportedMediaType, "Content-Type must be application/json")
		return
	}
	var req selfTestRequest
	if err := decodeJSON(w, r, &req); err != nil {
		jsonError(w, http.StatusBadRequest, publicError(err))
		return
	}
	id, code, msg := s.startSelfTest(r, req.IP, req.Domain)
	if id == "" {
		if code == http.StatusTooManyRequests {
			w.Header().Set("Retry-After", "3600")
		}
		jsonError(w, code, msg)
		return
	}
	res, _ := s.cfg.SelfTest.Get(id)
	writeJSON(w, http.StatusAccepted, map[string]any{"id": id, "url": s.cfg.PublicURL + "/selftest/" + id, "result": res})
}

func (s *Server) apiSelfTest(w http.ResponseWriter, r *http.Request) {
	res, ok := s.getSelfTest(r)
	if !ok {
		jsonError(w, http.StatusNotFound, "no such self-test")
		return
	}
	writeJSON(w, http.StatusOK, res)
}

// selfTestRequester is the self-test's rate-limit key of r's requester:
// its listing unit (an IPv6 requester's /64, as for the delist limiter),
// so one subscriber's allocation is one requester, not 2^64 of them.
func (s *Server) selfTestRequester(r *http.Request) string {
	if a := s.requesterAddr(r); a.IsValid() {
		return requesterKey(a).String()
	}
	return s.requester(r)
}
