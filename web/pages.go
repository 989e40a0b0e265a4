package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/blowback-dnsbl/blowback/zones"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// cssVersion busts caches when the stylesheet changes.
var cssVersion = func() string {
	b, _ := staticFS.ReadFile("static/style.css")
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:6])
}()

// pages holds one template set per page: the layout plus the page's content.
var pages = func() map[string]*template.Template {
	out := map[string]*template.Template{}
	for _, p := range []string{"index", "lookup", "status", "error", "card", "selftest"} {
		// index.html also defines the lookup form; parsed first, the
		// page's own "content" replaces index's.
		files := []string{"templates/layout.html", "templates/index.html", "templates/operator.html", "templates/" + p + ".html"}
		out[p] = template.Must(template.New(p).ParseFS(templateFS, files...))
	}
	return out
}()

// codeMeaning explains each return code (CONTRACT.md "DNS").
var codeMeaning = map[string]string{
	"bounce":    "non-delivery reports (bounces) and delay notices",
	"autoreply": "auto-replies (out-of-office, vacation, acknowledgements) and read receipts",
	"callout":   "sender-address verification probes (callouts)",
	"challenge": "challenge-response messages (“please confirm you are human”)",
}

// kindMeaning explains each kind of evidence.
var kindMeaning = map[string]string{
	"bounce":    "bounce (non-delivery report, delay notice, virus or spam-filter notice)",
	"autoreply": "automatic reply (out-of-office, vacation, ticket acknowledgement)",
	"challenge": "challenge-response request",
	"mdn":       "read receipt (message disposition notification)",
	"callout":   "sender verification probe without a message",
	"report":    "abuse feedback report (not counted)",
	"spam":      "spam or malware dressed up as a bounce (not counted)",
	"other":     "other mail (not counted)",
}

type site struct {
	Title   string
	Contact string
	Zone    string
	CSS     string
}

type codeView struct {
	Addr, Name, Meaning string
}

type countView struct {
	Kind    string
	N       int
	Meaning string
}

type evidenceRow struct {
	EvidenceView
	Time string
	ISO  string
}

type grepView struct {
	GrepHints
	Window   string
	Commands []string
}

type lookupView struct {
	L                            Lookup
	Codes                        []codeView
	Counts                       []countView
	Evidence                     []evidenceRow
	Grep                         grepView
	FirstSeen, LastSeen, Expires string
	FirstSeenISO, LastSeenISO    string
	ExpiresISO                   string
	CanDelist                    bool
	Reason                       string  // l.Reason as a sentence
	Op                           *opView // advice, history, self-test (selftest.go)
}

type statusView struct {
	S                    Status
	Built, BuiltISO, Age string
	Charts               []chartView
}

type pageData struct {
	Site   site
	Title  string
	Active string
	Query  string
	Error  string
	Notice string
	Token  string
	Reason string
	Codes  []codeView
	Lookup *lookupView
	Status *statusView
	// Operator pages (card.go, selftest.go).
	Card     *cardView
	SelfTest *selfTestView
	Domain   string // the self-test form's domain
	Refresh  int    // seconds: reload a running self-test's page
}

// minute formats t to the minute in UTC (what an operator compares with logs).
func minute(t *time.Time) (string, string) {
	if t == nil {
		return "", ""
	}
	return t.UTC().Format("2006-01-02 15:04 UTC"), t.UTC().Format(time.RFC3339)
}

func allCodes() []codeView {
	var out []codeView
	c := zones.CodeAll
	for i, a := range c.Addrs() {
		n := c.Names()[i]
		out = append(out, codeView{Addr: a.String(), Name: n, Meaning: codeMeaning[n]})
	}
	return out
}

func (s *Server) site() site {
	return site{Title: s.cfg.Title, Contact: s.cfg.Contact, Zone: s.zone(), CSS: "/static/style.css?v=" + cssVersion}
}

