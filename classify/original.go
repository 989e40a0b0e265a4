package classify

// Evidence extraction: the returned original (MIME part or inline copy),
// its first external Received hop, links and attachments, report fields
// written in text, and where the trap address stood.

import (
	"bytes"
	"net/netip"
	"regexp"
	"strings"

	"github.com/blowback-dnsbl/blowback/store"
)

// splitInlineOriginal cuts a notice text at the start of an inline copy of
// the returned message: after a known marker line, or at a cluster of
// header lines. It returns the notice (marker line included) and the copy.
func splitInlineOriginal(text string, clusters bool) (notice, tail string) {
	lower := asciiLower(text) // same length as text: indexes carry over (strings.ToLower's need not)
	best := -1
	for _, m := range inlineOriginalMarkers {
		if i := strings.Index(lower, m); i >= 0 && (best < 0 || i < best) {
			best = i
		}
	}
	if best >= 0 {
		end := strings.IndexByte(text[best:], '\n')
		if end < 0 {
			return text, ""
		}
		return text[:best+end+1], text[best+end+1:]
	}
	if !clusters {
		return text, ""
	}
	if i := headerCluster(text); i >= 0 {
		return text[:i], text[i:]
	}
	return text, ""
}

var origHeaderNames = map[string]bool{
	"from": true, "to": true, "subject": true, "message-id": true, "date": true, "received": true,
	"return-path": true, "mime-version": true, "content-type": true, "sender": true, "reply-to": true,
	"cc": true, "x-mailer": true, "delivered-to": true, "sent": true,
}

// headerCluster finds the offset of the first run of at least three header
// lines, two of them well-known and one naming the origin (From, Received,
// Return-Path or Message-ID): an Outlook-style "From/Sent/To/Subject" quote
// counts, an Exchange "To/Subject/Sent" summary does not.
func headerCluster(text string) int {
	off := 0
	runStart, run, known, origin := -1, 0, 0, 0
	for off < len(text) {
		end := strings.IndexByte(text[off:], '\n')
		line := text[off:]
		next := len(text)
		if end >= 0 {
			line, next = text[off:off+end], off+end+1
		}
		line = strings.TrimRight(line, "\r")
		l := strings.TrimLeft(unquoteLine(line), " \t")
		name, _, ok := strings.Cut(l, ":")
		switch {
		case ok && isFieldName(name):
			if run == 0 {
				runStart = off
			}
			run++
			if origHeaderNames[strings.ToLower(name)] {
				known++
			}
			switch strings.ToLower(name) {
			case "from", "received", "return-path", "message-id":
				origin++
			}
		case run > 0 && (strings.HasPrefix(line, " ") || strings.HasPrefix(line, "\t")):
			// continuation
		default:
			if run >= 3 && known >= 2 && origin > 0 {
				return runStart
			}
			run, known, origin = 0, 0, 0
		}
		off = next
	}
	if run >= 3 && known >= 2 && origin > 0 {
		return runStart
	}
	return -1
}

// inlineHeaders parses the header block at the start of an inline copy,
// skipping blank lines, indentation and quoting.
func inlineHeaders(tail string) (header, string) {
	var b strings.Builder
	started := false
	lines := strings.Split(tail, "\n")
	rest := ""
	for i, line := range lines {
		line = strings.TrimRight(line, "\r")
		l := unquoteLine(line)
		if !started {
			t := strings.TrimSpace(l)
			if t == "" || strings.HasPrefix(t, "---") || strings.HasPrefix(t, "===") || strings.HasPrefix(t, "From ") {
				continue
			}
			name, _, ok := strings.Cut(t, ":")
			if !ok || !isFieldName(name) {
				if i > 10 {
					break
				}
				continue
			}
			started = true
			l = t
		}
		if strings.TrimSpace(l) == "" {
			rest = strings.Join(lines[i+1:], "\n")
			break
		}
		if !strings.HasPrefix(l, " ") && !strings.HasPrefix(l, "\t") {
			l = strings.TrimLeft(l, " ")
		}
		b.WriteString(l)
		b.WriteString("\n")
		if b.Len() > maxHeaderBytes {
			break
		}
	}
	if !started {
		return nil, ""
	}
	// Indented copies ("   Received: ...") keep continuation indentation
	// deeper than the fields': a second pass re-parses with fields flush.
	h, _ := parseHeader([]byte(reindent(b.String())))
	known := 0
	for _, f := range h {
		if origHeaderNames[strings.ToLower(f.name)] {
			known++
		}
	}
	if known < 2 {
		return nil, ""
	}
	return h, rest
}

