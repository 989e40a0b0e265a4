package classify

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/charmap"
	"golang.org/x/text/encoding/simplifiedchinese"

	"github.com/blowback-dnsbl/blowback/store"
)

// TestClassifyFixtures: one line per fixture in testdata. want is
// "kind/subkind"; field is the expected TrapField (with the trap domain
// trap.blowback.test); msgid the returned original's Message-ID; hop a
// substring of its first external Received hop.
func TestClassifyFixtures(t *testing.T) {
	env := Envelope{TrapDomains: []string{"trap.blowback.test"}}
	check := func(file, want, field, msgid, hop string) {
		t.Helper()
		b, err := os.ReadFile(filepath.Join("testdata", file))
		if err != nil {
			t.Fatal(err)
		}
		r := classify(b, env)
		got := r.Kind.String() + "/" + r.SubKind
		if got != want {
			t.Errorf("%s: got %s, want %s (signals %v)", file, got, want, r.Signals)
		}
		if r.TrapField != field {
			t.Errorf("%s: trap field %q, want %q", file, r.TrapField, field)
		}
		if r.Original.MessageID != msgid {
			t.Errorf("%s: original message-id %q, want %q", file, r.Original.MessageID, msgid)
		}
		if !strings.Contains(r.Original.FirstHop, hop) || hop == "" && r.Original.FirstHop != "" {
			t.Errorf("%s: first hop %q, want %q", file, r.Original.FirstHop, hop)
		}
		if len(r.Signals) == 0 {
			t.Errorf("%s: no signals", file)
		}
		if r.Kind.Backscatter() != (r.Kind == store.KindBounce || r.Kind == store.KindAutoreply || r.Kind == store.KindChallenge || r.Kind == store.KindMDN) {
			t.Errorf("%s: backscatter flag disagrees with the contract for %s", file, r.Kind)
		}
	}
	// Real Postfix 3.7 reports, made by gen-postfix.sh.
	check("postfix-bounce.eml", "bounce/failed", "original Return-Path", "<spam-1@spambot.example.net>", "from spambot.example.net (spambot.example.net [198.51.100.23])")
	check("postfix-delay.eml", "bounce/delayed", "original Return-Path", "<spam-2@spambot.example.net>", "[198.51.100.23]")
	check("exim-bounce.eml", "bounce/failed", "original Return-Path", "<20260302100110.777@bot77.example.org>", "from [203.0.113.77] (helo=bot77.example.org)")
	check("exim-delay.eml", "bounce/delayed", "To", "", "")
	// Real Exim 4.96 reports, made by gen-exim.sh.
	check("exim-real-bounce.eml", "bounce/failed", "original Return-Path", "<spam-3@spambot.example.net>", "[198.51.100.23]")
	check("exim-real-delay.eml", "bounce/delayed", "original Return-Path", "<spam-4@spambot.example.net>", "[198.51.100.23]")
	check("qmail-bounce.eml", "bounce/failed", "original Return-Path", "<qm-0042@pc-17.example.com>", "(198.51.100.17)")
	check("exchange-ndr.eml", "bounce/failed", "original From", "<x55@bot55.example.org>", "from bot55.example.org (192.0.2.55)")
	check("sendmail-bounce.eml", "bounce/failed", "original Return-Path", "<hs-3@bot3.example.org>", "[192.0.2.3]")
	check("virus-backscatter.eml", "bounce/failed", "original From", "<worm-66@infected.example.com>", "[198.51.100.66]")
	check("japanese-bounce.eml", "bounce/failed", "original From", "<jp-1@bot1.example.org>", "")
	check("av-notice.eml", "bounce/av-notice", "To", "", "")
	check("vacation-gmail.eml", "autoreply/vacation", "To", "<20260302100110.778@bot77.example.org>", "")
	check("vacation-exchange.eml", "autoreply/vacation", "To", "", "")
	check("autoreply-ticket.eml", "autoreply/ack", "To", "<spam-9@bot9.example.org>", "")
	check("challenge-tmda.eml", "challenge/tmda", "original Return-Path", "<hf-88@bot88.example.org>", "[203.0.113.88]")
	check("challenge-boxbe.eml", "challenge/boxbe", "original From", "<cl-13@bot13.example.org>", "[198.51.100.13]")
	check("challenge-spamarrest.eml", "challenge/spamarrest", "To", "", "")
	check("challenge-generic.eml", "challenge/generic", "To", "", "")
	check("mdn-thunderbird.eml", "mdn/displayed", "original From", "<mn-5@bot5.example.org>", "")
	check("arf-abuse.eml", "report/abuse", "To", "<8787KJKJ3K4J3K4J3K4J3.mail@example.net>", "[192.0.2.1]")
	check("dmarc-aggregate.eml", "report/dmarc-aggregate", "To", "", "")
	check("fake-bounce-zip.eml", "spam/fake-bounce-executable", "To", "", "")
	check("fake-bounce-exe.eml", "spam/fake-bounce-executable", "To", "", "")
	check("fake-bounce-link.eml", "spam/fake-bounce-link", "To", "", "")
	check("spam-plain.eml", "other/unclassified", "To", "", "")
	check("newsletter.eml", "other/unclassified", "To", "", "")
	check("human-reply.eml", "other/unclassified", "To", "", "")
	check("forwarded-original.eml", "other/unclassified", "To", "<contract-1@partner.example>", "")
	check("not-autoreply-suppress.eml", "other/unclassified", "", "", "")
	check("junk-binary.eml", "other/unclassified", "", "", "")
	check("junk-truncated-mime.eml", "bounce/failed", "", "", "")
	check("empty.eml", "other/empty", "", "", "")
}

