package selftest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/blowback-dnsbl/blowback/internal/lifecycle"
	"github.com/blowback-dnsbl/blowback/store"
)

// run is one test from lookup to verdict.
func (t *Tester) run(ts *test) {
	defer t.wg.Done()
	defer func() {
		if r := recover(); r != nil {
			t.metrics.panics.Inc()
			t.log.Error("panic in self-test", "panic", r, "id", ts.ID)
			t.finish(ts, Error, "Internal error; the test stopped.")
		}
	}()
	ctx, cancel := lifecycle.StopContext(t.stop)
	defer cancel()
	hosts, addrs, err := t.resolve(ctx, ts.Domain)
	t.update(ts, func(r *Result) { r.MX = hosts })
	if err != nil {
		t.finish(ts, Error, err.Error()+".")
		return
	}
	t.mu.Lock()
	var free []netip.Addr
	for _, a := range addrs {
		if t.limMX.Allowed(a, t.now()) {
			free = append(free, a)
		}
	}
	t.mu.Unlock()
	if len(free) == 0 {
		t.metrics.requests.WithLabelValues("rate_limited").Inc()
		t.finish(ts, Error, "The mail servers of "+ts.Domain+" were tested too often in the last hour; try again later.")
		return
	}
	t.update(ts, func(r *Result) { r.Summary = "Sending the probe." })
	outcome, at := t.probe(ctx, ts, free)
	t.metrics.probes.WithLabelValues(outcome).Inc()
	wait := t.cfg.Grace
	if outcome == ProbeAccepted {
		wait = t.cfg.Watch
	}
	till := t.now().Add(wait).UTC()
	t.update(ts, func(r *Result) {
		r.Probe, r.ProbedAt = outcome, at
		if outcome == ProbeAccepted || outcome == ProbeRejectedRcpt || outcome == ProbeRejectedData {
			r.WatchTill = &till
			r.Summary = "Probe " + outcomeText(outcome) + "; watching for a bounce, reply or callout until " + till.Format("15:04:05 UTC") + "."
		}
	})
	switch outcome {
	case ProbeUnreachable:
		t.finish(ts, Error, "No mail server of "+ts.Domain+" could be reached on port "+strconv.Itoa(t.cfg.SMTPPort)+".")
		return
	case ProbeTempFailure:
		t.finish(ts, Inconclusive, "The server answered with a temporary failure (greylisting?); nothing was delivered. Try again later.")
		return
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case <-ts.reply:
		t.finish(ts, Fail, "")
		return
	case <-timer.C:
	case <-ctx.Done():
		t.finish(ts, Error, "The test was stopped (server shutdown).")
		return
	}
	if outcome == ProbeAccepted {
		t.finish(ts, Pass, fmt.Sprintf("The server accepted mail for a non-existent recipient, but nothing came back within %s. "+
			"Rejecting unknown recipients at RCPT is still better: a later bounce would be backscatter.", humanDur(wait)))
		return
	}
	t.finish(ts, Pass, "The server "+outcomeText(outcome)+" and sent nothing back: no backscatter.")
}

func outcomeText(o string) string {
	switch o {
	case ProbeRejectedRcpt:
		return "rejected the unknown recipient during the SMTP session (at RCPT TO)"
	case ProbeRejectedData:
		return "rejected the message during the SMTP session (after DATA)"
	case ProbeAccepted:
		return "accepted"
	case ProbeTempFailure:
		return "got a temporary failure"
	}
	return "could not be delivered"
}

func humanDur(d time.Duration) string {
	if d >= time.Minute && d%time.Minute == 0 {
		return strconv.Itoa(int(d/time.Minute)) + " min"
	}
	return d.String()
}

// probe sends the one probe to the first address that takes a
// conversation up to RCPT; it returns the outcome and the address.
func (t *Tester) probe(ctx context.Context, ts *test, addrs []netip.Addr) (string, string) {
	for _, a := range addrs {
		t.mu.Lock()
		ok := t.limMX.Take(a, t.now())
		t.mu.Unlock()
		if !ok {
			continue
		}
		addr := netip.AddrPortFrom(a, uint16(t.cfg.SMTPPort)).String()
		outcome, err := t.session(ctx, ts, addr)
		if err != nil {
			t.log.Debug("probe", "id", ts.ID, "addr", addr, "err", err)
		}
		if outcome != ProbeUnreachable {
			return outcome, addr
		}
	}
	return ProbeUnreachable, ""
}

