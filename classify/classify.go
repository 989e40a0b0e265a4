package classify

// The classifier: what did the trap receive? A trap address never sent
// mail, so every delivery report, auto-reply, challenge or read receipt it
// gets answers mail that forged it as the sender: backscatter. Feedback
// reports are not backscatter, and spam dressed up as a bounce is not either.
//
// The order of the checks matters (each is in decide):
//  1. feedback reports (RFC 5965 ARF, JMRP, DMARC/TLS reports): not replies to
//     the forged sender at all;
//  2. challenge-response systems, before DSN parsing: Boxbe and others send
//     well-formed RFC 3464 reports;
//  3. read receipts (RFC 8098 MDN);
//  4. fake bounces: an executable at the top level of a report, or a "bounce"
//     with links and no returned message;
//  5. delivery reports: RFC 3464 DSNs anywhere in the MIME tree, then the many
//     non-standard formats by their phrases, weighed like Rspamd's BOUNCE and
//     SpamAssassin's VBounce;
//  6. auto-replies (RFC 3834 §5 Auto-Submitted, vendor markers, subjects),
//     only after delivery reports because Postfix, Exim and Gmail put
//     "Auto-Submitted: auto-replied" on their bounces too.

import (
	"strings"

	"github.com/blowback-dnsbl/blowback/store"
)

// Envelope is what the SMTP session knew about a message. All fields are
// optional: `blowback classify` works from content alone.
type Envelope struct {
	MailFrom string   // reverse-path without brackets; "" is the null sender
	Null     bool     // MAIL FROM:<>
	Known    bool     // the envelope sender is known (false for mailbox files)
	Rcpts    []string // forward-paths

	// TrapDomains are the domains whose addresses are traps; with them the
	// classifier says which field of the message held a trap address
	// (Result.TrapField). Empty: the domains of Rcpts are used.
	TrapDomains []string
}

// Result is what the classifier made of a message.
type Result struct {
	Kind     store.Kind
	SubKind  string
	Signals  []string
	DSN      *store.DSN
	Original store.Original

	MessageID string
	From      string
	Subject   string
	Headers   map[string]string
	TrapField string

	// Vendor names the software that wrote a non-standard report, when a
	// signature told ("qmail", "exchange", "boxbe", ...).
	Vendor string

	// MTA is the software family that produced a backscatter message when
	// its format says so (one of MTAFamilies, lower case), "" when unknown;
	// MTASignal names the mark that said so ("received", "message-id",
	// "header:x-ms-exchange-message-is-ndr", "text:postfix", ...). The
	// signal is also in Signals as "mta:<family>".
	MTA, MTASignal string

	// Recovered is set when the classifier panicked (a bug) and the result
	// is the fallback; callers count it like any recovered panic.
	Recovered bool
}

// Classify decides what a message is. It never fails: unparseable input is
// KindOther with a signal saying why. A panic (a bug) is recovered and
// reported as KindOther with the signal "classifier-panic".
func Classify(msg []byte, env Envelope) (res Result) {
	defer func() {
		if p := recover(); p != nil {
			res = Result{Kind: store.KindOther, SubKind: "error", Signals: []string{"classifier-panic"}, Recovered: true}
		}
	}()
	return classify(msg, env)
}

// classify is Classify without the safety net, for tests and fuzzing.
func classify(msg []byte, env Envelope) Result {
	a := analyze(msg, env)
	a.decide()
	return a.result()
}

// attachment is a leaf part that is not text meant for reading.
type attachment struct {
	name, mediaType string
	returned        bool // inside a returned or attached message
	executable      bool
}

type analysis struct {
	env  Envelope
	w    walker
	root *part
	hdr  header

	fromName, fromAddr, fromLocal, fromDomain string
	subject, subj                             string // decoded; lower case

	notice     string // lower-case, whitespace-collapsed human text outside returned messages, cut at an inline copy
	full       string // notice with the inline copy: for report phrases that may be quoted (forwarded bounces)
	ses        string // notificationType of an Amazon SES/SNS JSON notification, lower case
	noticeRaw  string // the same, original case, uncollapsed (for extraction)
	tailRaw    string // the inline copy of the returned message, if any
	reportType string // report-type of a top-level multipart/report

	dsn       *dsnReport
	dsnNested bool // the only DSN stands inside a returned message
	dsnText   bool // DSN fields were read from text, not a delivery-status part
	mdn       *mdnReport
	arf       *arfReport

	orig     header // header of the returned original
	origKind string // "message/rfc822", "text/rfc822-headers", "inline"
	origBody string // start of the inline copy's body (for nothing but tests)

	avKind      string // "av-notice" or "filter-notice", set by avNotice
	gateway     string // the filter product named by a gateway notice (sophos, proofpoint, ...)
	attachments []attachment
	links       []string // hosts of links in the notice

	ndr, ndrDone bool        // strongNDR's answer, once computed
	nh, fh       *phraseHits // phrase index hits of notice and full, once computed
	lowHdr       map[string]string

	kind    store.Kind
	subKind string
	vendor  string
	signals []string
	seen    map[string]bool
}

// lowerHdr is the first value of an outer field, lower case, computed once.
func (a *analysis) lowerHdr(name string) string {
	if v, ok := a.lowHdr[name]; ok {
		return v
	}
	if a.lowHdr == nil {
		a.lowHdr = map[string]string{}
	}
	v := strings.ToLower(a.hdr.get(name))
	a.lowHdr[name] = v
	return v
}

func (a *analysis) signal(s string) {
	if a.seen == nil {
		a.seen = map[string]bool{}
	}
	if s == "" || a.seen[s] || len(a.signals) >= 40 {
		return
	}
	a.seen[s] = true
	a.signals = append(a.signals, s)
}

