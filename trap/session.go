package trap

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/blowback-dnsbl/blowback/classify"
	"github.com/blowback-dnsbl/blowback/store"
)

// session is one SMTP session (from HELO/EHLO, renewed after STARTTLS). It
// follows one transaction at a time (RFC 5321 §3.3: MAIL, RCPT..., DATA) and
// records evidence when the transaction ends: after DATA the classified
// message; without DATA, a callout when the transaction looks like sender
// verification.
type session struct {
	srv  *Server
	conn *smtp.Conn
	tc   *trapConn
	ip   netip.Addr
	helo string

	// mu guards the transaction: go-smtp may call Logout from another
	// goroutine (server Close) while a command runs. Never held across I/O.
	mu        sync.Mutex
	mailSeen  bool
	from      string
	rcpts     []string
	dataTried bool // DATA or BDAT began for this transaction
	callouts  int  // callout events recorded (when there is no trapConn)
}

func (ss *session) recoverPanic(where string, err *error) {
	if r := recover(); r != nil {
		ss.srv.metrics.panics.WithLabelValues("trap").Inc()
		ss.srv.log.Error("panic in smtp session", "where", where, "panic", r, "client", ss.ip)
		if err != nil {
			*err = errTemporary
		}
	}
}

// fail notes an error reply for the per-connection error limit (the
// listener sees replies itself only before STARTTLS).
func (ss *session) fail(err error) error {
	if ss.tc != nil {
		ss.tc.noteError()
	}
	return err
}

// Mail implements smtp.Session. A MAIL without RSET ends the previous
// transaction.
func (ss *session) Mail(from string, _ *smtp.MailOptions) (err error) {
	defer ss.recoverPanic("mail", &err)
	ss.endTransaction("mail")
	ss.mu.Lock()
	defer ss.mu.Unlock()
	ss.mailSeen = true
	ss.from = from
	return nil
}

