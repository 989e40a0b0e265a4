package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"

	"github.com/blowback-dnsbl/blowback/forward"
	"github.com/blowback-dnsbl/blowback/internal/tally"
	"github.com/blowback-dnsbl/blowback/store"
)

// Issue 13, the attacks without a row of their own elsewhere (items 1, 2
// read side, 3, 5, 6, 7, 8, 10, 11, 12), as an attacker on the internet
// would run them, against one `blowback run` node over its sockets. Each
// row is a few seconds. The Go tests named in docs/reliability.md cover
// the same classes from the inside.

// attacks13Extra: a trusted HTTP proxy (X-Forwarded-For gives IPv6
// requesters) and an allowlisted range.
const attacks13Extra = `
[web]
trusted_proxies = ["127.0.8.0/24"]

[policy]
allow = ["198.18.7.0/24"]
`

func (c *checker) attacks13Scenarios() {
	dir := filepath.Join(c.work, "attacks13-data")
	n := c.scenarioNode(row{Scenario: "attacks13 node"}, "attacks13", dir, c.baseConfig(attacks13Extra))
	if n == nil {
		return
	}
	for _, f := range []func(*node) row{
		c.atkRedaction, c.atkBoundedReads, c.atkDNSTCPSlots, c.atkHTTPConns, c.atkCSRF,
		c.atkDelistBudget, c.atkUntrustedText, c.atkDelist64, c.atkNeverListed, c.atkBackupMode,
	} {
		t0 := time.Now()
		r := f(n)
		if !n.alive() {
			r.OK = false
			r.Errors += "; node died"
		}
		r.Notes = append(r.Notes, fmt.Sprintf("row took %v", time.Since(t0).Round(100*time.Millisecond)))
		c.add(r)
		if !n.alive() {
			return
		}
	}
	m, _ := n.metrics()
	stopErr := n.stop()
	errs, which := n.logErrors()
	c.add(row{Scenario: "Issue 13 node overall", Load: "every attacks13 row above", Faults: "-", Events: "-",
		Errors: fmt.Sprintf("panics %.0f; log errors %d %s; stop %s", panics(m), errs, which, errStr(stopErr)),
		OK:     panics(m) == 0 && stopErr == nil})
}

// timedGet fetches u from src and returns the status, body size and time.
// A request that takes 10 s counts as hung (status 0).
func timedGet(src, u, auth string) (int, string, time.Duration) {
	t0 := time.Now()
	cl := httpFrom(src)
	cl.Timeout = 10 * time.Second
	code, body, err := do(cl, "GET", u, auth, nil, nil)
	if err != nil {
		return 0, err.Error(), time.Since(t0)
	}
	return code, body, time.Since(t0)
}

// adminList lists ip with a manual action (so a delist has something to
// delist).
func (c *checker) adminList(n *node, ip string) int {
	b, _ := json.Marshal(map[string]string{"ip": ip, "reason": "relcheck: listed for a delist check"})
	code, _, err := do(httpFrom("127.0.0.1"), "POST", "http://"+n.http+"/api/v1/admin/list", "Bearer "+c.adminTok, b, nil)
	if err != nil {
		return 0
	}
	return code
}

// publicDelist posts the JSON delist of ip from src with extra headers.
func publicDelist(n *node, src, ip, reason string, hdr map[string]string) (int, string) {
	b, _ := json.Marshal(map[string]string{"ip": ip, "reason": reason})
	code, body, err := do(httpFrom(src), "POST", "http://"+n.http+"/api/v1/delist", "", b, hdr)
	if err != nil {
		return 0, err.Error()
	}
	return code, body
}

// waitLookup polls the lookup API until cond holds (at most 20 s).
func waitLookup(n *node, ip string, cond func(lookupView) bool) (lookupView, bool) {
	var l lookupView
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		var err error
		if l, err = lookup(n, ip); err == nil && cond(l) {
			return l, true
		}
	}
	return l, false
}