// session is one SMTP conversation; it returns ProbeUnreachable when the
// server could not be asked (the next address is tried).
func (t *Tester) session(ctx context.Context, ts *test, addr string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, t.cfg.SessionTimeout)
	defer cancel()
	d := net.Dialer{Timeout: t.cfg.DialTimeout}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		t.step(ts, addr, "connect", err.Error())
		return ProbeUnreachable, err
	}
	stopWatch := context.AfterFunc(ctx, func() { conn.Close() }) // the whole session is bounded
	defer stopWatch()
	c := smtp.NewClient(conn)
	c.CommandTimeout = t.cfg.CommandTimeout
	c.SubmissionTimeout = t.cfg.CommandTimeout
	defer c.Close()
	reply := func(cmd string, err error) {
		if err == nil {
			t.step(ts, addr, cmd, "accepted")
			return
		}
		t.step(ts, addr, cmd, clip(err.Error(), 300))
	}
	if err := c.Hello(t.cfg.HELO); err != nil {
		reply("EHLO "+t.cfg.HELO, err)
		if code(err) >= 400 && code(err) < 500 {
			return ProbeTempFailure, err
		}
		return ProbeUnreachable, err
	}
	t.step(ts, addr, "EHLO "+t.cfg.HELO, "accepted")
	if err := c.Mail(ts.sender, nil); err != nil {
		reply("MAIL FROM:<"+ts.Sender+">", err)
		return classify(err, ProbeUnreachable), err
	}
	t.step(ts, addr, "MAIL FROM:<"+ts.Sender+">", "accepted")
	if err := c.Rcpt(ts.rcpt, nil); err != nil {
		reply("RCPT TO:<"+ts.rcpt+">", err)
		c.Quit()
		return classify(err, ProbeRejectedRcpt), err
	}
	t.step(ts, addr, "RCPT TO:<"+ts.rcpt+">", "accepted")
	w, err := c.Data()
	if err != nil {
		reply("DATA", err)
		return classify(err, ProbeRejectedData), err
	}
	io.WriteString(w, t.message(ts))
	if err := w.Close(); err != nil {
		reply("DATA (message)", err)
		return classify(err, ProbeRejectedData), err
	}
	t.step(ts, addr, "DATA (message)", "accepted")
	c.Quit()
	return ProbeAccepted, nil
}

func code(err error) int {
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		return se.Code
	}
	return 0
}

// classify maps an SMTP error to an outcome: 5xx is rej, 4xx a
// temporary failure, anything else (connection lost) unreachable.
func classify(err error, rej string) string {
	switch c := code(err); {
	case c >= 500:
		return rej
	case c >= 400:
		return ProbeTempFailure
	}
	return ProbeUnreachable
}

func (t *Tester) step(ts *test, addr, cmd, reply string) {
	t.update(ts, func(r *Result) {
		if len(r.Steps) < 20 {
			r.Steps = append(r.Steps, Step{Addr: addr, Command: cmd, Reply: reply})
		}
	})
}

func clip(s string, n int) string {
	s = strings.ToValidUTF8(s, "?")
	if len(s) > n {
		s = s[:n] + "…"
	}
	return s
}

// message is the probe: it says what it is.
func (t *Tester) message(ts *test) string {
	now := t.now().UTC()
	page := ""
	if t.cfg.PublicURL != "" {
		page = " at " + strings.TrimSuffix(t.cfg.PublicURL, "/") + "/selftest/" + ts.ID
	}
	body := []string{
		"From: " + t.cfg.ListName + " self-test <" + ts.sender + ">",
		"To: <" + ts.rcpt + ">",
		"Subject: " + t.cfg.ListName + " backscatter self-test for " + ts.Domain,
		"Date: " + now.Format(time.RFC1123Z),
		"Message-ID: <" + ts.ID + "@" + t.cfg.HELO + ">",
		"X-Blowback-Selftest: " + ts.ID,
		"MIME-Version: 1.0",
		"Content-Type: text/plain; charset=us-ascii",
		"",
		"This is a one-off test message from the " + t.cfg.ListName + " backscatter list.",
		"",
		"The operator of " + ts.IP + ", listed for sending backscatter, asked for it",
		"to check the mail servers of " + ts.Domain + page + ".",
		"",
		"The recipient does not exist. A correctly configured server rejects it",
		"during the SMTP session (at RCPT TO) and sends nothing back. If your",
		"server accepted it, it must not send a bounce or an automatic reply to",
		"the sender: that is backscatter.",
		"",
		"This is the only message of this test; no other mail is sent.",
	}
	return strings.Join(body, "\r\n") + "\r\n"
}

