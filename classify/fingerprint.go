package classify

import (
	"regexp"
	"strings"

	"github.com/blowback-dnsbl/blowback/store"
)

// MTA fingerprint: which software family wrote a backscatter message, when
// its format says so. The listed party's fix advice is built on it ("your
// Postfix accepts mail for unknown users and bounces it later: set
// smtpd_reject_unlisted_recipient"), so a guess is worse than nothing: each
// rule below is a mark the software itself leaves, checked from the most
// specific (a header only it writes) to the least (the wording of its
// notice). Result.MTASignal says which rule fired.

// MTAFamilies are the names Result.MTA takes, and the label values of the
// trap's per-MTA metric (MTALabel maps anything else to "other", and "" to
// "unknown").
var MTAFamilies = []string{
	// MTAs and mail systems
	"postfix", "exim", "sendmail", "qmail", "exchange", "domino", "gmail", "yahoo", "groupwise", "zimbra",
	"mdaemon", "kerio", "icewarp", "communigate", "courier", "opensmtpd", "haraka", "amazonses", "dma",
	"messagingserver", "imail", "mailru", "aol", "powermta",
	// gateways and filters
	"interscan", "mcafee", "sophos", "symantec", "barracuda", "proofpoint", "mimecast", "mailscanner", "amavis",
	// auto-responders
	"vacation", "postfixadmin-vacation", "sieve", "exchange-oof",
	// challenge-response systems
	"boxbe", "spamarrest", "mailinblack", "tmda", "ask", "boxtrapper", "bluebottle", "choicemail", "earthlink",
	"sendio", "0spam",
}

// MTALabel maps a Result.MTA to a bounded metric label value.
func MTALabel(mta string) string {
	if mta == "" {
		return "unknown"
	}
	for _, f := range MTAFamilies {
		if f == mta {
			return mta
		}
	}
	return "other"
}

// mtaMark is a substring a family's software writes into a field.
type mtaMark struct{ family, pat string }

// receivedMarks: the software names in the "with"/"by" clause of Received
// fields the reporting system wrote (lower case). Checked on the Received
// fields of the report itself, bottom (origin) first.
var receivedMarks = []mtaMark{
	{"postfix", "(postfix)"}, {"postfix", "(postfix,"},
	{"exim", "(exim "}, {"exim", "with local (exim"},
	{"qmail", "(qmail "}, {"qmail", "qmail-send"},
	{"exchange", "microsoft smtp server"}, {"exchange", "microsoft smtpsvc"}, {"exchange", "microsoft exchange"},
	{"opensmtpd", "(opensmtpd)"},
	{"haraka", "(haraka"},
	{"mdaemon", "mdaemon"},
	{"kerio", "kerio connect"}, {"kerio", "kerio mailserver"},
	{"icewarp", "icewarp"}, {"icewarp", "merak"},
	{"communigate", "communigate pro"},
	{"courier", "courier "}, {"courier", "(courier"},
	{"domino", "lotus domino"}, {"domino", "(domino"},
	{"groupwise", "groupwise"},
	{"zimbra", "zimbra"},
	{"imail", "ipswitch imail"}, {"imail", "(imail"},
	{"messagingserver", "oracle communications messaging server"}, {"messagingserver", "sun java(tm) system messaging server"},
	{"amavis", "(amavisd"},
	{"powermta", "(powermta"},
}

// sendmailVersionRE: "(8.15.2/8.15.2)", sendmail's version/config pair in
// its Received fields.
var sendmailVersionRE = regexp.MustCompile(`\(\d+\.\d+\.\d+(?:/[\w.]+)+\)`)

// The shapes of Message-IDs software generates (RFC 5322 §3.6.4 leaves
// the left part to the generator).
var (
	postfixMsgIDRE  = regexp.MustCompile(`^<20\d{12}\.[0-9A-Za-z]{6,20}@`)                      // Postfix: YYYYMMDDhhmmss.queueid@host
	sendmailMsgIDRE = regexp.MustCompile(`^<\d{12}\.[0-9A-Za-z]{14}@`)                          // sendmail: YYYYMMDDhhmm.qid (8.x)
	eximMsgIDRE     = regexp.MustCompile(`^<E1[0-9A-Za-z]{5}-[0-9A-Za-z]{6}-[0-9A-Za-z]{2,4}@`) // Exim: E + message id
)

