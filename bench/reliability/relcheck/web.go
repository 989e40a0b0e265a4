package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/blowback-dnsbl/blowback/internal/tally"
)

// httpFrom is an HTTP client whose connections come from src; it does not
// follow redirects.
func httpFrom(src string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	return &http.Client{Timeout: 30 * time.Second,
		Transport:     &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func do(cl *http.Client, method, u, auth string, body []byte, hdr map[string]string) (int, string, error) {
	req, err := http.NewRequest(method, u, bytes.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	if body != nil && hdr["Content-Type"] == "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := cl.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, string(b), nil
}

type lookupView struct {
	Listed   bool           `json:"listed"`
	Counts   map[string]int `json:"counts"`
	Evidence []struct {
		Kind string `json:"kind"`
	} `json:"evidence"`
}

func lookup(n *node, ip string) (lookupView, error) {
	var l lookupView
	code, body, err := do(httpFrom("127.0.0.1"), "GET", "http://"+n.http+"/api/v1/lookup/"+ip, "", nil, nil)
	if err != nil {
		return l, err
	}
	if code != 200 {
		return l, fmt.Errorf("lookup %s: HTTP %d", ip, code)
	}
	return l, json.Unmarshal([]byte(body), &l)
}

func (l lookupView) total() int {
	n := 0
	for _, v := range l.Counts {
		n += v
	}
	return n
}

// poisoned is a bounce whose headers and DSN name third parties: forged
// Received lines, X-Originating-IP, a Remote-MTA and Reporting-MTA with
// another address, and a Received line in the returned original.
func poisoned(id, rcpt string) string {
	return "Received: from relay.example.net (relay.example.net [198.51.100.23]) by mx.example.net; Mon, 1 Jan 2026 00:00:00 +0000\r\n" +
		"Received: from [198.51.100.27] by relay.example.net\r\n" +
		"X-Originating-IP: [198.51.100.25]\r\n" +
		"From: Mail Delivery System <MAILER-DAEMON@mx.example.net>\r\n" +
		"To: " + rcpt + "\r\n" +
		"Subject: Undelivered Mail Returned to Sender\r\n" +
		"Message-ID: <" + id + ">\r\n" +
		"MIME-Version: 1.0\r\n" +
		"Content-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\r\n" +
		"\r\n--B\r\nContent-Type: text/plain\r\n\r\nThe mail system at [198.51.100.24] could not deliver your message.\r\n" +
		"\r\n--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; [198.51.100.24]\r\nReceived-From-MTA: dns; [198.51.100.28]\r\n\r\n" +
		"Final-Recipient: rfc822; nobody@example.net\r\nAction: failed\r\nStatus: 5.1.1\r\nRemote-MTA: dns; [198.51.100.24]\r\n" +
		"\r\n--B\r\nContent-Type: message/rfc822\r\n\r\nReceived: from [198.51.100.26] by mx.example.net\r\nFrom: " + rcpt + "\r\nTo: nobody@example.net\r\n" +
		"Subject: hi\r\nMessage-ID: <orig-" + id + ">\r\n\r\nspam\r\n--B--\r\n"
}

var thirdParties = []string{"198.51.100.23", "198.51.100.24", "198.51.100.25", "198.51.100.26", "198.51.100.27", "198.51.100.28", "192.0.2.66"}

func reverse(ip string) string {
	p := strings.Split(ip, ".")
	return p[3] + "." + p[2] + "." + p[1] + "." + p[0] + "." + zone
}

// webNode is shared by the poisoning and admin scenarios.
func (c *checker) webNode() (*node, error) {
	for _, n := range c.nodes {
		if n.name == "web" && n.alive() {
			return n, nil
		}
	}
	return c.startNode("web", filepath.Join(c.work, "web-data"), c.baseConfig(""))
}

func (c *checker) poisonScenarios() {
	n, err := c.webNode()
	if err != nil {
		c.add(row{Scenario: "poisoning node", Errors: err.Error()})
		return
	}
	// One sender, 40 bounces to distinct trap addresses, all naming third
	// parties; and 10 sessions with an untrusted PROXY header naming one.
	const sender = "127.0.70.1"
	acked := 0
	s, _, err := openSession(sender, n.smtp, "mx.sender.example", nil)
	if err != nil {
		c.add(row{Scenario: "poisoning", Errors: err.Error()})
		return
	}
	for i := range 40 {
		rcpt := fmt.Sprintf("u%d@trap%s.blowback.test", i, map[bool]string{true: "2", false: ""}[i%2 == 1])
		if rep, err := s.send("", rcpt, poisoned(msgID("poison"), rcpt)); err == nil && strings.HasPrefix(rep, "250") {
			acked++
		}
	}
	s.close()
	for range 10 {
		hostile("127.0.71.1", n.smtp, 10*time.Second, func(conn net.Conn) {
			writeStr(conn, "PROXY TCP4 192.0.2.66 198.51.100.1 4444 25\r\nEHLO x\r\nMAIL FROM:<>\r\nRCPT TO:<v@trap.blowback.test>\r\nDATA\r\n"+poisoned(msgID("p"), "v@trap.blowback.test")+".\r\nQUIT\r\n")
		})
	}
	time.Sleep(2 * time.Second) // publication is coalesced
	own, err := lookup(n, sender)
	var leaks []string
	for _, ip := range thirdParties {
		l, err := lookup(n, ip)
		if err != nil {
			leaks = append(leaks, ip+": "+err.Error())
			continue
		}
		m := new(dns.Msg)
		m.SetQuestion(reverse(ip), dns.TypeA)
		r, _, derr := query("127.0.99.1", n.dns, m)
		if l.listed() || l.total() > 0 || derr != nil || r.Rcode != dns.RcodeNameError {
			leaks = append(leaks, fmt.Sprintf("%s: listed %v, %d events, DNS %v", ip, l.Listed, l.total(), rcodeOf(r, derr)))
		}
	}
	c.add(row{Scenario: "Poisoning: third parties", Load: fmt.Sprintf("40 bounces from %s naming 6 other addresses; 10 untrusted-PROXY sessions naming 192.0.2.66", sender),
		Faults: "forged Received, X-Originating-IP, DSN Reporting/Remote-MTA, Received in the original, PROXY spoof",
		Events: fmt.Sprintf("%d acked / %d stored for the TCP peer (listed %v)", acked, own.total(), own.Listed),
		Errors: fmt.Sprintf("third parties with evidence or listed: %d %s; lookup err %v", len(leaks), strings.Join(leaks, "; "), errStr(err)),
		OK:     err == nil && len(leaks) == 0 && own.total() == acked && acked == 40})

	// Public delist abuse. Only a real delist of a listed address is
	// charged (issue 13.7): each target is listed by the admin first.
	delist := func(src, ip string, hdr map[string]string) int {
		lb, _ := json.Marshal(map[string]string{"ip": ip, "reason": "reliability test: list before the delist"})
		if code, _, err := do(httpFrom("127.0.0.1"), "POST", "http://"+n.http+"/api/v1/admin/list", "Bearer "+c.adminTok, lb, nil); err != nil || code != 200 {
			return -code
		}
		b, _ := json.Marshal(map[string]string{"ip": ip, "reason": "reliability test"})
		code, _, err := do(httpFrom(src), "POST", "http://"+n.http+"/api/v1/delist", "", b, hdr)
		if err != nil {
			return 0
		}
		return code
	}
	var a, b, x tally.Counter
	for i := range 20 {
		a.Add(fmt.Sprint(delist("127.0.72.1", fmt.Sprintf("198.18.0.%d", i+1), nil)))
	}
	for i := range 10 {
		b.Add(fmt.Sprint(delist(fmt.Sprintf("127.0.73.%d", i+1), "198.18.1.1", nil)))
	}
	for i := range 10 {
		x.Add(fmt.Sprint(delist("127.0.74.1", fmt.Sprintf("198.18.2.%d", i+1), map[string]string{"X-Forwarded-For": fmt.Sprintf("203.0.113.%d", i+1)})))
	}
	c.add(row{Scenario: "Public delist abuse", Load: "20 delists from one requester; 10 requesters on one address; 10 with forged X-Forwarded-For",
		Faults: "rate-limit evasion", Events: "-",
		Errors: fmt.Sprintf("one requester: %s; one address: %s; forged XFF: %s", a.String(), b.String(), x.String()),
		OK:     a.Get("200") == 5 && a.Get("429") == 15 && b.Get("200") == 3 && b.Get("429") == 7 && x.Get("200") == 5 && x.Get("429") == 5})
}

func (l lookupView) listed() bool { return l.Listed }

func rcodeOf(r *dns.Msg, err error) string {
	if err != nil {
		return err.Error()
	}
	return dns.RcodeToString[r.Rcode]
}

func (c *checker) adminScenarios() {
	n, err := c.webNode()
	if err != nil {
		c.add(row{Scenario: "admin node", Errors: err.Error()})
		return
	}
	base := "http://" + n.http
	cl := httpFrom("127.0.0.1")
	wrong := randHex(24)
	near := c.adminTok[:len(c.adminTok)-1] + "0"
	if near == c.adminTok {
		near = c.adminTok[:len(c.adminTok)-1] + "1"
	}
	type ep struct {
		method, path string
		body         string
	}
	eps := []ep{
		{"GET", "/api/v1/admin/evidence/127.0.70.1", ""},
		{"GET", "/api/v1/admin/audit", ""},
		{"GET", "/api/v1/admin/zone", ""},
		{"GET", "/api/v1/admin/backup", ""},
		{"GET", "/api/v1/admin/nodes", ""},
		{"POST", "/api/v1/admin/list", `{"ip":"198.18.9.9","reason":"reliability test"}`},
		{"POST", "/api/v1/admin/delist", `{"ip":"198.18.9.9","reason":"reliability test"}`},
		{"POST", "/api/v1/admin/nodes/nobody/revoke", `{}`},
	}
	var without, bad, good tally.Counter
	var failures []string
	for _, e := range eps {
		var body []byte
		if e.body != "" {
			body = []byte(e.body)
		}
		for _, auth := range []struct {
			h    string
			into *tally.Counter
		}{{"", &without}, {"Bearer " + wrong, &bad}, {"Bearer " + near, &bad}, {"Basic " + c.adminTok, &bad}, {"Bearer " + c.adminTok[:8], &bad}, {"Bearer " + c.adminTok, &good}} {
			code, _, err := do(cl, e.method, base+e.path, auth.h, body, nil)
			auth.into.Add(fmt.Sprint(code))
			okCode := code == 401
			if auth.into == &good { // authorized: whatever the handler says, not 401/403
				okCode = code != 401 && code != 403 && code < 500
			}
			if err != nil || !okCode {
				failures = append(failures, fmt.Sprintf("%s %s with %q: %d %v", e.method, e.path, redact(auth.h, c.adminTok), code, err))
			}
		}
	}
	// Evidence intake needs a node token (or an admin token, by design:
	// such events are recorded as node "admin").
	intake := []byte(`{"node":"trap1","events":[]}`)
	var in tally.Counter
	for _, auth := range []string{"", "Bearer " + wrong, "Bearer " + c.adminTok, "Bearer " + c.nodeTok} {
		code, _, _ := do(cl, "POST", base+"/api/v1/evidence", auth, intake, nil)
		in.Add(fmt.Sprint(code))
	}
	c.add(row{Scenario: "Admin tokens", Load: fmt.Sprintf("%d admin endpoints × 6 credentials; evidence intake × 4", len(eps)),
		Faults: "no token, wrong token, token off by one character, Basic scheme, token prefix",
		Events: "-", Errors: fmt.Sprintf("without: %s; wrong: %s; right: %s; intake (none, wrong, admin, node): %s", without.String(), bad.String(), good.String(), in.String()),
		OK: len(failures) == 0 && in.Get("401") == 2 && in.Get("200") == 2, Notes: failures})

	// CSRF on the delist form.
	csrfRow := row{Scenario: "CSRF on forms", Load: "POST /delist with and without the form token", Faults: "no token, foreign Origin, token of another cookie, no Origin/Referer"}
	fc := httpFrom("127.0.75.1")
	if c.only != nil && !c.only["poison"] {
		// The form shows for a listed address: the poisoning scenario
		// lists 127.0.70.1 on this node; run without it, list it here.
		c.adminList(n, "127.0.70.1")
	}
	cookie, token, err := formToken(fc, base, "127.0.70.1")
	if err != nil {
		csrfRow.Errors = err.Error()
		c.add(csrfRow)
		return
	}
	post := func(cookie, token, origin string) int {
		form := url.Values{"ip": {"127.0.70.1"}, "reason": {"reliability test"}}
		if token != "" {
			form.Set("token", token)
		}
		hdr := map[string]string{"Content-Type": "application/x-www-form-urlencoded"}
		if origin != "" {
			hdr["Origin"] = origin
		}
		if cookie != "" {
			hdr["Cookie"] = cookie
		}
		code, _, _ := do(fc, "POST", base+"/delist", "", []byte(form.Encode()), hdr)
		return code
	}
	_, otherToken, _ := formToken(httpFrom("127.0.75.2"), base, "127.0.70.1")
	self := base
	cases := []struct {
		what                  string
		cookie, token, origin string
		wantOK                bool
	}{
		{"no token, no cookie", "", "", self, false},
		{"cookie, no token", cookie, "", self, false},
		{"foreign Origin", cookie, token, "https://evil.example", false},
		{"no Origin or Referer", cookie, token, "", false},
		{"token of another browser", cookie, otherToken, self, false},
		{"valid", cookie, token, self, true},
	}
	var parts []string
	csrfRow.OK = true
	for _, k := range cases {
		code := post(k.cookie, k.token, k.origin)
		parts = append(parts, fmt.Sprintf("%s→%d", k.what, code))
		ok := code == 403
		if k.wantOK {
			ok = code == 200 || code == 303
		}
		csrfRow.OK = csrfRow.OK && ok
	}
	csrfRow.Events = "-"
	csrfRow.Errors = strings.Join(parts, "; ")
	c.add(csrfRow)

	// Constant-time comparison: inspect the source.
	c.add(c.inspectCompare())
}

var tokenRE = regexp.MustCompile(`name="token" value="([^"]+)"`)

// formToken fetches the lookup page of ip (which shows the delist form for
// a listed address) and returns the form cookie and token.
func formToken(cl *http.Client, base, ip string) (cookie, token string, err error) {
	resp, err := cl.Get(base + "/lookup?ip=" + ip)
	if err != nil {
		return "", "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	m := tokenRE.FindStringSubmatch(string(b))
	if m == nil {
		return "", "", fmt.Errorf("no delist form on /lookup?ip=%s (HTTP %d)", ip, resp.StatusCode)
	}
	for _, ck := range resp.Cookies() {
		cookie = ck.Name + "=" + ck.Value
	}
	return cookie, htmlUnescape(m[1]), nil
}

func htmlUnescape(s string) string {
	return strings.NewReplacer("&#43;", "+", "&#61;", "=", "&amp;", "&").Replace(s)
}

func redact(h, tok string) string { return strings.ReplaceAll(h, tok, "<admin token>") }

// inspectCompare reads the web, intake and forward packages' sources: token and CSRF checks
// must use crypto/subtle or hmac.Equal, and no token may be compared with
// == or !=.
func (c *checker) inspectCompare() row {
	r := row{Scenario: "Constant-time compare (source)", Load: "web/*.go, intake/*.go, forward/*.go", Faults: "-", Events: "-"}
	src := os.Getenv("RELCHECK_SRC")
	if src == "" {
		src = "."
	}
	var good, bad []string
	cmpRE := regexp.MustCompile(`(?i)(tok(en)?s?\b|secret|\bmac\b)[^=!\n]*(==|!=)|(==|!=)[^=\n]*(tok(en)?\b|secret)`)
	for _, dir := range []string{"web", "intake", "forward"} {
		files, _ := filepath.Glob(filepath.Join(src, dir, "*.go"))
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			b, err := os.ReadFile(f)
			if err != nil {
				continue
			}
			for i, l := range strings.Split(string(b), "\n") {
				t := strings.TrimSpace(l)
				if strings.HasPrefix(t, "//") {
					continue
				}
				if strings.Contains(l, "subtle.ConstantTimeCompare") || strings.Contains(l, "hmac.Equal") {
					good = append(good, fmt.Sprintf("%s/%s:%d", dir, filepath.Base(f), i+1))
				}
				if cmpRE.MatchString(l) && !strings.Contains(l, "subtle.") && !strings.Contains(l, "hmac.") && !strings.Contains(l, `== ""`) && !strings.Contains(l, `!= ""`) && !strings.Contains(l, "nil") && !strings.Contains(l, "len(") {
					bad = append(bad, fmt.Sprintf("%s/%s:%d: %s", dir, filepath.Base(f), i+1, t))
				}
			}
		}
	}
	r.Errors = fmt.Sprintf("constant-time compares at %s; suspicious == on tokens: %d", strings.Join(good, ", "), len(bad))
	r.OK = len(good) >= 2
	r.Notes = bad
	return r
}

// secretsScenario greps every node's log (and the /metrics of those still
// running) for the admin and node tokens.
func (c *checker) secretsScenario() {
	found := []string{}
	lines := 0
	for _, n := range c.nodes {
		text := n.logText()
		lines += strings.Count(text, "\n")
		for what, tok := range map[string]string{"admin token": c.adminTok, "node token": c.nodeTok} {
			if strings.Contains(text, tok) {
				found = append(found, fmt.Sprintf("%s in %s.log", what, n.name))
			}
		}
		if n.alive() {
			_, body, _ := do(httpFrom("127.0.0.1"), "GET", "http://"+n.http+"/metrics", "", nil, nil)
			for what, tok := range map[string]string{"admin token": c.adminTok, "node token": c.nodeTok} {
				if strings.Contains(body, tok) {
					found = append(found, fmt.Sprintf("%s in %s /metrics", what, n.name))
				}
			}
		}
	}
	c.add(row{Scenario: "No secrets in logs", Load: fmt.Sprintf("%d log lines of %d nodes", lines, len(c.nodes)),
		Faults: "tokens used (right and wrong) throughout the run", Events: "-",
		Errors: fmt.Sprintf("tokens found: %d %s", len(found), strings.Join(found, "; ")), OK: len(found) == 0})
}