// TestClassifyDSNFields: the per-message and per-recipient fields of a real
// Postfix report land in the result.
func TestClassifyDSNFields(t *testing.T) {
	b, err := os.ReadFile("testdata/postfix-bounce.eml")
	if err != nil {
		t.Fatal(err)
	}
	r := classify(b, Envelope{Known: true, Null: true, Rcpts: []string{"trap-forged@trap.blowback.test"}})
	if r.DSN == nil {
		t.Fatal("no DSN")
	}
	for _, c := range []struct{ name, got, want string }{
		{"Reporting-MTA", r.DSN.ReportingMTA, "mx1.sender.blowback.test"},
		{"Final-Recipient", r.DSN.FinalRecipient, "nosuchuser@sender.blowback.test"},
		{"Original-Recipient", r.DSN.OrigRecipient, "nosuchuser@sender.blowback.test"},
		{"Action", r.DSN.Action, "failed"},
		{"Status", r.DSN.Status, "5.1.1"},
		{"Diagnostic-Code", r.DSN.DiagnosticCode, "X-Postfix; user unknown"},
		{"original From", r.Original.From, `"Cheap Meds" <trap-forged@trap.blowback.test>`},
		{"original To", r.Original.To, "<nosuchuser@sender.blowback.test>"},
		{"original Subject", r.Original.Subject, "Best prices on meds"},
		{"Subject", r.Subject, "Undelivered Mail Returned to Sender"},
		{"Headers[Auto-Submitted]", r.Headers["Auto-Submitted"], "auto-replied"},
		{"TrapField (domains from rcpts)", r.TrapField, "original Return-Path"},
	} {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.name, c.got, c.want)
		}
	}
	if !hasSignal(r.Signals, "env:null-sender") || !hasSignal(r.Signals, "dsn") || !hasSignal(r.Signals, "ndr:postfix") {
		t.Errorf("signals %v lack env:null-sender, dsn or ndr:postfix", r.Signals)
	}
}

func hasSignal(sigs []string, s string) bool {
	for _, x := range sigs {
		if x == s {
			return true
		}
	}
	return false
}