// smtpOne delivers one bounce from src with helo to rcpt; it returns the
// code of the last reply (the final dot's, or the refusal's).
func smtpOne(src, addr, helo, rcpt string) string {
	s, g, err := openSession(src, addr, helo, nil)
	if err != nil {
		return "session: " + g + " " + err.Error()
	}
	defer s.close()
	rep, err := s.send("", rcpt, bounce(msgID("atk"), rcpt, ""))
	if err != nil {
		return "send: " + rep + " " + err.Error()
	}
	return code(rep)
}

// Item 1: redaction of a trap local part that is its own replacement
// (U+2026), and a KELVIN SIGN HELO whose lower case is shorter.
func (c *checker) atkRedaction(n *node) row {
	r := row{Scenario: "Redaction: … and KELVIN SIGN (13.1)",
		Load:   "2 bounces; then lookup page, lookup API, public and admin explain of each sender",
		Faults: "trap local part \"…\" (U+2026) with \"…\" in the HELO; trap local part kkk with HELO mxKKK (U+212A)"}
	// shown: the HELO as the public evidence must show it (the local part
	// hidden, matched case-insensitively).
	cases := []struct{ src, helo, rcpt, shown string }{
		{"127.0.80.1", "mx.….example", "…@trap.blowback.test", "mx.….example"},
		{"127.0.80.2", "mx\u212a\u212a\u212a.example", "kkk@trap.blowback.test", "mx….example"},
	}
	var sent, got []string
	var status tally.Counter
	var slowest time.Duration
	leak := false
	for _, k := range cases {
		sent = append(sent, smtpOne(k.src, n.smtp, k.helo, k.rcpt))
		// Wait on DNS (the lookup itself may be what hangs).
		var codes []string
		for deadline := time.Now().Add(20 * time.Second); len(codes) == 0 && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			codes = listedCodes(n.dns, netip.MustParseAddr(k.src))
		}
		if len(codes) == 0 {
			got = append(got, k.src+": not listed in DNS")
			continue
		}
		base := "http://" + n.http
		for _, u := range []struct{ path, auth string }{
			{"/lookup?ip=" + k.src, ""}, {"/api/v1/lookup/" + k.src, ""},
			{"/api/v1/explain/" + k.src, ""}, {"/api/v1/explain/" + k.src, "Bearer " + c.adminTok},
		} {
			code, body, d := timedGet("127.0.80.9", base+u.path, u.auth)
			status.Add(strconv.Itoa(code))
			slowest = max(slowest, d)
			if u.auth == "" && strings.Contains(body, "kkk@") {
				leak = true
			}
			if strings.HasPrefix(u.path, "/api/v1/lookup/") {
				var l struct {
					Evidence []struct {
						HELO string `json:"helo"`
					} `json:"evidence"`
				}
				json.Unmarshal([]byte(body), &l)
				if len(l.Evidence) == 0 || l.Evidence[0].HELO != k.shown {
					got = append(got, fmt.Sprintf("%s: evidence %+q, want HELO %q", k.src, l.Evidence, k.shown))
				}
			}
		}
	}
	r.Events = fmt.Sprintf("SMTP replies: %s", strings.Join(sent, ", "))
	r.Errors = fmt.Sprintf("answers (0: none in 10 s): %s; slowest %v; trap local part on a public answer: %v %s", status.String(),
		slowest.Round(time.Millisecond), leak, strings.Join(got, "; "))
	r.OK = len(got) == 0 && status.Get("200") == 8 && !leak && slowest < 10*time.Second
	return r
}

