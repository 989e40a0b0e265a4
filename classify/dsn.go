package classify

// Machine-readable report parts: RFC 3464 delivery-status (and RFC 6533
// global-delivery-status), RFC 8098 disposition-notification and RFC 5965
// feedback-report. All three are blocks of header-style fields separated by
// empty lines; the parser is lenient the way mox dsn/parse.go is not, because
// the classifier must make sense of half-broken reports too.

import (
	"strings"

	"github.com/blowback-dnsbl/blowback/store"
)

const maxReportBlocks = 100 // recipients (or blocks) read from one report

// fieldBlocks splits text into blocks of fields. Continuation lines are
// unfolded; lines that are not fields are ignored; quoting ("> ") is removed
// so that forwarded reports parse too.
func fieldBlocks(text string) []header {
	var blocks []header
	var cur header
	flush := func() {
		if len(cur) > 0 && len(blocks) < maxReportBlocks {
			blocks = append(blocks, cur)
		}
		cur = nil
	}
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimRight(line, "\r")
		line = unquoteLine(line)
		if strings.TrimSpace(line) == "" {
			flush()
			continue
		}
		if line[0] == ' ' || line[0] == '\t' {
			if n := len(cur); n > 0 && len(cur[n-1].value) < maxFieldBytes {
				cur[n-1].value = strings.TrimSpace(cur[n-1].value + " " + strings.TrimSpace(line))
			}
			continue
		}
		name, value, ok := strings.Cut(line, ":")
		name = strings.TrimSpace(name)
		if !ok || !isFieldName(name) {
			continue
		}
		if len(cur) < maxFields {
			cur = append(cur, field{name: name, value: strings.TrimSpace(value)})
		}
	}
	flush()
	return blocks
}

// unquoteLine removes e-mail quoting ("> ", ">> ").
func unquoteLine(s string) string {
	for strings.HasPrefix(s, ">") {
		s = strings.TrimPrefix(s[1:], " ")
	}
	return s
}

// dsnRecipient is one per-recipient block (RFC 3464 §2.3).
type dsnRecipient struct {
	FinalRecipient, OriginalRecipient, Action, Status, RemoteMTA, DiagnosticCode string
}

// dsnReport is a parsed delivery-status body (RFC 3464 §2.2, §2.3).
type dsnReport struct {
	ReportingMTA, ReceivedFromMTA, ArrivalDate, EnvelopeID string
	PostfixSender                                          string // X-Postfix-Sender: the original envelope sender
	Vendor                                                 string // named by an extension field (X-PowerMTA-*)
	Recipients                                             []dsnRecipient
}

// typedValue strips an RFC 3464 §2.1.2 type prefix ("rfc822;", "dns;").
func typedValue(v string) string {
	if t, rest, ok := strings.Cut(v, ";"); ok && isFieldName(strings.TrimSpace(t)) && !strings.Contains(t, "@") {
		return strings.Trim(strings.TrimSpace(rest), "<>")
	}
	return strings.Trim(strings.TrimSpace(v), "<>")
}

// parseDSN reads delivery-status fields. Per-message fields may stand in any
// block; a recipient starts at a blank line or at a repeated
// Final-Recipient/Original-Recipient. ok means at least one recipient carries
// Action or Status: the minimum RFC 3464 §2.3 requires.
func parseDSN(text string) (*dsnReport, bool) {
	rep := &dsnReport{}
	for _, blk := range fieldBlocks(text) {
		var r dsnRecipient
		has := false
		push := func() {
			if has && len(rep.Recipients) < maxReportBlocks {
				rep.Recipients = append(rep.Recipients, r)
			}
			r, has = dsnRecipient{}, false
		}
		for _, f := range blk {
			v := f.value
			switch strings.ToLower(f.name) {
			case "reporting-mta":
				rep.ReportingMTA = firstNonEmpty(rep.ReportingMTA, typedValue(v))
			case "received-from-mta":
				rep.ReceivedFromMTA = firstNonEmpty(rep.ReceivedFromMTA, typedValue(v))
			case "arrival-date":
				rep.ArrivalDate = firstNonEmpty(rep.ArrivalDate, v)
			case "original-envelope-id":
				rep.EnvelopeID = firstNonEmpty(rep.EnvelopeID, v)
			case "x-powermta-virtualmta", "x-powermta-bouncecategory":
				rep.Vendor = "powermta"
			case "x-postfix-sender":
				rep.PostfixSender = firstNonEmpty(rep.PostfixSender, typedValue(v))
			case "final-recipient", "x-actual-recipient":
				if strings.EqualFold(f.name, "x-actual-recipient") {
					if r.FinalRecipient == "" {
						r.FinalRecipient, has = typedValue(v), true
					}
					continue
				}
				if r.FinalRecipient != "" {
					push()
				}
				r.FinalRecipient, has = typedValue(v), true
			case "original-recipient":
				if r.OriginalRecipient != "" {
					push()
				}
				r.OriginalRecipient, has = typedValue(v), true
			case "action":
				r.Action, has = strings.ToLower(strings.TrimSpace(strings.SplitN(v, " ", 2)[0])), true
			case "status":
				r.Status, has = statusCode(v), true
			case "remote-mta":
				r.RemoteMTA, has = typedValue(v), true
			case "diagnostic-code":
				r.DiagnosticCode, has = v, true
			}
		}
		push()
	}
	ok := false
	for _, r := range rep.Recipients {
		if r.Action != "" || r.Status != "" {
			ok = true
		}
	}
	return rep, ok
}