func (s *Server) render(w http.ResponseWriter, code int, name string, d pageData) {
	d.Site = s.site()
	var buf bytes.Buffer
	if err := pages[name].ExecuteTemplate(&buf, "layout", d); err != nil {
		s.log.Error("render", "page", name, "err", err)
		jsonError(w, http.StatusInternalServerError, "internal error")
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	w.Write(buf.Bytes())
}

func (s *Server) renderError(w http.ResponseWriter, r *http.Request, code int, msg string) {
	s.render(w, code, "error", pageData{Title: http.StatusText(code), Error: msg})
}

func (s *Server) static(w http.ResponseWriter, r *http.Request) {
	sub, _ := fs.Sub(staticFS, "static")
	name := strings.TrimPrefix(r.URL.Path, "/static/")
	if _, err := fs.Stat(sub, name); err != nil || name == "" {
		jsonError(w, http.StatusNotFound, "not found: "+r.URL.Path)
		return
	}
	if r.URL.Query().Get("v") == cssVersion {
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		w.Header().Set("Cache-Control", "public, max-age=300")
	}
	w.Header().Set("X-Content-Type-Options", "nosniff")
	http.ServeFileFS(w, r, sub, name)
}

func (s *Server) pageIndex(w http.ResponseWriter, r *http.Request) {
	s.render(w, http.StatusOK, "index", pageData{Active: "lookup", Codes: allCodes()})
}

func (s *Server) pageLookup(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query().Get("ip")
	d := pageData{Title: "Look up", Active: "lookup", Query: q}
	if q == "" {
		s.render(w, http.StatusOK, "lookup", d)
		return
	}
	// The notice is one of a fixed set keyed by a code, naming the address
	// only as parsed: nothing of the query string is echoed as text.
	if msg, ok := doneNotices[r.URL.Query().Get("done")]; ok {
		if a, err := parseIP(q); err == nil {
			d.Notice = a.String() + msg
		}
	}
	s.lookupPage(w, r, http.StatusOK, d)
}

// doneNotices are the notices /lookup?ip=...&done=CODE shows after a form post.
var doneNotices = map[string]string{
	"delisted": " has been removed from the list. DNS answers change at once; resolvers may cache the old answer for a few minutes.",
}

// lookupPage renders the lookup of d.Query with code (the status of an
// error shown with it).
func (s *Server) lookupPage(w http.ResponseWriter, r *http.Request, code int, d pageData) {
	a, err := parseIP(d.Query)
	if err != nil {
		d.Error = publicError(err)
		s.render(w, max(code, http.StatusBadRequest), "lookup", d)
		return
	}
	l, err := s.lookup(a)
	if err != nil {
		s.log.Error("lookup", "err", err)
		d.Error = "internal error"
		s.render(w, http.StatusInternalServerError, "lookup", d)
		return
	}
	d.Title = l.IP
	d.Lookup = s.lookupView(l)
	if d.Lookup.CanDelist {
		d.Token = s.csrfToken(s.formCookie(w, r))
	}
	s.render(w, code, "lookup", d)
}

var shellSafe = regexp.MustCompile(`^[A-Za-z0-9._@+%=:/<>$-]+$`)

func (s *Server) lookupView(l Lookup) *lookupView {
	v := &lookupView{L: l, CanDelist: l.Listed && !l.TestPoint, Reason: strings.TrimSpace(l.Reason)}
	if v.Reason != "" && !strings.ContainsAny(v.Reason[len(v.Reason)-1:], ".!?") {
		v.Reason += "."
	}
	if c := v.Reason; c != "" && 'a' <= c[0] && c[0] <= 'z' {
		v.Reason = strings.ToUpper(c[:1]) + c[1:]
	}
	v.FirstSeen, v.FirstSeenISO = minute(l.FirstSeen)
	v.LastSeen, v.LastSeenISO = minute(l.LastSeen)
	v.Expires, v.ExpiresISO = minute(l.Expires)
	for i, c := range l.Codes {
		n := ""
		if i < len(l.CodeNames) {
			n = l.CodeNames[i]
		}
		v.Codes = append(v.Codes, codeView{Addr: c, Name: n, Meaning: codeMeaning[n]})
	}
	// On record: kept one by one, and counted past the store's per-unit cap.
	all := map[string]int{}
	for k, n := range l.Counts {
		all[k] += n
	}
	for k, n := range l.Summarised {
		all[k] += n
	}
	for _, k := range sortedKinds(all) {
		v.Counts = append(v.Counts, countView{Kind: k, N: all[k], Meaning: kindMeaning[k]})
	}
	for _, e := range l.Evidence {
		t, iso := minute(&e.Time)
		v.Evidence = append(v.Evidence, evidenceRow{EvidenceView: e, Time: t, ISO: iso})
	}
	g := grepView{GrepHints: l.Grep}
	if l.Grep.From != nil && l.Grep.To != nil {
		from, _ := minute(l.Grep.From)
		to, _ := minute(l.Grep.To)
		g.Window = from + " to " + to
	}
	quote := func(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
	for i, id := range l.Grep.MessageIDs {
		if i == 3 {
			break
		}
		g.Commands = append(g.Commands, "grep -F "+quote(id)+" /var/log/mail.log")
	}
	for _, d := range l.Grep.RecipientDomains {
		if shellSafe.MatchString(d) {
			g.Commands = append(g.Commands, "grep -E 'to=<[^>]*@"+strings.ReplaceAll(d, ".", `\.`)+">' /var/log/mail.log")
		}
	}
	v.Grep = g
	v.Op = s.opView(l)
	return v
}

// pageDelist is the delist form's target: POST, check, act, then redirect
// to the lookup page (POST-redirect-GET), or show the form again with why.
func (s *Server) pageDelist(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		s.metrics.delists.WithLabelValues("rejected").Inc()
		s.renderError(w, r, http.StatusBadRequest, "could not read the form")
		return
	}
	q := r.PostFormValue("ip")
	d := pageData{Title: "Look up", Active: "lookup", Query: q, Reason: r.PostFormValue("reason")}
	if err := s.checkForm(r); err != nil {
		s.metrics.delists.WithLabelValues("rejected").Inc()
		d.Error = strings.TrimPrefix(err.Error(), ErrForbidden.Error()+": ")
		s.lookupPage(w, r, http.StatusForbidden, d)
		return
	}
	a, err := parseIP(q)
	if err != nil {
		s.metrics.delists.WithLabelValues("rejected").Inc()
		d.Error = publicError(err)
		s.render(w, http.StatusBadRequest, "lookup", d)
		return
	}
	code, msg := s.Delist(r.Context(), a, d.Reason, s.requesterAddr(r))
	if code != http.StatusOK {
		if code == http.StatusTooManyRequests {
			w.Header().Set("Retry-After", "3600")
		}
		d.Error = msg
		s.lookupPage(w, r, code, d)
		return
	}
	http.Redirect(w, r, "/lookup?ip="+url.QueryEscape(a.String())+"&done=delisted", http.StatusSeeOther)
}

func (s *Server) pageStatus(w http.ResponseWriter, r *http.Request) {
	st := s.status()
	v := &statusView{S: st}
	v.Built, v.BuiltISO = minute(st.Built)
	if st.Built != nil {
		v.Age = humanAge(time.Duration(st.AgeSeconds * float64(time.Second)))
	}
	v.Charts = []chartView{
		renderChart(chartSeries{ID: "hourly", Title: "Trap hits per hour, last 48 hours", Start: st.HourlyStart, Step: time.Hour, Counts: st.Hourly}),
		renderChart(chartSeries{ID: "daily", Title: "Trap hits per day, last 30 days", Start: st.DailyStart, Step: 24 * time.Hour, Counts: st.Daily}),
	}
	s.render(w, http.StatusOK, "status", pageData{Title: "Status", Active: "status", Status: v})
}

func humanAge(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%d s", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%d min", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%.1f h", d.Hours())
	}
	return fmt.Sprintf("%.1f days", d.Hours()/24)
}