// Item 2 (read side): a unit with thousands of stored events; the public
// answers stay small and six concurrent explains keep the node's memory
// bounded.
func (c *checker) atkBoundedReads(n *node) row {
	const ip, hours, perHour = "203.0.113.40", 12, 500
	r := row{Scenario: "Bounded public reads (13.2)",
		Faults: "one unit with thousands of stored events (more than one page of anything)"}
	// Events spread over hours (the store keeps 500 per unit per hour);
	// the intake takes at most 4 batches at once.
	now := time.Now().Add(-time.Duration(hours) * time.Hour)
	acked := 0
	for h := range hours {
		var b forward.Batch
		for i := range perHour {
			b.Events = append(b.Events, store.Event{ID: store.NewEventID(), Time: now.Add(time.Duration(h)*time.Hour + time.Duration(i)*time.Second),
				ClientIP: netip.MustParseAddr(ip), Kind: store.KindCallout, HELO: "probe.example.net", TrapDomain: "trap.blowback.test",
				Rcpts: []string{fmt.Sprintf("c%d@trap.blowback.test", i)}, MessageID: msgID("bulk")})
		}
		body, _ := json.Marshal(b)
		if code, _, _ := do(httpFrom("127.0.0.1"), "POST", "http://"+n.http+forward.Path, "Bearer "+c.nodeTok, body, nil); code == 200 {
			acked += perHour
		}
	}
	// Plus the callouts one source pipelines over SMTP (issue 13.2's attack).
	for range 2 {
		conn, err := dialFrom("127.0.81.1", n.smtp)
		if err != nil {
			continue
		}
		_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
		writeStr(conn, "EHLO probe.example.net\r\n"+strings.Repeat("MAIL FROM:<>\r\nRCPT TO:<p@trap.blowback.test>\r\nRSET\r\n", 2000))
		io.Copy(io.Discard, conn)
		conn.Close()
	}
	waitLookup(n, ip, func(l lookupView) bool { return l.total() > 0 })
	base := "http://" + n.http
	size, shown := map[string]int{}, map[string]int{}
	var slowest time.Duration
	var codes tally.Counter
	for _, u := range []struct{ name, path, auth string }{
		{"lookup page", "/lookup?ip=" + ip, ""}, {"lookup API", "/api/v1/lookup/" + ip, ""},
		{"public explain", "/api/v1/explain/" + ip, ""}, {"admin explain", "/api/v1/explain/" + ip, "Bearer " + c.adminTok},
		{"explain limit=1000000", "/api/v1/explain/" + ip + "?limit=1000000", "Bearer " + c.adminTok},
		{"callout source explain", "/api/v1/explain/127.0.81.1", ""},
	} {
		code, body, d := timedGet("127.0.81.9", base+u.path, u.auth)
		codes.Add(strconv.Itoa(code))
		size[u.name] = len(body)
		slowest = max(slowest, d)
		if strings.Contains(u.name, "explain") {
			var x struct {
				Evidence []json.RawMessage `json:"evidence"`
			}
			json.Unmarshal([]byte(body), &x)
			shown[u.name] = len(x.Evidence)
		}
	}
	// Six concurrent explains (the 700 MB), twice.
	hwm0 := peakRSS(n)
	var wg sync.WaitGroup
	var conc tally.Counter
	for range 2 {
		for range 6 {
			wg.Go(func() {
				code, _, _ := timedGet("127.0.81.9", base+"/api/v1/explain/"+ip+"?limit=1000000", "Bearer "+c.adminTok)
				conc.Add(strconv.Itoa(code))
			})
		}
		wg.Wait()
	}
	hwm := peakRSS(n)
	// Public answers: what the page shows (tens of events); an admin
	// page: at most 1000 events (listing's explain limit).
	var parts []string
	public := 0
	for _, k := range []string{"lookup page", "lookup API", "public explain", "admin explain", "explain limit=1000000", "callout source explain"} {
		p := fmt.Sprintf("%s %.0f KB", k, float64(size[k])/1000)
		if e, ok := shown[k]; ok {
			p += fmt.Sprintf(" (%d events)", e)
		}
		parts = append(parts, p)
		if k != "explain limit=1000000" {
			public = max(public, size[k])
		}
	}
	r.Load = fmt.Sprintf("%d events acked for %s over %d hours via the intake; 2 connections × 2000 pipelined MAIL/RCPT/RSET from 127.0.81.1; 12 admin explains, 6 at a time", acked, ip, hours)
	r.Events = strings.Join(parts, ", ")
	r.Errors = fmt.Sprintf("answers: %s, concurrent: %s; slowest single read %v; node peak RSS %d MiB before, %d MiB after the concurrent explains",
		codes.String(), conc.String(), slowest.Round(time.Millisecond), hwm0>>20, hwm>>20)
	r.OK = acked > 0 && codes.Get("200") == 6 && conc.Get("200") == 12 && public < 100<<10 && shown["explain limit=1000000"] <= 1000 && hwm < 400<<20
	return r
}