func analyze(msg []byte, env Envelope) *analysis {
	a := &analysis{env: env}
	a.root = a.w.parseEntity(msg, 0, false, "text/plain")
	a.hdr = a.root.hdr
	a.fromName, a.fromAddr = parseAddr(decodeWords(a.hdr.get("From")))
	a.fromLocal, a.fromDomain = splitAddr(a.fromAddr)
	a.subject = strings.TrimSpace(decodeWords(a.hdr.get("Subject")))
	a.subj = normText(a.subject)
	if a.root.mediaType == "multipart/report" {
		a.reportType = strings.ToLower(strings.TrimSpace(a.root.params["report-type"]))
	}

	var notice strings.Builder
	a.visit(a.root, &notice, false)
	raw := clip(notice.String(), 2*maxNoticeText)
	cut, tail := splitInlineOriginal(raw, a.orig == nil)
	a.noticeRaw, a.tailRaw = clip(cut, maxNoticeText), clip(tail, maxNoticeText)
	a.notice = normText(cut)
	a.full = a.notice
	if tail != "" {
		a.full = normText(raw)
	}
	a.ses = sesNotification(a.notice)
	if a.orig == nil && tail != "" {
		if h, body := inlineHeaders(tail); len(h) > 0 {
			a.orig, a.origKind, a.origBody = h, "inline", clip(body, 2048)
		}
	}
	if strings.Contains(a.notice, "http") || strings.Contains(a.notice, "www.") {
		a.links = linkHosts(a.noticeRaw)
	}
	if a.w.limited {
		a.signal("mime-limit")
	}
	return a
}

// visit walks the tree once, collecting report parts, the returned original,
// attachments and the human-readable text.
func (a *analysis) visit(p *part, notice *strings.Builder, inOrig bool) {
	switch {
	case p.mediaType == "message/delivery-status" || p.mediaType == "message/global-delivery-status" || p.mediaType == "text/delivery-status":
		if d, ok := parseDSN(p.text); ok {
			if a.dsn == nil || a.dsnNested && !p.returned {
				a.dsn, a.dsnNested = d, p.returned
			}
		}
		return
	case p.mediaType == "message/disposition-notification" || p.mediaType == "message/global-disposition-notification":
		if m, ok := parseMDN(p.text); ok && (a.mdn == nil) && !p.returned {
			a.mdn = m
		}
		return
	case p.mediaType == "message/feedback-report":
		if !p.returned && a.arf == nil {
			a.arf = parseARF(p.text)
		}
		return
	case isMessageType(p.mediaType):
		if len(p.children) > 0 && a.orig == nil && !inOrig {
			a.orig, a.origKind = p.children[0].hdr, p.mediaType
			if p.mediaType == "message/rfc822-headers" || p.mediaType == "message/global-headers" {
				a.origKind = "text/rfc822-headers"
			}
		}
		for _, c := range p.children {
			a.visit(c, notice, true)
		}
		return
	case len(p.children) > 0:
		for _, c := range p.children {
			a.visit(c, notice, inOrig)
		}
		return
	}
	// A leaf.
	textual := strings.HasPrefix(p.mediaType, "text/") || p.mediaType == "application/json"
	if p.filename != "" || !textual {
		at := attachment{name: p.filename, mediaType: p.mediaType, returned: p.returned || inOrig}
		at.executable = isExecutable(at.name, at.mediaType, p.body)
		if len(a.attachments) < 50 && (p.filename != "" || p.mediaType != "text/plain") {
			a.attachments = append(a.attachments, at)
		}
	}
	if textual && !p.returned && !inOrig && notice.Len() < maxNoticeText {
		if p.mediaType == "text/html" && notice.Len() > 0 {
			return // the text/plain alternative was read already
		}
		notice.WriteString(p.text)
		notice.WriteString("\n")
	}
}

func (a *analysis) decide() {
	if len(a.hdr) == 0 && len(strings.TrimSpace(string(a.root.body))) == 0 && len(a.root.children) == 0 {
		a.kind, a.subKind = store.KindOther, "empty"
		a.signal("empty")
		return
	}
	if len(a.hdr) == 0 {
		a.signal("no-header")
	}
	if a.env.Known {
		switch {
		case a.envNull():
			a.signal("env:null-sender")
		case a.envDaemon():
			a.signal("env:daemon-sender")
		case a.envTrapDomain():
			a.signal("env:trap-domain-sender")
		default:
			a.signal("env:sender")
		}
	}
	switch {
	case a.report():
	case a.challenge():
	case a.readReceipt():
	case a.fakeExecutable():
	case a.deliveryReport():
	case a.autoReply():
	case a.listNotice():
	default:
		a.kind, a.subKind = store.KindOther, "unclassified"
		if a.anyExecutable() {
			a.kind, a.subKind = store.KindSpam, "executable-attachment"
			a.signal("attachment:executable")
		}
	}
}

// report: RFC 5965 ARF and other feedback (JMRP, SES complaints, Apple Mail
// unsubscribe) and aggregate reports (RFC 7489 §7.2 DMARC, RFC 8460 TLS-RPT).
func (a *analysis) report() bool {
	set := func(sub, sig string) bool {
		a.kind, a.subKind = store.KindReport, sub
		a.signal(sig)
		return true
	}
	switch {
	case a.reportType == "feedback-report" || a.arf != nil:
		a.signal("report-type:feedback-report")
		sub := "arf"
		if a.arf != nil && a.arf.FeedbackType != "" {
			sub = token(a.arf.FeedbackType)
			a.signal("feedback-type:" + sub)
		}
		return set(sub, "arf")
	case a.reportType == "tlsrpt":
		return set("tlsrpt", "report-type:tlsrpt")
	case strings.Contains(a.subj, "complaint about message from") && (a.orig.has("X-HmXmrOriginalRecipient") || strings.HasSuffix(a.fromDomain, "hotmail.com") || strings.HasSuffix(a.fromDomain, "outlook.com")):
		return set("jmrp", "jmrp")
	case strings.EqualFold(strings.TrimSpace(a.hdr.get("X-Apple-Unsubscribe")), "true"):
		return set("unsubscribe", "x-apple-unsubscribe")
	case a.ses == "complaint":
		return set("complaint", "ses:complaint")
	case strings.HasPrefix(a.subj, "report domain:") && a.hasAttachment(".xml", ".xml.gz", ".xml.zip", ".zip", ".gz"):
		return set("dmarc-aggregate", "dmarc-aggregate")
	}
	return false
}