// TestClassifyRules: small synthetic messages, one rule each.
func TestClassifyRules(t *testing.T) {
	check := func(name, msg, want string) {
		t.Helper()
		r := classify([]byte(strings.ReplaceAll(msg, "|", "\n")), Envelope{})
		if got := r.Kind.String() + "/" + r.SubKind; got != want {
			t.Errorf("%s: got %s, want %s (signals %v)", name, got, want, r.Signals)
		}
	}
	// Auto-Submitted: auto-replied is on bounces too: a daemon sender and a
	// report subject make it a bounce, alone it is an auto-reply.
	check("auto-replied bounce", "From: MAILER-DAEMON@x.example|Subject: Undelivered Mail Returned to Sender|Auto-Submitted: auto-replied||<a@x.example>: user unknown|", "bounce/failed")
	check("auto-replied reply", "From: a@x.example|Subject: hello|Auto-Submitted: auto-replied||Thanks.|", "autoreply/autoreply")
	check("auto-replied vacation", "From: a@x.example|Subject: Re: hello|Auto-Submitted: auto-replied||I am on vacation until Monday.|", "autoreply/vacation")
	// X-Auto-Response-Suppress is a request to others, not a marker.
	check("suppress only", "From: a@x.example|Subject: hello|X-Auto-Response-Suppress: All||Hi.|", "other/unclassified")
	check("precedence auto_reply", "From: a@x.example|Subject: hello|Precedence: auto_reply||Thanks.|", "autoreply/autoreply")
	check("apple vacation", "From: a@x.example|Subject: hello|X-Apple-Action: VACATION||Away.|", "autoreply/vacation")
	check("encoded subject", "From: a@x.example|Subject: =?UTF-8?Q?Automatische_Antwort:_Hallo?=||Ich bin nicht im Büro.|", "autoreply/vacation")
	check("not read", "From: a@x.example|Subject: Not read: hello||Your message was deleted without being read.|", "mdn/not-read")
	check("read text", "From: a@x.example|Subject: Read: hello||Your message was read on Monday.|", "mdn/read-notice")
	check("just a Read: subject", "From: a@x.example|Subject: Read: the manual||Please read it.|", "other/unclassified")
	check("ses complaint", `From: no-reply@sns.amazonaws.com|Subject: AWS Notification Message||{"Message":"{\"notificationType\":\"Complaint\"}"}|`, "report/complaint")
	check("tlsrpt", "From: a@x.example|Subject: Report|Content-Type: multipart/report; report-type=tlsrpt; boundary=b||--b|Content-Type: application/tlsrpt+gzip||x|--b--|", "report/tlsrpt")
	check("delay dsn", "From: MAILER-DAEMON@x.example|Subject: Delivery Status Notification (Delay)|Content-Type: multipart/report; report-type=delivery-status; boundary=b||--b|Content-Type: message/delivery-status||Reporting-MTA: dns; x.example||Final-Recipient: rfc822; a@y.example|Action: delayed|Status: 4.4.7||--b--|", "bounce/delayed")
	check("relayed dsn", "From: MAILER-DAEMON@x.example|Subject: Relayed|Content-Type: multipart/report; report-type=delivery-status; boundary=b||--b|Content-Type: message/delivery-status||Reporting-MTA: dns; x.example||Final-Recipient: rfc822; a@y.example|Action: relayed|Status: 2.0.0||--b--|", "bounce/relayed")
	check("list held", "From: list-owner@lists.example|Subject: Your message to Team awaits moderator approval|List-Id: <team.lists.example>||Your mail is held for moderation.|", "autoreply/list-held")
	check("list reject", "From: list-bounces@lists.example|Subject: Post rejected|X-Mailman-Version: 2.1||You are not allowed to post to this mailing list.|", "bounce/list-reject")
	check("executable in plain mail", "From: a@x.example|Subject: invoice|Content-Type: multipart/mixed; boundary=b||--b|Content-Type: text/plain||see attached|--b|Content-Type: application/octet-stream; name=invoice.exe||MZ|--b--|", "spam/executable-attachment")
	// Precedence: bulk is on newsletters and spam: it does not make software
	// replies or AV notices out of them.
	check("scareware spam", "From: Security Center <alerts@scare.example>|Subject: Virus alert: your PC is infected|Precedence: bulk||Click to clean your PC: http://scare.example/fix|", "other/unclassified")
	check("ticket newsletter", "From: news@concerts.example|Subject: Tickets on sale now|Precedence: bulk|List-Unsubscribe: <mailto:u@concerts.example>||Thank you for your message last year. Buy tickets.|", "other/unclassified")
	check("bulk thanks", "From: promo@x.example|Subject: Thank you for your email|Precedence: bulk||Great deals inside.|", "other/unclassified")
	check("av notice", "From: MAILER-DAEMON@x.example|Subject: Virus detected in a message you sent|Auto-Submitted: auto-generated||The attachment contained Win.Worm.Mydoom and was removed.|", "bounce/av-notice")
	check("spam filter notice", "From: MAILER-DAEMON@x.example|Subject: Message blocked|Auto-Submitted: auto-replied||Your message was identified as spam and was not delivered.|", "bounce/filter-notice")
	check("groupwise", "From: postmaster@gw.example|Subject: Message status - undeliverable||The attached file had the following undeliverable recipient(s):|  a@gw.example|", "bounce/failed")
	check("lotus", "From: Postmaster@notes.example|Subject: DELIVERY FAILURE: User a not listed in Domino Directory||Your message|  Subject: hi|was not delivered to:|  a@notes.example|because:|  User a not listed|", "bounce/failed")
	check("mailinblack", "From: a@x.example|Subject: hello|Content-Type: multipart/alternative; boundary=\"mUlTiPaRtBoUnDaRy_MailInBlack_1\"||--mUlTiPaRtBoUnDaRy_MailInBlack_1|Content-Type: text/plain||Cliquez sur le lien pour valider.|--mUlTiPaRtBoUnDaRy_MailInBlack_1--|", "challenge/mailinblack")
	check("human about a bounce", "From: Alice <alice@x.example>|Subject: Re: Undeliverable: meeting|In-Reply-To: <m1@x.example>||I got this back, it says user unknown. Does Bob still work there?|", "other/unclassified")
	check("negated challenge phrase", "From: MAILER-DAEMON@x.example|Subject: failure notice||Please do not reply to this message. Your message to the approved senders list failed.|<a@y.example>: 550 5.1.1 user unknown|", "bounce/failed")
}