// Item 3: one client opens 300 TCP connections and keeps them busy;
// another client and the allow_transfer secondary are still served.
func (c *checker) atkDNSTCPSlots(n *node) row {
	const attacker, conns = "127.0.82.1", 300
	r := row{Scenario: "DNS TCP slots, one client (13.3)",
		Load:   fmt.Sprintf("%d TCP connections from %s, one query each on open and again 2 s later (tcp_idle 3s)", conns, attacker),
		Faults: "one address trying to hold every TCP slot (max_tcp_conns 256)"}
	var mu sync.Mutex
	var held []*dns.Conn
	var first tally.Counter
	var wg sync.WaitGroup
	ask := func(dc *dns.Conn) string {
		m := new(dns.Msg)
		m.SetQuestion(testPoint, dns.TypeA)
		_ = dc.SetDeadline(time.Now().Add(3 * time.Second))
		if err := dc.WriteMsg(m); err != nil {
			return "write error"
		}
		if _, err := dc.ReadMsg(); err != nil {
			return "closed by server"
		}
		return "answered"
	}
	for range conns {
		wg.Go(func() {
			nc, err := dialFrom(attacker, n.dns)
			if err != nil {
				first.Add("dial error")
				return
			}
			dc := &dns.Conn{Conn: nc}
			res := ask(dc)
			first.Add(res)
			if res == "answered" {
				mu.Lock()
				held = append(held, dc)
				mu.Unlock()
			} else {
				nc.Close()
			}
		})
	}
	wg.Wait()
	// While they are held: another client and the secondary.
	otherErr := goodAnswer("127.0.83.1", n.dns, true)
	xfrRcode, xfrRecords, xfrErr := axfr("127.0.0.77", n.dns)
	time.Sleep(2 * time.Second)
	var again tally.Counter
	for _, dc := range held {
		wg.Go(func() { again.Add(ask(dc)) })
	}
	wg.Wait()
	other2 := goodAnswer("127.0.83.2", n.dns, true)
	for _, dc := range held {
		dc.Close()
	}
	m, _ := n.metrics()
	r.Events = "-"
	r.Errors = fmt.Sprintf("attacker's connections: %s; 2 s later: %s; other client over TCP while held: %s, later %s; AXFR from 127.0.0.77: %s, %d records %s; rejected per_client=%.0f max_conns=%.0f",
		first.String(), again.String(), errStr(otherErr), errStr(other2), xfrRcode, xfrRecords, errStr(xfrErr),
		m[`blowback_dns_tcp_rejected_total{reason="per_client"}`], m[`blowback_dns_tcp_rejected_total{reason="max_conns"}`])
	r.OK = first.Get("answered") > 0 && first.Get("answered") <= 64 && otherErr == nil && other2 == nil &&
		xfrErr == nil && xfrRcode == "NOERROR" && xfrRecords > 0
	return r
}

// fdCount is the number of open file descriptors of the node.
func fdCount(n *node) int {
	es, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", n.cmd.Process.Pid))
	if err != nil {
		return -1
	}
	return len(es)
}