// finish records the verdict (once), acts on a pass and stores the
// outcome. The verdict is published only after the delist, so a reader
// that sees "pass" sees what it removed.
func (t *Tester) finish(ts *test, verdict, summary string) {
	t.mu.Lock()
	if ts.finishing {
		t.mu.Unlock()
		return
	}
	ts.finishing = true
	if verdict == Fail && summary == "" {
		summary = "Something came back to the test's sender address: your server sends backscatter. See the replies below and the advice on the lookup page."
		if ts.Probe == ProbeRejectedRcpt || ts.Probe == ProbeRejectedData {
			summary = "The server rejected the probe, but something still came back to the test's sender address (a callout or a reply). See below."
		}
	}
	req, res := ts.req, ts.Result
	t.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var tied bool
	var why string
	delisted := []string{}
	if verdict == Pass {
		tied, why = t.tie(req, res)
		if tied {
			delisted = t.delist(ctx, req, res)
		}
	}
	now := t.now().UTC()
	t.mu.Lock()
	ts.Tied, ts.TieReason, ts.Delisted, ts.Summary = tied, why, delisted, summary
	line := ts.summaryLine(verdict)
	t.mu.Unlock()
	rec := store.SelfTestRecord{ID: res.ID, Started: res.Started, Time: now, Unit: req.Unit, Domain: res.Domain,
		Verdict: verdict, Summary: clip(line, 500), Delisted: len(delisted) > 0}
	if t.rec != nil {
		if err := t.rec.PutSelfTest(ctx, rec); err != nil {
			t.log.Error("store self-test", "err", err)
		}
		if err := t.rec.Audit(ctx, store.AuditEntry{Time: now, Who: "selftest:" + req.Requester, Action: "selftest",
			Target: req.Unit.String(), Reason: verdict + ": " + res.Domain, Detail: clip(summary, 500)}); err != nil {
			t.log.Error("audit self-test", "err", err)
		}
	}
	// Publish: a reader that sees the verdict sees the delist, the
	// record, the audit entry and the counter.
	t.metrics.tests.WithLabelValues(verdict).Inc()
	t.mu.Lock()
	ts.Ended, ts.Verdict, ts.WatchTill = &now, verdict, nil
	t.running--
	t.metrics.running.Set(float64(t.running))
	t.mu.Unlock()
	t.log.Info("self-test finished", "id", res.ID, "domain", res.Domain, "verdict", verdict, "delisted", len(delisted))
}

func (ts *test) summaryLine(verdict string) string {
	s := ts.Domain + ": " + verdict
	if ts.Probe != "" {
		s += ", probe " + outcomeText(ts.Probe)
	}
	if n := len(ts.Replies); n > 0 {
		s += fmt.Sprintf(", %d replies (first: %s)", n, ts.Replies[0].Kind)
	}
	return s
}

// tie says whether the listed address belongs to the tested domain's
// mail system: one of its MX addresses, or a host name in the domain in
// the listing's evidence. Only then does a pass delist it.
func (t *Tester) tie(req Request, res Result) (bool, string) {
	for _, h := range res.MX {
		for _, a := range h.Addrs {
			if pa, err := netip.ParseAddr(a); err == nil && req.Unit.Contains(pa.Unmap()) {
				return true, req.IP.String() + " is an address of the MX host " + h.Host + "."
			}
		}
	}
	for _, h := range req.Hosts {
		h = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(h)), ".")
		if h == res.Domain || strings.HasSuffix(h, "."+res.Domain) {
			return true, "the evidence names the host " + h + ", in " + res.Domain + "."
		}
		for _, m := range res.MX {
			if h != "" && h == m.Host {
				return true, "the evidence names the host " + h + ", an MX host of " + res.Domain + "."
			}
		}
	}
	return false, "Nothing ties " + req.IP.String() + " to " + res.Domain + " (it is not an MX address of the domain, and the evidence names no host in it), so the test cannot remove the listing; use the removal form."
}