// challenge: challenge-response systems (RFC-less; SpamAssassin __CRBOUNCE_*).
func (a *analysis) challenge() bool {
	domains := []string{a.fromDomain}
	for _, f := range []string{"Reply-To", "Sender", "Message-Id", "Return-Path", "List-Unsubscribe"} {
		if v := a.hdr.get(f); v != "" {
			domains = append(domains, strings.ToLower(v))
		}
	}
	domains = append(domains, a.links...)
	for _, s := range challengeSigs {
		hit := ""
		for _, h := range s.headers {
			if a.hdr.has(h) {
				hit = "header:" + strings.ToLower(h)
			}
		}
		for _, m := range s.hdrMatch {
			if hit == "" && strings.Contains(a.lowerHdr(m[0]), m[1]) {
				hit = "header:" + strings.ToLower(m[0])
			}
		}
		for _, d := range s.domains {
			for _, v := range domains {
				if hit == "" && v != "" && strings.Contains(v, d) && (v == d || strings.HasSuffix(v, "."+d) || strings.Contains(v, "@"+d) || strings.Contains(v, "."+d+">") || strings.Contains(v, "/"+d)) {
					hit = "domain:" + d
				}
			}
		}
		if hit == "" {
			// A generic subject ("please confirm your email") is also what a
			// sign-up confirmation says: it counts for a challenge only with
			// a held message (a hold phrase, a returned copy or a reply).
			if p, ok := containsAny(a.subj, s.subjects); ok && (s.name != "generic" || a.heldMessage()) {
				hit = "subject:" + token(p)
			}
		}
		if hit != "" {
			a.kind, a.subKind, a.vendor = store.KindChallenge, s.name, s.name
			a.signal("challenge:" + s.name)
			a.signal(hit)
			return true
		}
	}
	// A text that asks the sender to act so that a held message passes.
	act, ok1 := "", false
	if _, any := a.noticeHits().any(challengeAct); any {
		act, ok1 = containsAffirmed(a.notice, challengeAct)
	}
	hold, ok2 := a.noticeHits().any(challengeHold)
	if ok1 && ok2 && a.automated() && !a.strongNDR() {
		a.kind, a.subKind = store.KindChallenge, "generic"
		a.signal("challenge:generic")
		a.signal("phrase:" + token(act))
		a.signal("phrase:" + token(hold))
		return true
	}
	return false
}

// heldMessage: the text speaks of a message held until the sender acts,
// or the notice answers a message (returned copy, In-Reply-To).
func (a *analysis) heldMessage() bool {
	_, hold := a.noticeHits().any(challengeHold)
	return hold || a.orig != nil || a.hdr.has("In-Reply-To") || a.hdr.has("References")
}

// readReceipt: RFC 8098 MDNs, and the text receipts of mail clients that
// do not send them.
func (a *analysis) readReceipt() bool {
	if a.reportType == "disposition-notification" || a.mdn != nil {
		a.kind = store.KindMDN
		a.signal("mdn")
		if a.reportType != "" {
			a.signal("report-type:" + a.reportType)
		}
		a.subKind = "unknown"
		if a.mdn != nil {
			a.subKind = a.mdn.dispositionType()
			a.signal("disposition:" + a.subKind)
		}
		return true
	}
	read := []string{"read:", "read receipt", "return receipt", "read notification", "gelesen:", "lu :", "lu:", "leído:", "letto:", "gelezen:", "läst:", "læst:", "luettu:", "odczytano:", "прочитано:", "開封", "已读", "읽음"}
	notRead := []string{"not read:", "nicht gelesen:", "non lu :", "no leído:"}
	if p, ok := containsPrefix(a.subj, notRead); ok && !a.strongNDR() {
		a.kind, a.subKind = store.KindMDN, "not-read"
		a.signal("subject:" + token(p))
		return true
	}
	if p, ok := containsPrefix(a.subj, read); ok {
		if b, ok := a.noticeHits().any(receiptBody); ok && !a.strongNDR() {
			a.kind, a.subKind = store.KindMDN, "read-notice"
			a.signal("subject:" + token(p))
			a.signal("phrase:" + token(b))
			return true
		}
	}
	return false
}

// fakeExecutable: a "delivery report" with an executable or archive outside
// any returned message. Real reports return the original inside
// message/rfc822 (RFC 3464 §6.3); malware campaigns attach the payload next
// to a bounce-looking text.
func (a *analysis) fakeExecutable() bool {
	if !a.anyExecutable() || a.bounceScore() < 2 && a.dsn == nil && a.reportType == "" {
		return false
	}
	a.kind, a.subKind = store.KindSpam, "fake-bounce-executable"
	a.signal("attachment:executable")
	return true
}

func (a *analysis) anyExecutable() bool {
	for _, at := range a.attachments {
		if at.executable && !at.returned {
			return true
		}
	}
	return false
}

func (a *analysis) hasAttachment(exts ...string) bool {
	for _, at := range a.attachments {
		n := strings.ToLower(at.name)
		for _, e := range exts {
			if strings.HasSuffix(n, e) {
				return true
			}
		}
	}
	return false
}

