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
	// ASCII lowered only (same length as text: indexes carry over, which
	// strings.ToLower's need not); ASCII text is folded in place.
	var best int
	if isASCII(text) {
		best = markers.firstFoldASCII(text)
	} else {
		best = markers.first(asciiLower(text))
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

// linkHosts returns the distinct lower-case hosts of links in text (at most
// 20), leaving out links quoted in SMTP replies (blocklist lookup pages):
// lines that are an SMTP reply, and what follows "said:". A link is
// `\b(?:https?://|www\.)([a-z0-9.-]+\.[a-z]{2,})` (case-insensitive);
// this is that regexp's leftmost-first, greedy answer, by hand.
func linkHosts(text string) []string {
	var hosts []string
	seen := map[string]bool{}
	text = clip(text, 64<<10)
	matches := 0
	for len(text) > 0 && matches < 50 {
		line := text
		if i := strings.IndexByte(text, '\n'); i >= 0 {
			line, text = text[:i], text[i+1:]
		} else {
			text = ""
		}
		if isSMTPReplyLine(line) {
			continue
		}
		if i := strings.Index(line, "said:"); i >= 0 {
			line = line[:i]
		}
		for i := 0; i < len(line) && matches < 50; i++ {
			c := line[i] | 0x20
			if c != 'h' && c != 'w' || i > 0 && isWordByte(line[i-1]) {
				continue
			}
			rest := line[i:]
			start := 0
			www := false
			switch {
			case hasPrefixFold(rest, "https://"):
				start = 8
			case hasPrefixFold(rest, "http://"):
				start = 7
			case hasPrefixFold(rest, "www."):
				start, www = 4, true
			default:
				continue
			}
			host, n := linkHost(rest[start:])
			if n == 0 {
				continue
			}
			matches++
			h := strings.ToLower(strings.TrimSuffix(host, "."))
			if www {
				h = "www." + h
			}
			if !seen[h] && len(hosts) < 20 {
				seen[h] = true
				hosts = append(hosts, h)
			}
			i += start + n - 1
		}
	}
	return hosts
}

// isSMTPReplyLine: `^[ \t>]*[245][0-9][0-9][ -]`.
func isSMTPReplyLine(l string) bool {
	l = strings.TrimLeft(l, " \t>")
	return len(l) >= 4 && (l[0] == '2' || l[0] == '4' || l[0] == '5') && isDigit(l[1]) && isDigit(l[2]) && (l[3] == ' ' || l[3] == '-')
}

func hasPrefixFold(s, p string) bool { return len(s) >= len(p) && strings.EqualFold(s[:len(p)], p) }

func isHostByte(c byte) bool {
	return isDigit(c) || 'a' <= c|0x20 && c|0x20 <= 'z' || c == '.' || c == '-'
}

func isLetter(c byte) bool { return 'a' <= c|0x20 && c|0x20 <= 'z' }

// linkHost matches `[a-z0-9.-]+\.[a-z]{2,}` at the start of s the way the
// greedy regexp does: the last dot of the host run that has two letters
// after it; the letters after it run as far as they go. n is the length
// matched, 0 for none.
func linkHost(s string) (host string, n int) {
	end := 0
	for end < len(s) && isHostByte(s[end]) {
		end++
	}
	for k := end - 1; k >= 1; k-- {
		if s[k] != '.' {
			continue
		}
		m := k + 1
		for m < end && isLetter(s[m]) {
			m++
		}
		if m-(k+1) >= 2 {
			return s[:m], m
		}
	}
	return "", 0
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
	reportingHostRE = regexp.MustCompile(`(?i)(?:this is the (?:mail system|qmail-send program|postfix program|mailer-daemon) at(?: host)?|generating server:|reporting-mta: dns;)\s*([A-Za-z0-9.-]+\.[A-Za-z]{2,})`)
)

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// isWordByte is RE2's \w for ASCII ([0-9A-Za-z_]); \b looks at bytes.
func isWordByte(c byte) bool {
	return isDigit(c) || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '_'
}

// smtpReplyIndex is the index of the first `\b[245]\d\d[ -]` in s, or -1.
func smtpReplyIndex(s string) int {
	for i := 0; i+4 <= len(s); i++ {
		c := s[i]
		if (c == '2' || c == '4' || c == '5') && (i == 0 || !isWordByte(s[i-1])) && isDigit(s[i+1]) && isDigit(s[i+2]) && (s[i+3] == ' ' || s[i+3] == '-') {
			return i
		}
	}
	return -1
}

// enhancedStatus is the first `\b[245]\.\d{1,3}\.\d{1,3}\b` in s (RFC
// 3463 codes), or "".
func enhancedStatus(s string) string {
	for i := 0; i+5 <= len(s); i++ {
		c := s[i]
		if c != '2' && c != '4' && c != '5' || i > 0 && isWordByte(s[i-1]) || s[i+1] != '.' {
			continue
		}
		j := i + 2
		n := 0
		for j < len(s) && isDigit(s[j]) && n < 3 {
			j, n = j+1, n+1
		}
		if n == 0 || j >= len(s) || s[j] != '.' {
			continue
		}
		// \d{1,3} then \b: backtracking may take fewer digits, but a
		// word boundary after fewer digits would need a non-word byte
		// among digits: impossible. So the run must end at a non-digit.
		if j < len(s) && isDigit(s[j]) {
			continue
		}
		k := j + 1
		m := 0
		for k < len(s) && isDigit(s[k]) && m < 3 {
			k, m = k+1, m+1
		}
		if m == 0 || k < len(s) && isWordByte(s[k]) {
			continue
		}
		return s[i:k]
	}
	return ""
}

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
	if loc := smtpReplyIndex(clip(a.noticeRaw, 32<<10)); loc >= 0 {
		line := a.noticeRaw[loc:]
		if i := strings.IndexByte(line, '\n'); i >= 0 {
			line = line[:i]
		}
		d.DiagnosticCode = clip(strings.TrimSpace(line), 300)
	}
	if m := enhancedStatus(clip(a.noticeRaw, 32<<10)); m != "" {
		d.Status = m
	}
	// The regexp's literals, whitespace collapsed, stand in the notice
	// when it can match at all.
	if strings.Contains(a.notice, "this is the ") || strings.Contains(a.notice, "generating server:") || strings.Contains(a.notice, "reporting-mta: dns;") {
		if m := reportingHostRE.FindStringSubmatch(clip(a.noticeRaw, 16<<10)); m != nil {
			d.ReportingMTA = strings.ToLower(m[1])
		}
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
	if by := parseHop(recv[0], false).By; by != "" {
		addSite(by)
	}
	for _, r := range recv {
		hop := parseHop(r, false)
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