// fieldMark is a header field a family's software writes: its name (a
// prefix when it ends in "-") and a substring of its lower-case value (""
// for any).
type fieldMark struct{ family, name, value string }

// headerMarks: fields only one family writes.
var headerMarks = []fieldMark{
	{"exchange", "X-MS-Exchange-Message-Is-Ndr", ""},
	{"exchange-oof", "X-MS-Exchange-Inbox-Rules-Loop", ""},
	{"exchange-oof", "X-MS-Exchange-Generated-Message-Source", "mailbox rules"},
	{"mdaemon", "X-MDDSN-Message", ""},
	{"mdaemon", "X-MDaemon-Deliver-To", ""},
	{"postfixadmin-vacation", "X-Loop", "postfix admin virtual vacation"},
	{"sieve", "X-Sieve", "pigeonhole"},
	{"domino", "X-MIMETrack", ""},
	{"kerio", "X-Mailer", "kerio"},
	{"icewarp", "X-Mailer", "icewarp"},
	{"communigate", "X-Mailer", "communigate"},
	{"groupwise", "X-Mailer", "groupwise"},
	{"zimbra", "X-Mailer", "zimbra"},
	{"domino", "X-Mailer", "lotus notes"},
	{"mdaemon", "X-Mailer", "mdaemon"},
	{"haraka", "X-Haraka-", ""},
	{"vacation", "X-Mailer", "vacation"},
}

// gatewayMarks: fields that gateways and hosted systems add to whatever
// passes through them; weaker than the origin's Received field.
var gatewayMarks = []fieldMark{
	{"gmail", "X-Gm-Message-State", ""},
	{"gmail", "X-Google-Smtp-Source", ""},
	{"amavis", "X-Virus-Scanned", "amavis"},
	{"mailscanner", "X-MailScanner", ""},
	{"sophos", "X-Sophos-", ""},
	{"proofpoint", "X-Proofpoint-", ""},
	{"barracuda", "X-Barracuda-", ""},
	{"mimecast", "X-Mimecast-", ""},
	{"symantec", "X-Brightmail-Tracker", ""},
	{"interscan", "X-TM-AS-", ""},
	{"mcafee", "X-NAI-Spam-", ""},
	{"exchange", "X-MS-Exchange-Organization-", ""},
	{"exchange", "X-MS-Exchange-CrossTenant-", ""},
	{"powermta", "X-PowerMTA-", ""},
	{"amazonses", "X-SES-Outgoing", ""},
	{"amazonses", "Feedback-ID", ":amazonses"},
}

// headerMark reports the first of marks the header carries.
func (a *analysis) headerMark(marks []fieldMark) (string, string, bool) {
	for _, m := range marks {
		if strings.HasSuffix(m.name, "-") {
			if a.hdr.hasPrefix(m.name) {
				return m.family, "header:" + strings.ToLower(strings.TrimSuffix(m.name, "-")), true
			}
			continue
		}
		if a.hdr.has(m.name) && (m.value == "" || strings.Contains(a.lowerHdr(m.name), m.value)) {
			return m.family, "header:" + strings.ToLower(m.name), true
		}
	}
	return "", "", false
}

// vendorFamily maps the names of the text signatures (signatures.go) and
// gateway notices to families.
var vendorFamily = map[string]string{
	"postfix": "postfix", "qmail": "qmail", "exim": "exim", "sendmail": "sendmail", "exchange": "exchange",
	"gmail": "gmail", "yahoo": "yahoo", "aol": "aol", "courier": "courier", "opensmtpd": "opensmtpd",
	"lotus": "domino", "groupwise": "groupwise", "messagingserver": "messagingserver", "dma": "dma",
	"interscan": "interscan", "messagelabs": "symantec", "mcafee": "mcafee", "imail": "imail",
	"amazonses": "amazonses", "mailru": "mailru", "barracuda": "barracuda", "mimecast": "mimecast",
	"sophos": "sophos", "symantec": "symantec", "proofpoint": "proofpoint", "mailscanner": "mailscanner",
	"amavis": "amavis", "zimbra": "zimbra", "mdaemon": "mdaemon", "kerio": "kerio", "icewarp": "icewarp",
	"communigate": "communigate", "haraka": "haraka", "domino": "domino",
}