// Item 5: thousands of idle keep-alive HTTP connections from many /24s;
// a fresh client still gets its page, SMTP and DNS still answer, and the
// node's descriptors stay bounded.
func (c *checker) atkHTTPConns(n *node) row {
	const nets, per = 100, 30 // 3000 connections, under the per-/24 cap of 64
	r := row{Scenario: "HTTP idle keep-alive flood (13.5)",
		Load:   fmt.Sprintf("%d keep-alive connections from %d /24s (%d each), one GET /healthz each, then idle", nets*per, nets, per),
		Faults: "more idle connections than max_conns (2048)"}
	fd0 := fdCount(n)
	var mu sync.Mutex
	var held []net.Conn
	var res tally.Counter
	var wg sync.WaitGroup
	sem := make(chan struct{}, 200)
	for i := range nets * per {
		src := fmt.Sprintf("127.20.%d.1", i/per)
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			conn, err := dialFrom(src, n.http)
			if err != nil {
				res.Add("dial error")
				return
			}
			_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
			if !writeStr(conn, "GET /healthz HTTP/1.1\r\nHost: relcheck\r\n\r\n") {
				res.Add("write error")
				conn.Close()
				return
			}
			l, err := bufio.NewReader(conn).ReadString('\n')
			if err != nil {
				res.Add("closed without a reply")
				conn.Close()
				return
			}
			res.Add(strings.TrimSpace(l))
			_ = conn.SetDeadline(time.Time{})
			mu.Lock()
			held = append(held, conn)
			mu.Unlock()
		})
	}
	wg.Wait()
	fdPeak := fdCount(n)
	// Still held open by the server (a read sees no EOF at once)?
	open := 0
	for _, h := range held {
		_ = h.SetReadDeadline(time.Now().Add(time.Millisecond))
		if _, err := h.Read(make([]byte, 1)); err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				open++
			}
		}
	}
	fresh, _, d := timedGet("127.21.0.1", "http://"+n.http+"/lookup?ip=198.18.60.1", "")
	_, smtpFirst := firstLine("127.21.0.2", n.smtp, nil)
	dnsErr := goodAnswer("127.21.0.3", n.dns, true)
	for _, h := range held {
		h.Close()
	}
	m, _ := n.metrics()
	r.Events = "-"
	r.Errors = fmt.Sprintf("flood replies: %s; still open at the end %d; node fds %d before, %d with the flood held; fresh client GET /lookup: %d in %v; SMTP greeting %s; DNS over TCP %s; refused total=%.0f per_client=%.0f",
		res.String(), open, fd0, fdPeak, fresh, d.Round(time.Millisecond), smtpFirst, errStr(dnsErr),
		m[`blowback_web_conns_refused_total{reason="total"}`], m[`blowback_web_conns_refused_total{reason="per_client"}`])
	r.OK = fresh == 200 && smtpFirst == "220" && dnsErr == nil && fdPeak > 0 && fdPeak < 2048+200 && open <= 2048
	return r
}

// Item 6: cross-site posts to the JSON APIs.
func (c *checker) atkCSRF(n *node) row {
	const target = "198.18.52.1"
	r := row{Scenario: "CSRF on the JSON APIs (13.6)",
		Load:   "POST /api/v1/delist and /api/v1/admin/list as a form on another site would",
		Faults: "Content-Type text/plain and form-urlencoded; foreign Origin; Sec-Fetch-Site cross-site; Origin null"}
	lc := c.adminList(n, target)
	body := fmt.Sprintf(`{"ip":%q,"reason":"csrf"}`, target)
	var parts []string
	ok := lc == 200
	for _, k := range []struct {
		what string
		hdr  map[string]string
		want int
	}{
		{"text/plain", map[string]string{"Content-Type": "text/plain"}, 415},
		{"form-urlencoded", map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, 415},
		{"JSON, Origin https://evil.example", map[string]string{"Origin": "https://evil.example"}, 403},
		{"JSON, Origin null", map[string]string{"Origin": "null"}, 403},
		{"JSON, Sec-Fetch-Site cross-site", map[string]string{"Sec-Fetch-Site": "cross-site"}, 403},
	} {
		code, _, _ := do(httpFrom("127.0.86.1"), "POST", "http://"+n.http+"/api/v1/delist", "", []byte(body), k.hdr)
		parts = append(parts, fmt.Sprintf("delist %s→%d", k.what, code))
		ok = ok && code == k.want
	}
	code, _, _ := do(httpFrom("127.0.86.1"), "POST", "http://"+n.http+"/api/v1/admin/list", "Bearer "+c.adminTok,
		[]byte(`{"ip":"198.18.52.2","reason":"csrf"}`), map[string]string{"Content-Type": "text/plain"})
	parts = append(parts, fmt.Sprintf("admin list text/plain→%d", code))
	ok = ok && code == 415
	l, _ := lookup(n, target)
	r.Events = "-"
	r.Errors = fmt.Sprintf("%s; %s still listed: %v", strings.Join(parts, "; "), target, l.Listed)
	r.OK = ok && l.Listed
	return r
}