// Rcpt implements smtp.Session: only addresses at a trap domain are
// accepted, so nothing can ever be relayed.
func (ss *session) Rcpt(to string, _ *smtp.RcptOptions) (err error) {
	defer ss.recoverPanic("rcpt", &err)
	if strings.ContainsAny(to, " \t\r\n\x00") {
		return ss.fail(errBadAddr)
	}
	if _, ok := ss.srv.trapDomain(to); !ok {
		ss.srv.metrics.relayDenied.Inc()
		return ss.fail(errRelay)
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	ss.rcpts = append(ss.rcpts, to)
	return nil
}

// trapDomain returns the domain of addr if it is a trap domain. The domain
// is what follows the local part (quoted local parts may hold '@'), so
// "x@evil.example@trap" is not a trap address.
func (s *Server) trapDomain(addr string) (string, bool) {
	_, dom, ok := splitAddress(addr)
	if !ok {
		return "", false
	}
	d := normDomain(dom)
	return d, s.domains[d]
}

// splitAddress splits local@domain, the local part being a dot-string or a
// quoted string (RFC 5321 §4.1.2).
func splitAddress(addr string) (local, domain string, ok bool) {
	i := 0
	if strings.HasPrefix(addr, `"`) {
		for i = 1; i < len(addr); i++ {
			if addr[i] == '\\' {
				i++
				continue
			}
			if addr[i] == '"' {
				break
			}
		}
		i++
		if i > len(addr) {
			return "", "", false
		}
	}
	at := strings.IndexByte(addr[i:], '@')
	if at < 0 {
		return "", "", false
	}
	at += i
	local, domain = addr[:at], addr[at+1:]
	if local == "" || domain == "" || strings.IndexByte(domain, '@') >= 0 {
		return "", "", false
	}
	return local, domain, true
}

// Data implements smtp.Session: read the message (up to KeepBytes kept, the
// rest counted), classify it, commit the evidence, and only then answer.
func (ss *session) Data(r io.Reader) (err error) {
	defer ss.recoverPanic("data", &err)
	start := time.Now()
	ss.mu.Lock()
	ss.dataTried = true
	env := classify.Envelope{MailFrom: ss.from, Null: ss.from == "", Known: true, Rcpts: append([]string(nil), ss.rcpts...)}
	ss.mu.Unlock()
	// The DATA transfer has its own deadline (RFC 5321 §4.5.3.2.6), an idle
	// timeout per read and a minimum rate (trapConn.beginData); go-smtp
	// resets the per-command deadline at the next command.
	if ss.tc != nil {
		ss.tc.beginData()
	} else {
		_ = ss.conn.Conn().SetReadDeadline(time.Now().Add(ss.srv.cfg.DataTimeout))
	}
	raw, size, err := readBounded(r, ss.srv.cfg.KeepBytes)
	if ss.tc != nil {
		ss.tc.endData()
	}
	if err != nil {
		var se *smtp.SMTPError
		switch {
		case errors.As(err, &se) && se.Code == 552:
			ss.srv.metrics.messages.WithLabelValues("too_big").Inc()
			ss.srv.metrics.limitHits.WithLabelValues(limitMessageSize).Inc()
			return ss.fail(errTooBig)
		case errors.Is(err, smtp.ErrTooLongLine):
			ss.srv.metrics.messages.WithLabelValues("line_too_long").Inc()
			ss.srv.metrics.limitHits.WithLabelValues(limitLineLength).Inc()
			return ss.fail(errLineTooLong)
		}
		ss.srv.metrics.messages.WithLabelValues("aborted").Inc()
		return ss.fail(errTemporary)
	}
	env = ss.fillEnvelope(env)
	res := ss.srv.classify(raw, env)
	ev := ss.event(res, env.MailFrom, env.Rcpts)
	if res.Recovered {
		// A classifier bug: the message is stored as "other" with the
		// signal "classifier-panic"; count it, say so, and keep the
		// message for a look whatever the store keeps of it.
		ss.srv.metrics.panics.WithLabelValues(panicClassify).Inc()
		file, qerr := ss.srv.quarantine(ev.ID, raw)
		ss.srv.log.Error("classifier panic recovered", "id", ev.ID, "client", ss.ip, "size", size,
			"quarantine", file, "quarantine_err", qerr)
	}
	ev.Size = size
	if int64(len(raw)) < size {
		ev.Signals = append(append([]string(nil), ev.Signals...), "raw-truncated")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := ss.srv.sink.Ingest(ctx, ev, raw); err != nil {
		ss.srv.log.Error("commit evidence", "err", err, "client", ss.ip)
		ss.srv.metrics.messages.WithLabelValues("error").Inc()
		if errors.Is(err, store.ErrDiskFull) { // RFC 5321 §4.2.2 452, RFC 3463 X.3.1
			return ss.fail(errStorageFull)
		}
		return ss.fail(errTemporary)
	}
	ss.srv.metrics.messages.WithLabelValues("accepted").Inc()
	ss.srv.metrics.classified.WithLabelValues(ev.Kind.String()).Inc()
	ss.srv.metrics.countMTA(res)
	ss.srv.metrics.commitSeconds.Observe(time.Since(start).Seconds())
	ss.srv.log.Debug("evidence committed", "id", ev.ID, "client", ss.ip, "kind", ev.Kind, "subkind", ev.SubKind)
	if ss.srv.cfg.RejectAfterData {
		return errRejected
	}
	return nil
}

// readBounded reads r to the end, keeping the first keep bytes; size is the
// whole length.
func readBounded(r io.Reader, keep int64) (raw []byte, size int64, err error) {
	var buf bytes.Buffer
	n, err := io.Copy(&buf, io.LimitReader(r, keep))
	if err != nil {
		return nil, n, err
	}
	rest, err := io.Copy(io.Discard, r)
	return buf.Bytes(), n + rest, err
}

// event builds the evidence record of the current transaction. The client
// address is the TCP peer or the source a trusted proxy gave, never a header.
func (ss *session) event(res classify.Result, from string, rcpts []string) *store.Event {
	var dom string
	for _, r := range rcpts {
		if d, ok := ss.srv.trapDomain(r); ok {
			dom = d
			break
		}
	}
	_, isTLS := ss.conn.TLSConnectionState()
	helo := ss.conn.Hostname() // EHLO may be repeated (after STARTTLS)
	if helo == "" {
		helo = ss.helo
	}
	return &store.Event{
		ID: store.NewEventID(), Time: ss.srv.now().UTC(), Node: ss.srv.cfg.Node,
		ClientIP: ss.ip, HELO: helo, MailFrom: from, Rcpts: rcpts,
		TrapDomain: dom, TLS: isTLS, Kind: res.Kind, SubKind: res.SubKind, Signals: res.Signals,
		MessageID: res.MessageID, From: res.From, Subject: res.Subject, Headers: res.Headers,
		DSN: res.DSN, Original: res.Original, TrapField: res.TrapField, MTA: res.MTA,
	}
}

// endTransaction closes the current transaction. One that reached RCPT for
// a trap address but began no DATA is a sender-verification probe (callout)
// when its reverse-path is one a callout uses (null, postmaster,
// double-bounce: Postfix address_verify_sender, Exim's default) or when it
// tried a random local part first (Exim callout/random). One event per
// transaction, whatever ends it.
func (ss *session) endTransaction(why string) {
	ss.mu.Lock()
	from, rcpts, pending := ss.from, ss.rcpts, ss.mailSeen && !ss.dataTried && len(ss.rcpts) > 0
	ss.mailSeen, ss.from, ss.rcpts, ss.dataTried = false, "", nil, false
	ss.mu.Unlock()
	if !pending {
		return
	}
	signals := []string{"no-data:" + why}
	sub := "rcpt-without-data"
	callout := false
	if who := calloutSenderKind(from); who != "" {
		signals = append(signals, "callout-sender:"+who)
		callout = true
	}
	if randomRcpt(rcpts) {
		signals = append(signals, "random-local-part")
		sub = "random-local-part"
		callout = true
	}
	if !callout {
		ss.srv.metrics.abandoned.Inc()
		return
	}
	// One callout event per connection is plenty: a client pipelining
	// MAIL/RCPT/RSET would otherwise write one per transaction (tens of
	// thousands a minute). The others are counted, not stored.
	if !ss.takeCallout() {
		ss.srv.metrics.limitHits.WithLabelValues(limitCallouts).Inc()
		return
	}
	res := classify.Result{Kind: store.KindCallout, SubKind: sub, Signals: signals}
	ev := ss.event(res, from, rcpts)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := ss.srv.sink.Ingest(ctx, ev, nil); err != nil {
		ss.srv.log.Error("commit callout evidence", "err", err, "client", ss.ip)
		return
	}
	ss.srv.metrics.classified.WithLabelValues(store.KindCallout.String()).Inc()
	ss.srv.log.Debug("callout recorded", "id", ev.ID, "client", ss.ip, "why", why)
}

// takeCallout reports whether this connection may still record a callout
// (Config.MaxCalloutsPerConn), and counts it.
func (ss *session) takeCallout() bool {
	if ss.tc != nil {
		return ss.tc.takeCallout(ss.srv.cfg.MaxCalloutsPerConn)
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.callouts >= ss.srv.cfg.MaxCalloutsPerConn {
		return false
	}
	ss.callouts++
	return true
}

// CalloutSender reports whether a reverse-path is one that sender
// verification uses: the null sender, postmaster, or a double-bounce address.
func CalloutSender(from string) bool { return calloutSenderKind(from) != "" }

func calloutSenderKind(from string) string {
	if from == "" {
		return "null"
	}
	local := strings.ToLower(from)
	if at := strings.LastIndexByte(local, '@'); at >= 0 {
		local = local[:at]
	}
	switch {
	case local == "<>":
		return "null"
	case local == "postmaster":
		return "postmaster"
	case local == "mailer-daemon":
		return "mailer-daemon"
	case strings.HasPrefix(local, "double-bounce"): // Postfix $double_bounce_sender
		return "double-bounce"
	case strings.HasPrefix(local, "callout") || strings.HasPrefix(local, "verify"):
		return "verify"
	}
	return ""
}

// randomRcpt reports whether a recipient has the local part of Exim's
// random test ("$primary_hostname-$tod_epoch-testing", the default
// callout_random_local_part), tried before the real address.
func randomRcpt(rcpts []string) bool {
	for _, r := range rcpts {
		if local, _, ok := splitAddress(r); ok && eximRandom(strings.ToLower(local)) {
			return true
		}
	}
	return false
}

func eximRandom(local string) bool {
	rest, ok := strings.CutSuffix(local, "-testing")
	if !ok {
		return false
	}
	i := strings.LastIndexByte(rest, '-')
	if i <= 0 {
		return false
	}
	epoch := rest[i+1:]
	return len(epoch) >= 9 && len(epoch) <= 11 && strings.Trim(epoch, "0123456789") == ""
}

// Reset implements smtp.Session (RSET, and go-smtp after each DATA, at a
// repeated EHLO and after STARTTLS).
func (ss *session) Reset() {
	defer ss.recoverPanic("reset", nil)
	ss.endTransaction("rset")
}

// Logout implements smtp.Session: QUIT, a dropped connection, a timeout,
// a limit, or the server stopping.
func (ss *session) Logout() (err error) {
	defer ss.recoverPanic("logout", &err)
	why := "logout"
	if ss.tc != nil {
		if r := ss.tc.endReason(); r != "" {
			why = r
		}
	}
	ss.endTransaction(why)
	return nil
}