// deliveryReport: RFC 3464 DSNs and non-standard bounces, delay warnings,
// AV and spam-filter notices.
func (a *analysis) deliveryReport() bool {
	if a.dsn == nil {
		// Fields of a report quoted in text: forwarded bounces and MTAs that
		// print RFC 3464 fields without the MIME structure.
		if d, ok := parseDSN(a.noticeRaw + "\n" + a.tailRaw); ok && d.textEvidence() {
			a.dsn, a.dsnText = d, true
		}
	}
	score := a.bounceScore()
	strongAuto := a.autoReplyStrong()
	if a.dsn != nil && !(a.dsnNested && strongAuto) {
		switch {
		case a.dsnText:
			a.signal("dsn-fields-in-text")
		case a.dsnNested:
			a.signal("dsn-nested")
		default:
			a.signal("dsn")
		}
		a.kind, a.subKind = store.KindBounce, a.dsn.action()
		a.signal("action:" + a.subKind)
		if a.subKind == "failed" && a.isDelay() {
			a.subKind = "delayed"
		}
		a.linkCheck()
		return true
	}
	if score < 4 || strongAuto && !a.strongNDR() {
		if a.avNotice() {
			a.kind, a.subKind = store.KindBounce, a.avKind
			a.linkCheck()
			return true
		}
		return false
	}
	a.kind, a.subKind = store.KindBounce, "failed"
	switch {
	case a.isDelay():
		a.subKind = "delayed"
	case a.avNotice():
		a.subKind = a.avKind
	case a.ses == "delivery" || strings.Contains(a.notice, "your message has been delivered to the following recipients"):
		a.subKind = "delivered"
	}
	a.linkCheck()
	return true
}

// linkCheck turns a bounce whose links all point away from both the
// bouncing site and the quoted original into a fake bounce. Real notices
// link to their own organisation ("find our contacts on
// http://www.example-org.it"), to their provider's help pages, or quote
// the original's links; a fake's links lead elsewhere. A report with a returned
// message or RFC 3464 fields is never judged by its links.
func (a *analysis) linkCheck() {
	if a.kind != store.KindBounce || a.orig != nil || a.dsn != nil && !a.dsnText {
		return
	}
	var own []string // sites of the bouncer and of the quoted original
	for _, h := range a.links {
		if a.benignHost(h) {
			continue
		}
		if own == nil {
			own = a.ownSites()
		}
		if hostInSites(h, own) && !a.lure() {
			a.signal("link:own-site")
			continue
		}
		a.kind, a.subKind = store.KindSpam, "fake-bounce-link"
		a.signal("link:unrelated")
		return
	}
}

// ownSites are the registrable domains of the bouncer (From, Message-ID,
// Reporting-MTA, the hosts of its Received fields) and of the quoted
// original (its addresses, Message-ID and links).
func (a *analysis) ownSites() []string {
	sites := []string{}
	add := func(v string) {
		v = strings.ToLower(strings.Trim(strings.TrimSpace(v), "<>[]. "))
		if i := strings.LastIndexByte(v, '@'); i >= 0 {
			v = v[i+1:]
		}
		v = strings.Trim(v, "<>[]. ")
		if v == "" || !strings.Contains(v, ".") || isIPLiteral(v) || a.isTrapAddr("x@"+v) {
			return
		}
		sites = append(sites, site(v))
	}
	add(a.fromDomain)
	add(a.hdr.get("Message-Id"))
	if a.dsn != nil {
		add(a.dsn.ReportingMTA)
	}
	for _, r := range a.hdr.values("Received") {
		hop := parseHop(r, false)
		add(hop.By)
	}
	if a.orig != nil {
		for _, f := range []string{"From", "To", "Sender", "Reply-To", "Return-Path", "Message-Id"} {
			if _, addr := parseAddr(a.orig.get(f)); addr != "" {
				add(addr)
			}
		}
	}
	if a.tailRaw != "" {
		for _, h := range linkHosts(a.tailRaw) {
			add(h)
		}
	}
	return sites
}

// lure: the notice asks the reader to click, claim, release or log in, as
// fakes do; a real notice's own links are for information ("our
// contacts", "help").
func (a *analysis) lure() bool {
	p, ok := a.noticeHits().any(lurePhrases)
	if ok {
		a.signal("lure:" + token(p))
	}
	return ok
}

var lurePhrases = []string{
	"pay the", "customs fee", "reschedule", "renew now", "renew your", "update your payment", "confirm your identity",
	"verify your identity", "your subscription",
	"click here", "click below", "click the link", "click on the link", "claim", "reward", "release your",
	"release the", "pending messages", "held messages", "undelivered messages are", "log in", "login", "sign in",
	"verify your account", "confirm your account", "update your account", "unlock", "download", "open the attached",
	"view attachment", "view the document", "recover your messages", "restore your messages", "cliquez ici",
	"klicken sie hier", "haga clic", "clique aqui", "clicca qui", "kliknij tutaj", "нажмите",
}

func hostInSites(h string, sites []string) bool {
	s := site(h)
	for _, x := range sites {
		if s == x {
			return true
		}
	}
	return false
}

func (a *analysis) benignHost(h string) bool {
	if a.dsn != nil && a.dsn.ReportingMTA != "" && sameSite(h, strings.ToLower(a.dsn.ReportingMTA)) {
		return true
	}
	for _, b := range benignLinkHosts {
		if strings.HasSuffix(b, ".") {
			if strings.HasPrefix(h, b) {
				return true
			}
			continue
		}
		if h == b || strings.HasSuffix(h, "."+b) {
			return true
		}
	}
	return false
}