// Item 7: delisting what is not listed charges nothing.
func (c *checker) atkDelistBudget(n *node) row {
	const req, target = "127.0.84.1", "198.18.51.1"
	r := row{Scenario: "Delist budget (13.7)",
		Load:   "9 delists from one requester (allowance 5/h): 3 × an unlisted address, 3 × 127.0.0.2, 3 × an allowlisted address; then that unlisted address is listed and delisted",
		Faults: "delists that would use up the requester's and the address's allowance"}
	var unl, tp, allow tally.Counter
	for range 3 {
		code, _ := publicDelist(n, req, target, "not listed", nil)
		unl.Add(strconv.Itoa(code))
		code, _ = publicDelist(n, req, "127.0.0.2", "test point", nil)
		tp.Add(strconv.Itoa(code))
		code, _ = publicDelist(n, req, "198.18.7.5", "allowlisted", nil)
		allow.Add(strconv.Itoa(code))
	}
	lc := c.adminList(n, target)
	realCode, _ := publicDelist(n, req, target, "a real delist", nil)
	tpCodes := listedCodes(n.dns, netip.MustParseAddr("127.0.0.2"))
	r.Events = "-"
	r.Errors = fmt.Sprintf("unlisted: %s; 127.0.0.2: %s; allowlisted: %s; then listed (admin %d) and delisted by the same requester: %d; 127.0.0.2 still answers %s",
		unl.String(), tp.String(), allow.String(), lc, realCode, strings.Join(tpCodes, " "))
	r.OK = unl.Get("409") == 3 && tp.Get("409") == 3 && allow.Get("409") == 3 && lc == 200 && realCode == 200 && len(tpCodes) == 4
	return r
}