// reindent removes the common indentation of an indented header copy.
func reindent(s string) string {
	lines := strings.Split(s, "\n")
	ind := -1
	for _, l := range lines {
		if strings.TrimSpace(l) == "" {
			continue
		}
		n := len(l) - len(strings.TrimLeft(l, " \t"))
		name, _, ok := strings.Cut(strings.TrimSpace(l), ":")
		if ok && isFieldName(name) && (ind < 0 || n < ind) {
			ind = n
		}
	}
	if ind <= 0 {
		return s
	}
	for i, l := range lines {
		n := len(l) - len(strings.TrimLeft(l, " \t"))
		if n >= ind {
			lines[i] = l[ind:]
		}
	}
	return strings.Join(lines, "\n")
}

var linkRE = regexp.MustCompile(`(?i)\b(?:https?://|www\.)([a-z0-9.-]+\.[a-z]{2,})`)

var smtpReplyLineRE = regexp.MustCompile(`(?m)^[ \t>]*[245][0-9][0-9][ -].*$|said:.*$`)

// linkHosts returns the distinct lower-case hosts of links in text (at most
// 20), leaving out links quoted in SMTP replies (blocklist lookup pages).
func linkHosts(text string) []string {
	var hosts []string
	seen := map[string]bool{}
	text = smtpReplyLineRE.ReplaceAllString(clip(text, 64<<10), "")
	for _, m := range linkRE.FindAllStringSubmatch(text, 50) {
		h := strings.ToLower(strings.TrimSuffix(m[1], "."))
		if strings.HasPrefix(strings.ToLower(m[0]), "www.") {
			h = "www." + h
		}
		if !seen[h] && len(hosts) < 20 {
			seen[h] = true
			hosts = append(hosts, h)
		}
	}
	return hosts
}

// sameSite: h is d, or they share the registrable part (approximated as the
// last two labels, three under a two-letter second-level like co.jp).
func sameSite(h, d string) bool {
	return h == d || strings.HasSuffix(h, "."+d) || strings.HasSuffix(d, "."+h) || site(h) == site(d)
}

func site(h string) string {
	labels := strings.Split(strings.Trim(h, "."), ".")
	n := 2
	if len(labels) >= 3 && len(labels[len(labels)-2]) <= 3 && len(labels[len(labels)-1]) == 2 {
		n = 3
	}
	if len(labels) <= n {
		return strings.Join(labels, ".")
	}
	return strings.Join(labels[len(labels)-n:], ".")
}

// isExecutable: by name, by declared type, or by content (MZ and ZIP magic).
func isExecutable(name, mediaType string, body []byte) bool {
	n := strings.ToLower(strings.TrimSpace(name))
	for _, e := range executableExts {
		if strings.HasSuffix(n, e) {
			return true
		}
	}
	for _, t := range executableTypes {
		if mediaType == t {
			return true
		}
	}
	return bytes.HasPrefix(body, []byte("MZ")) && len(body) > 64 || bytes.HasPrefix(body, []byte("PK\x03\x04")) || bytes.HasPrefix(body, []byte("Rar!"))
}

// textEvidence: DSN fields found in free text count only when they look
// like a report: a recipient with Action or Status, and a Final-Recipient or
// Reporting-MTA.
func (d *dsnReport) textEvidence() bool {
	for _, r := range d.Recipients {
		if (r.Action != "" || r.Status != "") && (r.FinalRecipient != "" || d.ReportingMTA != "") {
			return true
		}
	}
	return false
}

var (
	enhancedStatusRE = regexp.MustCompile(`\b([245])\.(\d{1,3})\.(\d{1,3})\b`)
	smtpReplyRE      = regexp.MustCompile(`\b[245]\d\d[ -]`)
	reportingHostRE  = regexp.MustCompile(`(?i)(?:this is the (?:mail system|qmail-send program|postfix program|mailer-daemon) at(?: host)?|generating server:|reporting-mta: dns;)\s*([A-Za-z0-9.-]+\.[A-Za-z]{2,})`)
)