// bounceScore weighs the signs of a delivery report; 4 is enough. Each sign
// that counts is recorded as a signal.
func (a *analysis) bounceScore() float64 {
	score := 0.0
	if a.reportType == "delivery-status" {
		score += 4
		a.signal("report-type:delivery-status")
	}
	if a.strongNDR() {
		score += 4
	}
	weak := ""
	if n, p := a.weakNDR(); n > 0 {
		score += min(float64(n), 2)
		weak = p
	}
	if v := a.hdr.get("X-Failed-Recipients"); v != "" {
		score += 4
		a.signal("x-failed-recipients")
	}
	for _, h := range []string{"X-MS-Exchange-Message-Is-Ndr", "X-MDDSN-Message", "X-Mailer-Daemon-Error"} {
		if a.hdr.has(h) {
			score += 4
			a.signal("header:" + strings.ToLower(h))
		}
	}
	if a.daemonFrom() {
		score += 2
	}
	if p, ok := containsAny(a.subj, bounceSubjects); ok {
		// A person replying about a bounce ("Re: Undeliverable: ...")
		// is not one.
		if strings.HasPrefix(a.subj, "re:") || strings.HasPrefix(a.subj, "aw:") || strings.HasPrefix(a.subj, "sv:") {
			score++
		} else {
			score += 2
		}
		a.signal("subject:" + token(p))
	}
	if a.orig != nil {
		score++
		a.signal("returned:" + a.origKind)
	}
	if p, ok := a.noticeHits().any(smtpDiagnostics); ok && p != weak {
		score++
		a.signal("diagnostic:" + token(p))
	}
	// The envelope (RFC 5321 §4.5.5: reports go out with the null
	// reverse-path; postmaster and MAILER-DAEMON send them by convention).
	// A sender at the trap's own domain is forged: the trap never sends.
	switch {
	case a.envNull() || a.envDaemon():
		score += 2
	case a.envTrapDomain():
		score++
	}
	if as := a.lowerHdr("Auto-Submitted"); as != "" && !strings.HasPrefix(as, "no") {
		score += 0.5
	}
	// List mail and newsletters carry List-Id or List-Unsubscribe (RFC
	// 2369, 2919); reports do not, so a list post that talks about bounces
	// needs more than words.
	if a.reportType == "" && a.dsn == nil && a.orig == nil && (a.hdr.has("List-Id") || a.hdr.has("List-Unsubscribe")) {
		score -= 2
		a.signal("list-mail")
	}
	return score
}

// strongNDR reports whether the text carries a vendor phrase specific to
// delivery reports.
func (a *analysis) strongNDR() bool {
	if a.ndrDone {
		return a.ndr
	}
	a.ndrDone = true
	a.ndr = a.findStrongNDR()
	return a.ndr
}

func (a *analysis) findStrongNDR() bool {
	if a.ses == "bounce" || a.ses == "delivery" {
		a.vendor = "amazonses"
		a.signal("ses:" + a.ses)
		return true
	}
	full := a.fullHits()
	for _, ph := range ndrPhrases {
		if !ph.weak && full.has(ph.id) {
			if a.vendor == "" && !strings.HasPrefix(ph.sig, "lang-") {
				a.vendor = ph.sig
			}
			a.signal("ndr:" + ph.sig)
			return true
		}
	}
	return false
}

// ndrPhrase is one phrase of ndrSigs, in table order, with its index id
// and whether it only adds weight (generic or weakNDRPhrases).
type ndrPhrase struct {
	sig, pat string
	id       int32
	weak     bool
}

var ndrPhrases = func() []ndrPhrase {
	var out []ndrPhrase
	for _, s := range ndrSigs {
		ids := phrases.listIDs(s.pats)
		for j, p := range s.pats {
			out = append(out, ndrPhrase{sig: s.name, pat: p, id: ids[j], weak: s.name == "generic" || weakNDRPhrases[p]})
		}
	}
	return out
}()

// weakNDR counts generic and weak report phrases (up to 2) and returns
// the first.
func (a *analysis) weakNDR() (int, string) {
	n, first := 0, ""
	notice := a.noticeHits()
	for _, ph := range ndrPhrases {
		if ph.weak && notice.has(ph.id) {
			if n == 0 {
				a.signal("ndr-phrase:" + token(ph.pat))
				first = ph.pat
			}
			n++
			if n >= 2 {
				return n, first
			}
		}
	}
	return n, first
}

// daemonFrom: the From of a report sender (mailer-daemon, postmaster, "Mail
// Delivery System", an empty From).
func (a *analysis) daemonFrom() bool {
	from := a.hdr.get("From")
	if a.hdr.has("From") && (strings.TrimSpace(from) == "" || strings.TrimSpace(from) == "<>") {
		a.signal("from:empty")
		return true
	}
	local := strings.ToLower(a.fromLocal)
	for _, d := range daemonLocals {
		if local == d || strings.HasPrefix(local, d+"-") || strings.HasPrefix(local, d+"+") || strings.HasPrefix(local, d+".") ||
			(len(d) > 6 && strings.Contains(local, d)) {
			a.signal("from:" + token(d))
			return true
		}
	}
	name := strings.ToLower(a.fromName)
	if p, ok := containsAny(name, daemonNames); ok {
		a.signal("from-name:" + token(p))
		return true
	}
	return false
}

// automated: the message says it was sent by software: the null sender,
// Auto-Submitted other than "no" (RFC 3834 §5), a report sender, or an
// auto-responder field. Precedence: bulk alone does not count: newsletters
// and spam carry it.
func (a *analysis) automated() bool {
	if a.envNull() || a.envDaemon() {
		return true
	}
	if as := a.lowerHdr("Auto-Submitted"); as != "" && !strings.HasPrefix(as, "no") {
		return true
	}
	if strings.EqualFold(strings.TrimSpace(a.hdr.get("Precedence")), "auto_reply") {
		return true
	}
	return a.daemonFrom() || a.hdr.has("X-Autoreply") || a.hdr.has("X-Autorespond")
}

// envNull: the session's reverse-path was null.
func (a *analysis) envNull() bool { return a.env.Known && (a.env.Null || a.env.MailFrom == "") }

// envDaemon: the session's reverse-path was postmaster or MAILER-DAEMON.
func (a *analysis) envDaemon() bool {
	if !a.env.Known || a.env.MailFrom == "" {
		return false
	}
	local, _ := splitAddr(strings.ToLower(strings.Trim(a.env.MailFrom, "<> ")))
	return local == "postmaster" || local == "mailer-daemon" || local == "mailer_daemon" || local == "double-bounce"
}

// envTrapDomain: the session's reverse-path was at a trap domain.
func (a *analysis) envTrapDomain() bool {
	return a.env.Known && a.env.MailFrom != "" && a.isTrapAddr(strings.Trim(a.env.MailFrom, "<> "))
}

// replyPrefixes start the subject of a person's reply.
var replyPrefixes = []string{"re:", "aw:", "sv:", "antw:", "r:", "vs:", "odp:", "ответ:", "回复:", "答复:"}