// Item 8: text from the public never reaches a person raw.
func (c *checker) atkUntrustedText(n *node) row {
	const target, delister = "198.18.53.1", "127.0.85.1"
	marker := "RELCHECK" + randHex(4)
	reason := "<script>alert(1)</script> " + marker + " \x1b[2J\x1b[1;1Hfake admin line\r\n"
	r := row{Scenario: "Untrusted text (13.8)",
		Load:   "a public delist with a hostile reason; /lookup?done=<text>; public explain of a delisted and of an allowlisted address; `blowback explain` of the delisted one",
		Faults: "HTML, ESC [2J (clear screen), cursor moves and CR/LF in the delist reason; arbitrary done= text"}
	lc := c.adminList(n, target)
	dc, _ := publicDelist(n, delister, target, reason, nil)
	base := "http://" + n.http
	var leaks []string
	pc, page, _ := timedGet("127.0.85.9", base+"/lookup?ip="+target, "")
	if strings.Contains(page, marker) {
		leaks = append(leaks, "reason on the lookup page")
	}
	dn, done, _ := timedGet("127.0.85.9", base+"/lookup?ip="+target+"&done=INJECTED"+marker+"%3Cb%3E", "")
	if strings.Contains(done, "INJECTED") {
		leaks = append(leaks, "done= text on the page")
	}
	_, api, _ := timedGet("127.0.85.9", base+"/api/v1/lookup/"+target, "")
	if strings.Contains(api, marker) {
		leaks = append(leaks, "reason in the lookup API")
	}
	_, pub, _ := timedGet("127.0.85.9", base+"/api/v1/explain/"+target, "")
	if strings.Contains(pub, marker) || strings.Contains(pub, delister) {
		leaks = append(leaks, "reason or delister address in the public explain")
	}
	_, pubAllow, _ := timedGet("127.0.85.9", base+"/api/v1/explain/198.18.7.5", "")
	_, admAllow, _ := timedGet("127.0.85.9", base+"/api/v1/explain/198.18.7.5", "Bearer "+c.adminTok)
	if strings.Contains(pubAllow, "198.18.7.0/24") {
		leaks = append(leaks, "allowlist in the public explain")
	}
	// The admin's CLI against the running node.
	cmd := exec.Command(c.bin, "explain", target, "--data", n.dir, "--server", base, "--token", c.adminTok)
	out, cliErr := cmd.Output()
	esc := strings.Count(string(out), "\x1b")
	crs := strings.Count(string(out), "\r")
	escaped := strings.Contains(string(out), marker) && strings.Contains(string(out), `\x1b[2J`)
	r.Events = "-"
	r.Errors = fmt.Sprintf("list %d, hostile delist %d; page %d, done= page %d; leaks: %d %s; admin explain names the allowlist: %v; blowback explain: %d bytes, raw ESC %d, raw CR %d, reason shown escaped %v, err %s",
		lc, dc, pc, dn, len(leaks), strings.Join(leaks, "; "), strings.Contains(admAllow, "198.18.7.0/24"), len(out), esc, crs, escaped, errStr(cliErr))
	r.OK = lc == 200 && dc == 200 && pc == 200 && dn == 200 && len(leaks) == 0 && strings.Contains(admAllow, "198.18.7.0/24") && cliErr == nil && esc == 0 && crs == 0 && escaped
	return r
}

// Item 10: IPv6 requesters share one allowance per /64.
func (c *checker) atkDelist64(n *node) row {
	r := row{Scenario: "Delist limiter per IPv6 /64 (13.10)",
		Load:   "20 public delists of 20 listed addresses from 20 requesters in 2001:db8:1:2::/64 (via trusted proxy X-Forwarded-For); then one from another /64",
		Faults: "a /64 posing as many requesters (allowance 5 per requester per hour)"}
	var one tally.Counter
	listedOK := 0
	for i := range 20 {
		ip := fmt.Sprintf("198.18.54.%d", i+1)
		if c.adminList(n, ip) == 200 {
			listedOK++
		}
		code, _ := publicDelist(n, "127.0.8.1", ip, "v6 requester", map[string]string{"X-Forwarded-For": fmt.Sprintf("2001:db8:1:2::%x", i+1)})
		one.Add(strconv.Itoa(code))
	}
	c.adminList(n, "198.18.54.100")
	other, _ := publicDelist(n, "127.0.8.1", "198.18.54.100", "v6 requester", map[string]string{"X-Forwarded-For": "2001:db8:1:3::1"})
	r.Events = "-"
	r.Errors = fmt.Sprintf("one /64: %s; another /64: %d (%d/20 listed first)", one.String(), other, listedOK)
	r.OK = listedOK == 20 && one.Get("200") == 5 && one.Get("429") == 15 && other == 200
	return r
}