// textDSN fills report fields from a non-standard bounce: the failed
// recipient (X-Failed-Recipients or the first address in the notice), the
// first SMTP reply quoted, its enhanced status code, and the reporting host
// when the text names it.
func (a *analysis) textDSN() *store.DSN {
	d := &store.DSN{}
	if v := a.hdr.get("X-Failed-Recipients"); v != "" {
		d.FinalRecipient = strings.TrimSpace(strings.Split(v, ",")[0])
	}
	if d.FinalRecipient == "" {
		for _, m := range findAddrs(clip(a.noticeRaw, 16<<10), 20) {
			l := strings.ToLower(m)
			if l == a.fromAddr || a.isTrapAddr(l) {
				continue
			}
			d.FinalRecipient = m
			break
		}
	}
	if loc := smtpReplyRE.FindStringIndex(clip(a.noticeRaw, 32<<10)); loc != nil {
		line := a.noticeRaw[loc[0]:]
		if i := strings.IndexByte(line, '\n'); i >= 0 {
			line = line[:i]
		}
		d.DiagnosticCode = clip(strings.TrimSpace(line), 300)
	}
	if m := enhancedStatusRE.FindString(clip(a.noticeRaw, 32<<10)); m != "" {
		d.Status = m
	}
	if m := reportingHostRE.FindStringSubmatch(clip(a.noticeRaw, 16<<10)); m != nil {
		d.ReportingMTA = strings.ToLower(m[1])
	}
	switch a.subKind {
	case "delayed":
		d.Action = "delayed"
	case "delivered":
		d.Action = "delivered"
	default:
		d.Action = "failed"
	}
	clipDSN(d)
	return d
}

func clipDSN(d *store.DSN) {
	d.FinalRecipient, d.ReportingMTA = clip(d.FinalRecipient, 320), clip(d.ReportingMTA, 255)
}

// original describes the returned message. For auto-replies and challenges
// without a copy, In-Reply-To names it and the responder's address was its
// recipient.
func (a *analysis) original() store.Original {
	var o store.Original
	if a.orig != nil {
		o.MessageID = clip(strings.TrimSpace(a.orig.get("Message-Id")), 255)
		o.From = clip(decodeWords(a.orig.get("From")), 255)
		o.To = clip(decodeWords(a.orig.get("To")), 255)
		o.Subject = clip(strings.TrimSpace(decodeWords(a.orig.get("Subject"))), 255)
		o.FirstHop = clip(a.firstExternalHop(), 300)
	}
	if a.mdn != nil && o.MessageID == "" {
		o.MessageID = clip(a.mdn.OriginalMessageID, 255)
	}
	if a.arf != nil {
		if o.From == "" {
			o.From = clip(a.arf.OriginalMailFrom, 255)
		}
		if o.To == "" {
			o.To = clip(a.arf.OriginalRcptTo, 255)
		}
	}
	switch a.kind {
	case store.KindAutoreply, store.KindChallenge, store.KindMDN:
		if o.MessageID == "" {
			if f := strings.Fields(a.hdr.get("In-Reply-To")); len(f) > 0 {
				o.MessageID = clip(f[0], 255)
			}
		}
		if o.To == "" && a.kind == store.KindAutoreply {
			o.To = clip(a.fromAddr, 255)
		}
	case store.KindBounce:
		if o.To == "" && a.dsn != nil {
			o.To = clip(a.dsn.primary().FinalRecipient, 255)
		}
	}
	return o
}

// firstExternalHop returns the Received field of the returned original
// where it entered the reporting site: walking from the newest hop down,
// the first whose sending host is neither private nor inside that site.
// That hop's client is the machine that sent mail in the trap's name.
func (a *analysis) firstExternalHop() string {
	recv := a.orig.values("Received")
	if len(recv) == 0 {
		return ""
	}
	sites := map[string]bool{}
	addSite := func(h string) {
		h = strings.ToLower(strings.Trim(h, "[]. "))
		if h != "" && strings.Contains(h, ".") && !isIPLiteral(h) {
			sites[site(h)] = true
		}
	}
	if a.dsn != nil {
		addSite(a.dsn.ReportingMTA)
	}
	addSite(a.fromDomain)
	if by := ParseReceived(recv[0]).By; by != "" {
		addSite(by)
	}
	for _, r := range recv {
		hop := ParseReceived(r)
		host, ip := hop.Host, hop.IP
		if ip.IsValid() && (ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsUnspecified()) {
			continue
		}
		if host == "" && !ip.IsValid() {
			continue
		}
		if host != "" && sites[site(host)] && !ip.IsValid() {
			continue
		}
		if host != "" && sites[site(host)] {
			continue
		}
		return hopText(r)
	}
	return ""
}