// containsPrefixOnly: s starts with one of pats (no prefix stripping).
func containsPrefixOnly(s string, pats []string) (string, bool) {
	for _, p := range pats {
		if strings.HasPrefix(s, p) {
			return p, true
		}
	}
	return "", false
}

// automatedReply is automated without Auto-Submitted: auto-generated.
func (a *analysis) automatedReply() bool {
	if a.envNull() || a.envDaemon() {
		return true
	}
	if as := a.lowerHdr("Auto-Submitted"); strings.HasPrefix(as, "auto-replied") || strings.HasPrefix(as, "auto-notified") {
		return true
	}
	if strings.EqualFold(strings.TrimSpace(a.hdr.get("Precedence")), "auto_reply") {
		return true
	}
	return a.daemonFrom() || a.hdr.has("X-Autoreply") || a.hdr.has("X-Autorespond")
}

func (a *analysis) isDelay() bool {
	if a.dsn != nil && a.dsn.action() == "delayed" {
		return true
	}
	if p, ok := containsAny(a.subj, delaySubjects); ok {
		a.signal("delay-subject:" + token(p))
		return true
	}
	if p, ok := a.noticeHits().any(delayBody); ok {
		a.signal("delay-phrase:" + token(p))
		return true
	}
	return false
}

// avNotice: an anti-virus or content-filter notice from software, about a
// message "you" sent (SpamAssassin 20_vbounce.cf __VBOUNCE_*): the gateway
// blocked mail that forged the trap as its sender and told the trap.
func (a *analysis) avNotice() bool {
	who := strings.ToLower(a.fromName + " " + a.fromLocal)
	avSender := false
	if _, ok := containsAny(who, []string{"virus", "scanner", "antivirus", "anti-virus", "mailscanner", "interscan", "quarantine", "mailsweeper", "mailmarshal", "scanmail", "groupshield", "content-filter", "content filter", "mail security", "email security"}); ok {
		avSender = true
	}
	gw := a.gatewayName(who)
	if !a.automated() && !avSender {
		return false
	}
	// About a message the recipient sent: a returned copy, report fields,
	// or words that say so. A vendor's advert ("your McAfee subscription
	// expired: virus protection is off") is none of these.
	aboutYours := a.orig != nil || a.dsn != nil || a.daemonFrom()
	if !aboutYours {
		_, aboutYours = a.noticeHits().any(aboutYourMessage)
	}
	if !aboutYours {
		return false
	}
	kind := func(p string) bool {
		a.avKind = "av-notice"
		if _, ok := containsAny(p, []string{"spam", "junk", "bulk", "policy", "content", "blocked", "rejected", "banned"}); ok {
			a.avKind = "filter-notice"
		}
		if gw != "" {
			a.gateway = gw
			a.signal("gateway:" + gw)
		}
		return true
	}
	if p, ok := containsAny(a.subj, avSubjects); ok {
		a.signal("av-subject:" + token(p))
		return kind(p)
	}
	if p, ok := a.noticeHits().any(avBody); ok && (a.daemonFrom() || avSender || a.orig != nil || gw != "") {
		a.signal("av-phrase:" + token(p))
		return kind(p)
	}
	return false
}

// gatewayName names the filter product a notice comes from, if it says.
// Product names count in the sender, subject and Message-ID; in the text
// only the longer template phrases do (a bounce may quote a remote
// gateway's name in its diagnostic).
func (a *analysis) gatewayName(who string) string {
	head := who + " " + a.subj + " " + a.lowerHdr("Message-Id")
	for _, g := range gatewaySigs {
		for _, p := range g.pats {
			if strings.Contains(head, p) || len(p) > 16 && a.noticeHits().contains(p) {
				return g.name
			}
		}
	}
	return ""
}

// aboutYourMessage: words of a notice about mail the reader sent.
var aboutYourMessage = []string{
	"your message", "you sent", "sent by you", "message from you", "your e-mail", "your email", "your mail",
	"the message you sent", "message sent from your address", "from: ", "sender:", "original message",
	"ihre nachricht", "votre message", "su mensaje", "il tuo messaggio", "sua mensagem", "twoja wiadomość",
	"ваше сообщение", "您的邮件", "您發送的郵件", "あなたが送信した", "送信されたメール",
}

// autoReplyStrong: markers only auto-responders set.
func (a *analysis) autoReplyStrong() bool {
	for _, m := range autoreplyHeaders {
		if a.hdr.has(m.name) && (m.value == "" || strings.Contains(a.lowerHdr(m.name), m.value)) {
			return true
		}
	}
	_, ok := autoreplyPrefix(a.subj)
	return ok
}

// autoreplyPrefix: the subject starts with an auto-reply marker, after
// forward and tag prefixes but not after a reply prefix: "Re: Out of
// office" is a person answering one.
func autoreplyPrefix(subj string) (string, bool) {
	s := strings.TrimSpace(subj)
	for _, pre := range []string{"re:", "aw:", "sv:", "antw:", "r:", "vs:", "odp:", "ответ:", "回复:", "答复:"} {
		if strings.HasPrefix(s, pre) {
			return "", false
		}
	}
	return containsPrefix(s, strongAutoreplyPrefixes)
}

var strongAutoreplyPrefixes = []string{
	"auto:", "automatic reply", "autoreply", "auto-reply", "auto reply", "auto response", "autoresponse",
	"autorespons", "auto-response", "automatic response", "automated response", "out of office",
	"out of the office", "out-of-office", "abwesenheitsnotiz", "automatische antwort", "réponse automatique",
	"risposta automatica", "respuesta automática", "automatisch antwoord", "autosvar", "automaattinen vastaus",
	"automatyczna odpowiedź", "автоматический ответ", "自動応答", "自動返信", "自动回复", "自動回覆", "자동 응답",
	"yahoo! auto response", "away from my mail", "автоответ", "auto-antwort", "autoantwort", "auto-réponse", "réponse automatique d'absence",
	"respuesta automática de", "resposta automática", "automatické odpovědi", "automatická odpověď", "automatikus válasz",
	"otomatik yanıt", "αυτόματη απάντηση", "自動回覆", "自动答复", "自動応答メッセージ", "不在通知", "休暇中",
}