// statusCode extracts the RFC 3463 code from a Status field ("5.1.1 (user
// unknown)" -> "5.1.1").
func statusCode(v string) string {
	v = strings.TrimSpace(v)
	if i := strings.IndexAny(v, " \t(;"); i > 0 {
		v = v[:i]
	}
	return v
}

// primary picks the recipient worth recording: the first failed, else the
// first delayed, else the first.
func (d *dsnReport) primary() dsnRecipient {
	for _, want := range []string{"failed", "delayed"} {
		for _, r := range d.Recipients {
			if r.Action == want {
				return r
			}
		}
	}
	for _, r := range d.Recipients {
		if r.Action == "" && strings.HasPrefix(r.Status, "5") {
			return r
		}
	}
	if len(d.Recipients) > 0 {
		return d.Recipients[0]
	}
	return dsnRecipient{}
}

func (d *dsnReport) store() *store.DSN {
	r := d.primary()
	return &store.DSN{
		ReportingMTA: clip(d.ReportingMTA, 255), ReceivedFromMTA: clip(d.ReceivedFromMTA, 255),
		ArrivalDate: clip(d.ArrivalDate, 100), FinalRecipient: clip(r.FinalRecipient, 320),
		OrigRecipient: clip(r.OriginalRecipient, 320), Action: clip(r.Action, 20), Status: clip(r.Status, 20),
		RemoteMTA: clip(r.RemoteMTA, 255), DiagnosticCode: clip(r.DiagnosticCode, 1000),
	}
}

// action sums up a report: the action of its primary recipient, derived from
// the status class when the Action field is missing (RFC 3463 §3.1).
func (d *dsnReport) action() string {
	r := d.primary()
	switch r.Action {
	case "failed", "delayed", "delivered", "relayed", "expanded":
		return r.Action
	}
	switch {
	case strings.HasPrefix(r.Status, "5"):
		return "failed"
	case strings.HasPrefix(r.Status, "4"):
		return "delayed"
	case strings.HasPrefix(r.Status, "2"):
		return "delivered"
	}
	return "failed"
}

// mdnReport is a parsed RFC 8098 §3.2 disposition-notification.
type mdnReport struct {
	ReportingUA, FinalRecipient, OriginalRecipient, OriginalMessageID, Disposition string
}

func parseMDN(text string) (*mdnReport, bool) {
	m := &mdnReport{}
	for _, blk := range fieldBlocks(text) {
		for _, f := range blk {
			switch strings.ToLower(f.name) {
			case "reporting-ua":
				m.ReportingUA = firstNonEmpty(m.ReportingUA, f.value)
			case "final-recipient":
				m.FinalRecipient = firstNonEmpty(m.FinalRecipient, typedValue(f.value))
			case "original-recipient":
				m.OriginalRecipient = firstNonEmpty(m.OriginalRecipient, typedValue(f.value))
			case "original-message-id":
				m.OriginalMessageID = firstNonEmpty(m.OriginalMessageID, f.value)
			case "disposition":
				m.Disposition = firstNonEmpty(m.Disposition, f.value)
			}
		}
	}
	return m, m.Disposition != "" || m.FinalRecipient != ""
}

// dispositionType returns the RFC 8098 §3.2.6.2 disposition type:
// "manual-action/MDN-sent-manually; displayed" -> "displayed".
func (m *mdnReport) dispositionType() string {
	_, t, ok := strings.Cut(m.Disposition, ";")
	if !ok {
		return "unknown"
	}
	t = strings.ToLower(strings.TrimSpace(t))
	if i := strings.IndexAny(t, "/ \t;("); i >= 0 {
		t = t[:i]
	}
	switch t {
	case "displayed", "deleted", "dispatched", "processed", "denied", "failed":
		return t
	}
	return "unknown"
}

// arfReport is a parsed RFC 5965 §3.1 feedback-report.
type arfReport struct {
	FeedbackType, UserAgent, SourceIP, OriginalMailFrom, OriginalRcptTo, ArrivalDate, ReportedDomain string
}

func parseARF(text string) *arfReport {
	a := &arfReport{}
	for _, blk := range fieldBlocks(text) {
		for _, f := range blk {
			switch strings.ToLower(f.name) {
			case "feedback-type":
				a.FeedbackType = firstNonEmpty(a.FeedbackType, strings.ToLower(f.value))
			case "user-agent":
				a.UserAgent = firstNonEmpty(a.UserAgent, f.value)
			case "source-ip":
				a.SourceIP = firstNonEmpty(a.SourceIP, f.value)
			case "original-mail-from":
				a.OriginalMailFrom = firstNonEmpty(a.OriginalMailFrom, typedValue(f.value))
			case "original-rcpt-to":
				a.OriginalRcptTo = firstNonEmpty(a.OriginalRcptTo, typedValue(f.value))
			case "arrival-date", "received-date":
				a.ArrivalDate = firstNonEmpty(a.ArrivalDate, f.value)
			case "reported-domain":
				a.ReportedDomain = firstNonEmpty(a.ReportedDomain, f.value)
			}
		}
	}
	return a
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// clip shortens s to at most n bytes without splitting a UTF-8 sequence.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}