func isIPLiteral(h string) bool {
	_, err := netip.ParseAddr(strings.TrimPrefix(strings.ToLower(h), "ipv6:"))
	return err == nil
}

// hopText is a Received field without its date.
func hopText(r string) string {
	if i := strings.LastIndexByte(r, ';'); i > 0 {
		r = r[:i]
	}
	return strings.Join(strings.Fields(r), " ")
}

// trapDomains: configured ones, else those of the envelope recipients.
func (a *analysis) trapDomains() []string {
	if len(a.env.TrapDomains) > 0 {
		return a.env.TrapDomains
	}
	var ds []string
	for _, r := range a.env.Rcpts {
		if _, d := splitAddr(strings.ToLower(strings.Trim(r, "<> "))); d != "" {
			ds = append(ds, d)
		}
	}
	return ds
}

func (a *analysis) isTrapAddr(addr string) bool {
	_, d := splitAddr(strings.ToLower(addr))
	if d == "" {
		return false
	}
	for _, t := range a.trapDomains() {
		t = strings.ToLower(strings.Trim(t, ". "))
		if t != "" && (d == t || strings.HasSuffix(d, "."+t)) {
			return true
		}
	}
	return false
}

func (a *analysis) containsTrap(v string) bool {
	for _, m := range findAddrs(clip(v, 64<<10), 50) {
		if a.isTrapAddr(m) {
			return true
		}
	}
	return false
}

// trapField names where a trap address stood, most telling first: in the
// returned original (the forged sender), in the report fields, in the outer
// header, in the text, and last in the envelope.
func (a *analysis) trapField(r Result) string {
	if len(a.trapDomains()) == 0 {
		return ""
	}
	if a.orig != nil {
		for _, f := range []string{"Return-Path", "From", "Sender", "Reply-To", "To", "Cc"} {
			if a.containsTrap(a.orig.get(f)) {
				return "original " + f
			}
		}
	}
	if a.dsn != nil && a.containsTrap(a.dsn.PostfixSender) {
		return "X-Postfix-Sender"
	}
	if a.arf != nil && a.containsTrap(a.arf.OriginalMailFrom) {
		return "Original-Mail-From"
	}
	if r.DSN != nil {
		if a.containsTrap(r.DSN.FinalRecipient) {
			return "Final-Recipient"
		}
		if a.containsTrap(r.DSN.OrigRecipient) {
			return "Original-Recipient"
		}
	}
	for _, f := range []string{"To", "Cc"} {
		if a.containsTrap(a.hdr.get(f)) {
			return f
		}
	}
	if a.containsTrap(a.noticeRaw) {
		return "body"
	}
	for _, rc := range a.env.Rcpts {
		if a.isTrapAddr(strings.Trim(rc, "<> ")) {
			return "envelope-rcpt"
		}
	}
	return ""
}

// findAddrs returns up to n things that look like mail addresses
// (local@domain.tld) in s, scanning from each "@" outwards.
func findAddrs(s string, n int) []string {
	isLocal := func(c byte) bool {
		return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("._%+!=/-", c) >= 0
	}
	isDomain := func(c byte) bool {
		return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-'
	}
	var out []string
	for off := 0; off < len(s) && len(out) < n; {
		i := strings.IndexByte(s[off:], '@')
		if i < 0 {
			break
		}
		at := off + i
		off = at + 1
		l := at
		for l > 0 && at-l < 64 && isLocal(s[l-1]) {
			l--
		}
		r := at + 1
		for r < len(s) && r-at < 254 && isDomain(s[r]) {
			r++
		}
		dom := strings.TrimRight(s[at+1:r], ".-")
		dot := strings.LastIndexByte(dom, '.')
		if l == at || dot <= 0 || len(dom)-dot-1 < 2 {
			continue
		}
		tld := dom[dot+1:]
		if strings.IndexFunc(tld, func(c rune) bool { return !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') }) >= 0 {
			continue
		}
		out = append(out, s[l:at+1]+dom)
	}
	return out
}