// autoreplyOnlySubjects are subject words no one but an auto-responder
// uses, in many languages; with Precedence junk/bulk or a software
// envelope they decide alone.
var autoreplyOnlySubjects = []string{
	"away from my mail", "auto:", "[auto]", "automatic reply", "auto reply", "auto-reply", "autoreply", "auto response", "autoresponse",
	"out of office", "out of the office", "out-of-office", "ooo:", "on vacation", "vacation reply", "away from the office",
	"abwesenheit", "automatische antwort", "autoantwort", "auto-antwort", "nicht im büro",
	"réponse automatique", "reponse automatique", "absence du bureau", "absent du bureau", "message d'absence",
	"respuesta automática", "respuesta automatica", "fuera de la oficina", "fuera de oficina",
	"resposta automática", "resposta automatica", "ausente do escritório", "fora do escritório",
	"risposta automatica", "fuori ufficio", "fuori sede",
	"automatyczna odpowiedź", "automatyczna odpowiedz", "nieobecność", "poza biurem",
	"автоответ", "автоматический ответ", "нет на месте", "в отпуске", "отсутствую",
	"自动回复", "自动答复", "自動回覆", "自動応答", "自動返信", "不在", "休暇", "자동 응답", "부재",
	"automatisch antwoord", "afwezig", "autosvar", "frånvaro", "fravær", "automaattinen vastaus", "poissa",
	"automatická odpověď", "nepřítomnost", "automatikus válasz", "otomatik yanıt", "αυτόματη απάντηση",
}

// autoReply: RFC 3834 auto-responses and vendor vacation replies.
func (a *analysis) autoReply() bool {
	set := func(sub string) bool {
		a.kind, a.subKind = store.KindAutoreply, sub
		return true
	}
	vacation := func() string {
		if a.seen["x-apple-action"] || a.seen["x-vacation"] || a.seen["x-mailer:vacation"] {
			return "vacation"
		}
		if ok := a.subjOrNotice(vacationWords); ok {
			return "vacation"
		}
		if ok := a.subjOrNotice(movedWords); ok {
			return "moved"
		}
		if ok := a.subjOrNotice(ackWords); ok {
			return "ack"
		}
		return "autoreply"
	}
	found := false
	for _, m := range autoreplyHeaders {
		if a.hdr.has(m.name) && (m.value == "" || strings.Contains(a.lowerHdr(m.name), m.value)) {
			a.signal(m.signal)
			found = true
		}
	}
	as := strings.ToLower(strings.TrimSpace(a.hdr.get("Auto-Submitted")))
	if strings.HasPrefix(as, "auto-replied") {
		a.signal("auto-submitted:auto-replied")
		found = true
	}
	// A subject alone does not make a newsletter ("Out of office? Book
	// your holiday") an auto-reply.
	listy := a.hdr.has("List-Id") || a.hdr.has("List-Unsubscribe")
	if p, ok := autoreplyPrefix(a.subj); ok && (found || !listy) {
		a.signal("subject:" + token(p))
		found = true
	}
	if found {
		return set(vacation())
	}
	// Weaker: a reply-ish subject or text, in reply to a message or from
	// software; never a list or newsletter.
	if listy {
		return false
	}
	// A localised auto-reply subject with Precedence: junk or bulk (what
	// vacation(1) and many responders set, RFC 3834 §3.1.8 discourages it
	// but it is there) or an envelope that says software sent it.
	prec := strings.ToLower(strings.TrimSpace(a.hdr.get("Precedence")))
	_, replyPrefixed := containsPrefixOnly(a.subj, replyPrefixes)
	if (prec == "junk" || prec == "bulk" || a.envNull() || a.envDaemon() || a.envTrapDomain()) && !replyPrefixed {
		if p, ok := containsAny(a.subj, autoreplyOnlySubjects); ok {
			a.signal("subject:" + token(p))
			if prec != "" {
				a.signal("precedence:" + token(prec))
			}
			return set(vacation())
		}
	}
	// Auto-Submitted: auto-generated alone marks a notification (an order
	// confirmation to an address typed into a form), not a reply (RFC 3834
	// §5): it needs In-Reply-To or References to count.
	replyish := a.hdr.has("In-Reply-To") || a.hdr.has("References") ||
		a.automatedReply() && !strings.HasPrefix(as, "auto-generated")
	// "Re: Out of office" is a person answering an auto-reply: responders
	// put their own marker first ("Automatic reply: Re: ..."), and one
	// that keeps "Re:" is found by its text below.
	if p, ok := containsAny(a.subj, autoreplySubjects); ok && replyish && !replyPrefixed {
		a.signal("subject:" + token(p))
		if strings.HasPrefix(as, "auto-generated") {
			a.signal("auto-submitted:auto-generated")
		}
		return set(vacation())
	}
	if p, ok := a.noticeHits().any(autoreplyBody); ok && replyish {
		a.signal("phrase:" + token(p))
		if strings.HasPrefix(as, "auto-generated") {
			a.signal("auto-submitted:auto-generated")
		}
		return set(vacation())
	}
	return false
}