// TestDecodeWords: encoded subjects in the charsets bounces use.
func TestDecodeWords(t *testing.T) {
	check := func(in, want string) {
		t.Helper()
		if got := decodeWords(in); got != want {
			t.Errorf("decodeWords(%q) = %q, want %q", in, got, want)
		}
	}
	check("=?ISO-2022-JP?B?GyRCJWEhPCVrGyhC?=", "メール")
	check("=?Shift_JIS?B?g4GBW4OL?=", "メール")
	check("=?iso-8859-1?Q?R=E9ponse_automatique?=", "Réponse automatique")
	check("=?windows-1252?Q?=93quoted=94?=", "\u201cquoted\u201d")
	check("=?UTF-8?B?44Gr44KD44KT44GT?=", "にゃんこ")
	check("=?EUC-KR?B?wNq1vyDA wLTk?=", "=?EUC-KR?B?wNq1vyDA wLTk?=") // malformed: kept
	check("\x1b$B%a!<%k\x1b(B", "メール")                                // raw ISO-2022-JP
	check("caf\xe9", "café")                                          // raw Latin-1
	check("=?x-unknown?Q?abc?=", "abc")
}

func TestParseDSNRecipients(t *testing.T) {
	text := "Reporting-MTA: dns; mx.example\nArrival-Date: Mon, 2 Mar 2026\n\nFinal-Recipient: rfc822; a@x.example\nAction: delivered\nStatus: 2.0.0\n\nFinal-Recipient: rfc822;\n b@x.example\nAction: failed\nStatus: 5.1.1 (bad mailbox)\nDiagnostic-Code: smtp; 550 5.1.1\n  user unknown\nFinal-Recipient: rfc822; c@x.example\nAction: delayed\nStatus: 4.4.1\n"
	d, ok := parseDSN(text)
	if !ok || len(d.Recipients) != 3 {
		t.Fatalf("parseDSN: ok=%v recipients=%+v", ok, d.Recipients)
	}
	p := d.primary()
	if p.FinalRecipient != "b@x.example" || p.Status != "5.1.1" || p.DiagnosticCode != "smtp; 550 5.1.1 user unknown" {
		t.Errorf("primary = %+v", p)
	}
	if d.ReportingMTA != "mx.example" || d.action() != "failed" {
		t.Errorf("reporting %q action %q", d.ReportingMTA, d.action())
	}
	if _, ok := parseDSN("Subject: x\nFrom: y\n"); ok {
		t.Error("parseDSN accepted a text without Action or Status")
	}
}