// fingerprint names the family of the software that wrote a backscatter
// message and the mark that says so.
func (a *analysis) fingerprint() (family, signal string) {
	if !a.kind.Backscatter() {
		return "", ""
	}
	if a.kind == store.KindChallenge && a.vendor != "" && a.vendor != "generic" {
		return a.vendor, "challenge-signature"
	}
	if f, sig, ok := a.headerMark(headerMarks); ok {
		return f, sig
	}
	// vacation(1)'s default message (Debian's vacation 3.3: no marker
	// header at all).
	if a.kind == store.KindAutoreply && a.subj == "away from my mail" {
		if _, ok := containsAny(a.notice, []string{"i will not be reading my mail for a while", "will be read when i'm back"}); ok {
			return "vacation", "text:vacation-default"
		}
	}
	if strings.HasPrefix(a.lowerHdr("Message-Id"), "<dovecot-sieve-") ||
		strings.Contains(a.lowerHdr("Auto-Submitted"), "(vacation)") {
		return "sieve", "sieve-vacation"
	}
	if a.dsn != nil && a.dsn.Vendor != "" {
		return a.dsn.Vendor, "dsn:x-" + a.dsn.Vendor
	}
	// A Received field without a from clause, or "with local", at the
	// bottom: the notice was made there, by the software it names. (A
	// "from localhost" is a content filter handing mail back: not the
	// maker.)
	recv := a.hdr.values("Received")
	lowBottom := ""
	if len(recv) > 0 {
		lowBottom = strings.ToLower(recv[len(recv)-1])
	}
	if len(recv) > 0 {
		low := lowBottom
		if hop := parseHop(recv[len(recv)-1], false); hop.HELO == "" || strings.Contains(low, " with local") {
			for _, m := range receivedMarks {
				if strings.Contains(low, m.pat) {
					return m.family, "received:local"
				}
			}
		}
	}
	// The wording of the notice: the software that wrote it. A gateway
	// names itself before the MTA that carried its notice.
	if a.gateway == "" && a.kind == store.KindBounce {
		a.gateway = a.gatewayName(strings.ToLower(a.fromName + " " + a.fromLocal))
	}
	if f, ok := vendorFamily[a.gateway]; ok {
		return f, "gateway:" + a.gateway
	}
	if f, ok := vendorFamily[a.vendor]; ok {
		return f, "text:" + a.vendor
	}
	// The report's own Received fields, origin first: the software that
	// generated it writes the bottom one ("by host (Postfix) id ..." without
	// a from clause for a locally made notice).
	if len(recv) > 0 {
		low := lowBottom
		for _, m := range receivedMarks {
			if strings.Contains(low, m.pat) {
				return m.family, "received"
			}
		}
		if sendmailVersionRE.MatchString(low) {
			return "sendmail", "received"
		}
	}
	if f, sig, ok := a.headerMark(gatewayMarks); ok {
		return f, sig
	}
	if a.dsn != nil && a.dsn.PostfixSender != "" {
		return "postfix", "dsn:x-postfix-sender"
	}
	mid := strings.TrimSpace(a.hdr.get("Message-Id"))
	switch {
	case postfixMsgIDRE.MatchString(mid):
		return "postfix", "message-id"
	case eximMsgIDRE.MatchString(mid):
		return "exim", "message-id"
	case sendmailMsgIDRE.MatchString(mid):
		return "sendmail", "message-id"
	case strings.HasSuffix(strings.ToLower(mid), "@mx.google.com>"):
		return "gmail", "message-id"
	case strings.Contains(strings.ToLower(mid), ".outlook.com>"):
		return "exchange", "message-id"
	case strings.HasSuffix(strings.ToLower(mid), "amazonses.com>"):
		return "amazonses", "message-id"
	}
	if a.hdr.has("X-Failed-Recipients") && !strings.Contains(a.fromDomain, "google") && !strings.Contains(a.fromDomain, "gmail") {
		// Exim writes it (Gmail too).
		return "exim", "x-failed-recipients"
	}
	return "", ""
}