// listNotice: mailing-list managers answering a post. A rejected post
// (not a member, loop) is a delivery failure; a post held for moderation is
// an automatic answer.
func (a *analysis) listNotice() bool {
	rejectSubj := []string{"not allowed to post", "posting restricted", "loop alert", "post rejected",
		"you are not a member", "not member", "non-member submission", "majordomo results", "command unknown", "unknown command"}
	heldSubj := []string{"awaits moderator approval", "moderator approval", "message held", "held for moderation"}
	listy := a.hdr.has("List-Id") || a.hdr.has("X-Mailman-Version") || a.hdr.has("X-ML-Name") || a.hdr.has("X-MLServer") ||
		strings.HasSuffix(a.fromLocal, "-owner") || strings.HasSuffix(a.fromLocal, "-admin") || strings.HasSuffix(a.fromLocal, "-request") ||
		strings.HasSuffix(a.fromLocal, "-bounces") || strings.HasPrefix(a.fromLocal, "owner-") ||
		strings.Contains(a.notice, "mailing list") || strings.Contains(a.subj, " ml)")
	if !listy {
		return false
	}
	// Held before rejected; the subject before the text.
	for _, c := range []struct {
		kind       store.Kind
		sub        string
		subj, body []string
	}{
		{store.KindAutoreply, "list-held", heldSubj, listHeldBody},
		{store.KindBounce, "list-reject", rejectSubj, listRejectBody},
	} {
		p, ok := containsAny(a.subj, c.subj)
		if !ok {
			p, ok = a.noticeHits().any(c.body)
		}
		if ok {
			a.kind, a.subKind = c.kind, c.sub
			a.signal("list:" + token(p))
			return true
		}
	}
	return false
}

func (a *analysis) result() Result {
	r := Result{Kind: a.kind, SubKind: a.subKind, Vendor: a.vendor}
	if r.MTA, r.MTASignal = a.fingerprint(); r.MTA != "" {
		a.signal("mta:" + r.MTA)
	}
	r.Signals = a.signals
	r.MessageID = clip(strings.TrimSpace(a.hdr.get("Message-Id")), 255)
	r.From = clip(decodeWords(a.hdr.get("From")), 255)
	r.Subject = clip(a.subject, 255)
	r.Headers = a.keptHeaders()
	if a.dsn != nil {
		r.DSN = a.dsn.store()
	}
	if a.mdn != nil {
		if r.DSN == nil {
			r.DSN = &store.DSN{}
		}
		r.DSN.FinalRecipient = clip(a.mdn.FinalRecipient, 320)
		r.DSN.OrigRecipient = clip(a.mdn.OriginalRecipient, 320)
		r.DSN.ReportingMTA = clip(a.mdn.ReportingUA, 255)
	}
	if r.DSN == nil && a.kind == store.KindBounce {
		r.DSN = a.textDSN()
	}
	r.Original = a.original()
	r.TrapField = a.trapField(r)
	if r.Kind == store.KindOther && len(r.Signals) == 0 {
		r.Signals = []string{"no-markers"}
	}
	sanitize(&r)
	return r
}

// sanitize makes every string of r valid UTF-8 without control characters
// other than tab: evidence is stored and shown as JSON and HTML.
func sanitize(r *Result) {
	for _, p := range []*string{&r.MessageID, &r.From, &r.Subject, &r.Original.MessageID, &r.Original.From,
		&r.Original.To, &r.Original.Subject, &r.Original.FirstHop} {
		*p = cleanString(*p)
	}
	if d := r.DSN; d != nil {
		for _, p := range []*string{&d.ReportingMTA, &d.ReceivedFromMTA, &d.ArrivalDate, &d.FinalRecipient,
			&d.OrigRecipient, &d.Action, &d.Status, &d.RemoteMTA, &d.DiagnosticCode} {
			*p = cleanString(*p)
		}
	}
	for k, v := range r.Headers {
		r.Headers[k] = cleanString(v)
	}
	for i, s := range r.Signals {
		r.Signals[i] = cleanString(s)
	}
}

// keptHeaders are the outer fields worth keeping as evidence, capped.
func (a *analysis) keptHeaders() map[string]string {
	keep := []string{"Date", "To", "Auto-Submitted", "Precedence", "X-Failed-Recipients", "In-Reply-To",
		"References", "Content-Type", "X-Mailer", "User-Agent", "List-Id", "X-Autoreply", "X-Autorespond",
		"X-Apple-Action", "X-Loop", "Feedback-Type", "X-MS-Exchange-Message-Is-Ndr", "X-Spam-Flag", "Reply-To"}
	m := map[string]string{}
	for _, k := range keep {
		if v := a.hdr.get(k); v != "" {
			m[k] = clip(v, 256)
		}
	}
	if len(m) == 0 {
		return nil
	}
	return m
}

// sesNotification returns the notificationType of an Amazon SES
// notification delivered through SNS (JSON, often itself JSON-escaped).
func sesNotification(notice string) string {
	i := strings.Index(notice, "notificationtype")
	if i < 0 {
		return ""
	}
	rest := strings.TrimLeft(notice[i+len("notificationtype"):], `\": `)
	end := strings.IndexAny(rest, `\"`)
	if end < 0 {
		return ""
	}
	return rest[:end]
}

// Phrase lists of read receipts, list managers and auto-replies.
var receiptBody = []string{"was read on", "has been read", "was read at", "your message was read", "wurde gelesen", "a été lu", "fue leído", "è stato letto", "is gelezen", "was displayed", "開封されました"}

var listRejectBody = []string{"you are not allowed to post", "only members can post", "not a member of", "non-member",
	"loop alert", "duplicated message-id", "is not a member", "rejected by the list"}

var listHeldBody = []string{"awaits moderator approval", "held for moderation", "is being held until the list moderator"}

var vacationWords = []string{"out of office", "out of the office", "vacation", "away", "on leave", "abwesen", "absence", "absent", "fuori ufficio", "fuera de la oficina", "不在", "holiday", "urlaub", "congé", "vacances", "nicht im büro", "nicht im haus", "hors du bureau", "ferie", "traveling", "travelling", "out of town", "annual leave", "parental leave", "maternity leave", "sick leave"}

var movedWords = []string{"no longer", "has left", "new email address", "new e-mail address", "address change", "changed my email"}

var ackWords = []string{"ticket", "case #", "we have received", "we received", "has been received", "thank you for contacting", "will get back to you"}

// subjOrNotice: the subject or the notice contains one of pats.
func (a *analysis) subjOrNotice(pats []string) bool {
	if _, ok := containsAny(a.subj, pats); ok {
		return true
	}
	_, ok := a.noticeHits().any(pats)
	return ok
}