func TestReceivedHost(t *testing.T) {
	check := func(in, host, ip string) {
		t.Helper()
		hop := ParseReceived(in)
		h, a := hop.Host, hop.IP
		gotIP := ""
		if a.IsValid() {
			gotIP = a.String()
		}
		if h != host || gotIP != ip {
			t.Errorf("ParseReceived(%q) = %q %q, want %q %q", in, h, gotIP, host, ip)
		}
	}
	check("from helo.example (rdns.example.net [192.0.2.1]) by mx.example with ESMTP id 1; Mon, 2 Mar 2026", "rdns.example.net", "192.0.2.1")
	check("from [203.0.113.7] (helo=bot.example.org) by mx.example with esmtp (Exim 4.96)", "", "203.0.113.7")
	check("from unknown (HELO pc.example.com) (198.51.100.17) by mail.example with SMTP", "", "198.51.100.17")
	check("from bot55.example.org (192.0.2.55) by EX.example (2603:10a6::1) with Microsoft SMTP Server", "bot55.example.org", "192.0.2.55")
	check("from mail.example.org (mail.example.org [IPv6:2001:db8::25]) by mx.example", "mail.example.org", "2001:db8::25")
	check("by mx.example (Postfix, from userid 0) id 1", "", "")
}

func TestSplitMultipartLenient(t *testing.T) {
	parts, ok := splitMultipart([]byte("pre\r\n--b\r\nA: 1\r\n\r\none\r\n--b \r\n\r\ntwo\r\n--b--\r\nepilogue"), "b")
	if !ok || len(parts) != 2 || string(parts[0]) != "A: 1\r\n\r\none" || string(parts[1]) != "\r\ntwo" {
		t.Errorf("closed: ok=%v parts=%q", ok, parts)
	}
	parts, ok = splitMultipart([]byte("--b\nx\n--b\ny"), "b")
	if !ok || len(parts) != 2 || string(parts[1]) != "y" {
		t.Errorf("unclosed: ok=%v parts=%q", ok, parts)
	}
	if _, ok := splitMultipart([]byte("no delimiter"), "b"); ok {
		t.Error("a body without delimiter was split")
	}
}

// TestClassifyBounded: deep nesting, many parts and huge headers stop at the
// limits instead of recursing or allocating without end.
func TestClassifyBounded(t *testing.T) {
	var deep strings.Builder
	for i := 0; i < 200; i++ {
		deep.WriteString("Content-Type: message/rfc822\n\n")
	}
	deep.WriteString("From: x@y\n\nend\n")
	r := classify([]byte(deep.String()), Envelope{})
	if !hasSignal(r.Signals, "mime-limit") {
		t.Errorf("deep nesting: signals %v lack mime-limit", r.Signals)
	}
	var many strings.Builder
	many.WriteString("Content-Type: multipart/mixed; boundary=b\n\n")
	for i := 0; i < 5000; i++ {
		many.WriteString("--b\nContent-Type: text/plain\n\nx\n")
	}
	r = classify([]byte(many.String()), Envelope{})
	if !hasSignal(r.Signals, "mime-limit") {
		t.Errorf("many parts: signals %v lack mime-limit", r.Signals)
	}
	big := "Subject: " + strings.Repeat("a", 1<<20) + "\n\nbody\n"
	r = classify([]byte(big), Envelope{})
	if len(r.Subject) > 255 {
		t.Errorf("subject kept %d bytes", len(r.Subject))
	}
}

func TestFindAddrs(t *testing.T) {
	got := findAddrs("<a.b+c@x.example.org>: user unknown; bad@host; x@1.2.3.4; (trap@trap.blowback.test.) @ c@d.io", 10)
	want := []string{"a.b+c@x.example.org", "trap@trap.blowback.test", "c@d.io"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("findAddrs = %q, want %q", got, want)
	}
}

func TestGuessCharset(t *testing.T) {
	check := func(text string, enc encoding.Encoding, want string) {
		t.Helper()
		if got := guessCharset(encodeText(enc, text)); got != want {
			t.Errorf("guessCharset(%q in %s) = %s", text, want, got)
		}
	}
	check("Die Nachricht an <k@example.at> konnte nicht ausgeliefert werden: Empfänger unbekannt.", charmap.ISO8859_1, "windows-1252")
	check("Votre message n'a pas pu être délivré à l'adresse indiquée.", charmap.Windows1252, "windows-1252")
	check("您的邮件无法投递：收件人 zhao@example.cn 不存在。", simplifiedchinese.GBK, "gbk")
	check("Ваше сообщение не было доставлено адресату: адресат не найден.", charmap.KOI8R, "koi8-r")
	check("Не удалось доставить письмо получателю, получатель не найден.", charmap.Windows1251, "windows-1251")
}