// Item 11: 127.0.0.1 and other never-listed addresses: page, API and DNS
// agree they are not listed.
func (c *checker) atkNeverListed(n *node) row {
	r := row{Scenario: "Never-listed addresses (13.11)",
		Load:   "5 bounces from 127.0.0.1 over SMTP; intake events for 0.0.0.0, 169.254.1.1, 224.0.0.1, 255.255.255.255",
		Faults: "evidence for addresses that can never be listed"}
	var smtp tally.Counter
	for range 5 {
		smtp.Add(smtpOne("127.0.0.1", n.smtp, "mx.loop.example", "loop@trap.blowback.test"))
	}
	m0, _ := n.metrics()
	never := []string{"0.0.0.0", "169.254.1.1", "224.0.0.1", "255.255.255.255"}
	var b forward.Batch
	for _, ip := range never {
		b.Events = append(b.Events, store.Event{ID: store.NewEventID(), Time: time.Now(), ClientIP: netip.MustParseAddr(ip), Kind: store.KindBounce,
			Rcpts: []string{"x@trap.blowback.test"}, TrapDomain: "trap.blowback.test", HELO: "mx.example"})
	}
	body, _ := json.Marshal(b)
	ic, _, _ := do(httpFrom("127.0.0.1"), "POST", "http://"+n.http+forward.Path, "Bearer "+c.nodeTok, body, nil)
	// A listed address in the same run, so "not listed" is not a node that lists nothing.
	ctrl := smtpOne("127.0.87.1", n.smtp, "mx.ctrl.example", "ctrl@trap.blowback.test")
	_, ctrlListed := waitLookup(n, "127.0.87.1", func(l lookupView) bool { return l.Listed })
	m, _ := n.metrics()
	var bad []string
	for _, ip := range append([]string{"127.0.0.1"}, never...) {
		l, err := lookup(n, ip)
		_, page, _ := timedGet("127.0.87.9", "http://"+n.http+"/lookup?ip="+ip, "")
		codes := listedCodes(n.dns, netip.MustParseAddr(ip))
		if err != nil || l.Listed || l.total() > 0 || strings.Contains(page, "<strong>listed</strong>") || strings.Contains(page, `name="token"`) || len(codes) > 0 {
			bad = append(bad, fmt.Sprintf("%s: API listed %v events %d err %s, page listed %v form %v, DNS %v", ip, l.Listed, l.total(), errStr(err),
				strings.Contains(page, "<strong>listed</strong>"), strings.Contains(page, `name="token"`), codes))
		}
	}
	refused := m["blowback_listing_refused_events_total"] - m0["blowback_listing_refused_events_total"]
	r.Events = fmt.Sprintf("SMTP from 127.0.0.1: %s; intake %d; refused at intake %.0f (+ %.0f from SMTP)", smtp.String(), ic, refused, m0["blowback_listing_refused_events_total"])
	r.Errors = fmt.Sprintf("addresses that page, API or DNS call listed: %d %s; control sender listed: %v (%s)", len(bad), strings.Join(bad, "; "), ctrlListed, ctrl)
	r.OK = len(bad) == 0 && ic == 200 && refused == float64(len(never)) && ctrlListed
	return r
}

// Item 12: `blowback backup` writes an owner-only file whatever the umask.
func (c *checker) atkBackupMode(n *node) row {
	r := row{Scenario: "Backup file mode (13.12)",
		Load:   "`blowback backup` from the running node (umask 000)",
		Faults: "a permissive umask"}
	out := filepath.Join(c.work, "attacks13.backup")
	os.Remove(out)
	cmd := exec.Command("sh", "-c", `umask 000; exec "$0" backup --out "$1" --data "$2" --server "$3" --token "$4"`,
		c.bin, out, n.dir, "http://"+n.http, c.adminTok)
	b, err := cmd.CombinedOutput()
	fi, serr := os.Stat(out)
	mode, size := "-", int64(0)
	if serr == nil {
		mode, size = fi.Mode().Perm().String(), fi.Size()
	}
	r.Events = "-"
	r.Errors = fmt.Sprintf("backup %s, %d KB, mode %s; err %s %s", out, size>>10, mode, errStr(err), strings.TrimSpace(string(b)))
	r.OK = err == nil && serr == nil && size > 0 && fi.Mode().Perm() == 0o600
	return r
}