// delist removes the listings the pass clears: the tested unit, and listed
// MX addresses of the domain.
func (t *Tester) delist(ctx context.Context, req Request, res Result) []string {
	out := []string{}
	if t.lst == nil {
		return out
	}
	units := []netip.Prefix{req.Unit}
	for _, h := range res.MX {
		for _, a := range h.Addrs {
			if pa, err := netip.ParseAddr(a); err == nil {
				u := store.Unit(pa)
				if u != req.Unit && len(units) < 10 {
					units = append(units, u)
				}
			}
		}
	}
	for i, u := range units {
		if !t.lst.Listed(u.Addr()) {
			continue
		}
		if i > 0 { // another listed MX address: it spends its own daily budget
			t.mu.Lock()
			ok := t.limUnit.Take(u, t.now())
			t.mu.Unlock()
			if !ok {
				continue
			}
		}
		err := t.lst.Delist(ctx, store.Action{Prefix: u, Op: store.OpDelist, Who: "selftest",
			Reason: "self-test " + res.ID + " passed for " + res.Domain + ": " + outcomeText(res.Probe)})
		if err != nil {
			t.log.Error("self-test delist", "unit", u.String(), "err", err)
			continue
		}
		t.metrics.delists.Inc()
		out = append(out, u.String())
	}
	return out
}

// Divert takes ev when it was sent to a test's sender address (a reply to
// our own probe is not evidence) and reports whether it did; for
// listing.Config.Divert, which sees the trap's and forwarded events alike.
// A nil or disabled Tester takes nothing.
func (t *Tester) Divert(ev *store.Event) bool {
	if !t.Enabled() {
		return false
	}
	ts := t.match(ev)
	if ts == nil {
		return false
	}
	t.observe(ts, ev)
	return true
}

// Tap wraps the trap's sink: mail to a test's sender address goes to the
// test (a reply to our own probe is not evidence); everything else goes on.
func (t *Tester) Tap(next Sink) Sink {
	if !t.Enabled() {
		return next
	}
	return tap{t: t, next: next}
}

type tap struct {
	t    *Tester
	next Sink
}

func (p tap) Ingest(ctx context.Context, ev *store.Event, raw []byte) error {
	if ts := p.t.match(ev); ts != nil {
		p.t.observe(ts, ev)
		return nil
	}
	return p.next.Ingest(ctx, ev, raw)
}

// match returns the test whose sender address ev was sent to.
func (t *Tester) match(ev *store.Event) *test {
	for _, r := range ev.Rcpts {
		local, dom, ok := strings.Cut(strings.ToLower(strings.Trim(r, "<> ")), "@")
		if !ok || !strings.HasPrefix(local, localPrefix) || !strings.EqualFold(dom, t.cfg.TrapDomain) {
			continue
		}
		t.mu.Lock()
		ts := t.byLocal[local]
		t.mu.Unlock()
		if ts != nil {
			return ts
		}
	}
	return nil
}

// observe records what came back; backscatter ends the test as failed.
func (t *Tester) observe(ts *test, ev *store.Event) {
	t.metrics.replies.WithLabelValues(ev.Kind.String()).Inc()
	r := Reply{Time: ev.Time.UTC(), Kind: ev.Kind.String(), SubKind: ev.SubKind, ClientIP: ev.ClientIP.String(),
		HELO: clip(ev.HELO, 200), Subject: clip(ev.Subject, 200), MTA: ev.MTA}
	if ev.DSN != nil {
		r.Status = clip(ev.DSN.Status, 20)
	}
	t.update(ts, func(res *Result) {
		if len(res.Replies) < 20 {
			res.Replies = append(res.Replies, r)
		}
	})
	t.log.Info("self-test reply", "id", ts.ID, "kind", ev.Kind.String(), "client", ev.ClientIP.String())
	if ev.Kind.Backscatter() {
		ts.once.Do(func() { close(ts.reply) })
	}
}
