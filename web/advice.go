package web

import (
	"net/url"
	"sort"
	"strings"

	"github.com/blowback-dnsbl/blowback/store"
)

// Fix advice: for the software that sent the backscatter (the classifier's
// mta family) and the kind of it, the concrete setting to change, with the
// vendor's documentation. When the software is unknown the page says so
// and shows the generic advice for the kind.

// Advice is the fix for one (software, kind) found in the evidence.
type Advice struct {
	MTA     string       `json:"mta"`      // family from the evidence; empty: unknown
	MTAName string       `json:"mta_name"` // for people, e.g. "Postfix"
	Known   bool         `json:"known"`    // advice specific to this software
	Guessed bool         `json:"guessed,omitempty"`
	Kind    string       `json:"kind"`
	Count   int          `json:"count"` // pieces of evidence it answers
	Title   string       `json:"title"`
	Steps   []AdviceStep `json:"steps"`
}

// AdviceStep is one change: what to do, the setting, the documentation.
type AdviceStep struct {
	Text    string `json:"text"`
	Setting string `json:"setting,omitempty"`
	Docs    string `json:"docs,omitempty"`
	// DocsSite names the documentation's site for the link text.
	DocsSite string `json:"-"`
}

var mtaNames = map[string]string{
	"postfix": "Postfix", "exim": "Exim", "sendmail": "Sendmail", "qmail": "qmail", "exchange": "Microsoft Exchange",
	"domino": "HCL Domino", "gmail": "Gmail / Google Workspace", "zimbra": "Zimbra", "mdaemon": "MDaemon",
}

// adviceKind maps an evidence kind to the advice it needs.
func adviceKind(k store.Kind) string {
	switch k {
	case store.KindBounce:
		return "bounce"
	case store.KindAutoreply:
		return "autoreply"
	case store.KindMDN:
		return "mdn"
	case store.KindCallout:
		return "callout"
	case store.KindChallenge:
		return "challenge"
	}
	return ""
}

const (
	docPostfixConf    = "https://www.postfix.org/postconf.5.html"
	docPostfixBS      = "https://www.postfix.org/BACKSCATTER_README.html"
	docEximACL        = "https://www.exim.org/exim-html-current/doc/html/spec_html/ch-access_control_lists.html"
	docEximRouters    = "https://www.exim.org/exim-html-current/doc/html/spec_html/ch-generic_options_for_routers.html"
	docRFC3834        = "https://www.rfc-editor.org/rfc/rfc3834"
	docRFC8098        = "https://www.rfc-editor.org/rfc/rfc8098"
	docDMARC          = "https://www.rfc-editor.org/rfc/rfc7489"
	docExchangeFilter = "https://learn.microsoft.com/en-us/exchange/antispam-and-antimalware/antispam-protection/recipient-filtering"
	docExchangeDBEB   = "https://learn.microsoft.com/en-us/exchange/mail-flow-best-practices/use-directory-based-edge-blocking"
	docExchangeBS     = "https://learn.microsoft.com/en-us/defender-office-365/anti-spam-backscatter-about"
)

// adviceTable is keyed by "mta/kind"; "/kind" is the generic advice.
var adviceTable = map[string]struct {
	title string
	steps []AdviceStep
}{
	"/bounce": {"Reject unknown recipients during the SMTP session instead of bouncing later", []AdviceStep{
		{Text: "Your server accepted mail for addresses that do not exist and then sent a bounce to the forged sender. Check recipients at RCPT TO and answer 550 for unknown ones: the sending server, not you, then tells its user."},
		{Text: "A relay or spam filter in front of the mailbox server needs the list of valid recipients (or a recipient check against the mailbox server)."},
		{Text: "Do not bounce mail that a content filter (spam, virus) rejects after accepting it: reject it in the session, or quarantine or discard it."},
	}},
	"/autoreply": {"Answer automatically only mail that really came from its sender", []AdviceStep{
		{Text: "Do not reply to mail that failed SPF or DMARC: its sender is forged.", Docs: docDMARC},
		{Text: "Never answer mail with Precedence: bulk, list or junk, with List-Id or List-Unsubscribe, with Auto-Submitted other than no, or with a null or MAILER-DAEMON sender.", Setting: "RFC 3834 §2", Docs: docRFC3834},
		{Text: "Mark your own replies with Auto-Submitted: auto-replied and send them with a null envelope sender; answer each sender at most once every few days.", Setting: "Auto-Submitted: auto-replied", Docs: docRFC3834},
		{Text: "Do not auto-reply to mail your spam filter flagged."},
	}},
	"/mdn": {"Do not send read receipts automatically", []AdviceStep{
		{Text: "A read receipt (MDN) must not be sent without the user's consent, and never for mail that failed SPF or DMARC or was flagged as spam.", Setting: "RFC 8098 §2.1", Docs: docRFC8098},
	}},
	"/callout": {"Stop sender verification callouts, or cache them", []AdviceStep{
		{Text: "Your server checked forged sender addresses by connecting to their mail servers (a callout). Every spam run with forged senders makes it probe innocent servers. Turn sender callouts off; use SPF and DMARC to judge senders instead."},
		{Text: "If you keep them: cache the results (positive and negative) for days, and never call out for mail that already failed SPF or DMARC."},
	}},
	"/challenge": {"Send challenges only to senders who could have sent the mail", []AdviceStep{
		{Text: "A challenge-response system sends its challenge to the forged sender of every spam. Switch it to whitelist-only mode for unauthenticated mail: deliver mail from known senders, quarantine the rest without a challenge."},
		{Text: "If challenges stay on: challenge only mail that passed SPF or DMARC for its sender's domain, and never mail flagged as spam."},
	}},

	"postfix/bounce": {"Postfix: reject unknown recipients at RCPT, never bounce after accepting", []AdviceStep{
		{Text: "Make smtpd reject unknown recipients (the default for local and virtual domains, as long as the recipient maps are set).", Setting: "smtpd_reject_unlisted_recipient = yes", Docs: docPostfixConf + "#smtpd_reject_unlisted_recipient"},
		{Text: "An empty local_recipient_maps accepts every local part and bounces later: keep the default (proxy:unix:passwd.byname $alias_maps) or list your users.", Setting: "local_recipient_maps", Docs: docPostfixConf + "#local_recipient_maps"},
		{Text: "On a relay (a gateway in front of Exchange, Domino, ...) list the valid recipients of relay_domains, or verify them against the inside server.", Setting: "relay_recipient_maps, reject_unverified_recipient", Docs: docPostfixConf + "#relay_recipient_maps"},
		{Text: "An after-queue content filter (content_filter) that rejects mail makes Postfix bounce it: reject in the session (before-queue filter, milter) or discard instead.", Setting: "content_filter / smtpd_milters", Docs: "https://www.postfix.org/FILTER_README.html"},
		{Text: "Postfix's own backscatter guide.", Docs: docPostfixBS},
	}},
	"postfix/callout": {"Postfix: stop sender address verification, or cache it", []AdviceStep{
		{Text: "Remove reject_unverified_sender from your smtpd restrictions (it calls out to the forged sender's servers).", Setting: "reject_unverified_sender", Docs: "https://www.postfix.org/ADDRESS_VERIFICATION_README.html"},
		{Text: "If you keep it, keep a persistent verification cache so each address is probed once.", Setting: "address_verify_map", Docs: docPostfixConf + "#address_verify_map"},
	}},
	"exim/bounce": {"Exim: verify recipients in the RCPT ACL", []AdviceStep{
		{Text: "In acl_smtp_rcpt, refuse recipients that do not route: every domain you accept mail for must be checked.", Setting: "require verify = recipient", Docs: docEximACL},
		{Text: "On a gateway that passes mail to an inside server, verify recipients against it (recipient callout with caching) or a local list; do not accept the whole domain.", Setting: "verify = recipient/callout=use_sender,defer_ok", Docs: docEximACL},
		{Text: "A smarthost (manualroute) router for your domains must end routing when it fails, so unknown recipients are refused instead of falling through and bouncing.", Setting: "no_more", Docs: docEximRouters},
	}},
	"exim/callout": {"Exim: stop sender callouts, or cache them", []AdviceStep{
		{Text: "Remove verify = sender/callout from your ACLs; use SPF and DMARC for senders.", Setting: "verify = sender/callout", Docs: docEximACL},
		{Text: "If you keep them, keep the callout cache (on by default) and do not use no_cache.", Setting: "callout cache", Docs: docEximACL},
	}},
	"exchange/bounce": {"Exchange: reject unknown recipients at the edge", []AdviceStep{
		{Text: "Exchange Server: enable recipient filtering and block messages to recipients not in the directory (Edge Transport, or the anti-spam agents on the Mailbox server).", Setting: "Set-RecipientFilterConfig -RecipientValidationEnabled $true", Docs: docExchangeFilter},
		{Text: "Exchange Online: make the domain authoritative (or use Directory-Based Edge Blocking for internal relay domains) so mail to unknown recipients is rejected in the session.", Setting: "Directory-Based Edge Blocking", Docs: docExchangeDBEB},
		{Text: "Microsoft's page on backscatter.", Docs: docExchangeBS},
	}},
	"exchange/autoreply": {"Exchange: limit automatic replies", []AdviceStep{
		{Text: "Do not send external out-of-office replies to senders outside the organisation, or only to contacts; block auto-replies to remote domains.", Setting: "Set-RemoteDomain Default -AutoReplyEnabled $false", Docs: "https://learn.microsoft.com/en-us/exchange/mail-flow-best-practices/remote-domains/remote-domains"},
	}},
	"sendmail/bounce": {"Sendmail: reject unknown users at RCPT", []AdviceStep{
		{Text: "Map every virtual domain completely and end it with a catch-all error entry, so unknown users are refused in the session.", Setting: "virtusertable: @example.org error:nouser 550 5.1.1 User unknown", Docs: "https://www.sendmail.org/"},
		{Text: "On a relay for an inside server, list the valid recipients (access map To: entries, or ldap_routing with its bounce option) instead of relaying the whole domain.", Setting: "FEATURE(`ldap_routing') / access To:", Docs: "https://www.sendmail.org/"},
	}},
	"qmail/bounce": {"qmail: check recipients in qmail-smtpd", []AdviceStep{
		{Text: "qmail-smtpd accepts every recipient of rcpthosts and bounces unknown ones later. Add a recipient check: a recipient-validation patch (validrcptto, chkuser) or qmail-ldap's RCPTCHECK, or put a front end that validates recipients (mailfront, qpsmtpd) before qmail.", Setting: "RCPTCHECK / validrcptto.cdb", Docs: "http://www.qmail-ldap.org/wiki/index.php/RCPTCHECK"},
		{Text: "notqmail and s/qmail also validate recipients at SMTP time.", Docs: "https://notqmail.org/"},
	}},
	"domino/bounce": {"Domino: verify local recipients in the directory", []AdviceStep{
		{Text: "In the server's Configuration Settings document, Router/SMTP > Restrictions and Controls > SMTP Inbound Controls, enable the directory check of recipients so unknown ones are rejected at RCPT TO.", Setting: "Verify that local domain recipients exist in the Domino Directory", Docs: "https://help.hcl-software.com/domino/10.0.1/conf_specifyinghowdominolooksuptherecipientsofincoming_t.html"},
	}},
	"zimbra/bounce": {"Zimbra: let its Postfix reject unknown recipients", []AdviceStep{
		{Text: "Zimbra's MTA is Postfix: make it reject unlisted recipients at RCPT and check that the LDAP recipient lookups work.", Setting: "zmprov mcf zimbraMtaSmtpdRejectUnlistedRecipient yes", Docs: docPostfixConf + "#smtpd_reject_unlisted_recipient"},
	}},
	"zimbra/autoreply": {"Zimbra: limit out-of-office replies", []AdviceStep{
		{Text: "Limit out-of-office replies to internal senders or to known contacts, and keep the reply cache interval at days, not minutes.", Setting: "zimbraPrefOutOfOfficeExternalReplyEnabled, zimbraPrefOutOfOfficeCacheDuration", Docs: docRFC3834},
	}},
	"mdaemon/bounce": {"MDaemon: refuse mail for unknown local users", []AdviceStep{
		{Text: "In the Unknown Mail settings, refuse mail for unknown local users during the SMTP session instead of returning it to the sender.", Setting: "Refuse to accept mail for unknown local users", Docs: "https://mdaemon.com/"},
		{Text: "If MDaemon is behind a gateway, give the gateway the list of valid recipients (or use MDaemon's gateway verification) so it refuses unknown ones too."},
	}},
	"gmail/autoreply": {"Gmail / Google Workspace: limit vacation replies", []AdviceStep{
		{Text: "Restrict the vacation responder to contacts (or to people in the organisation): Settings > Vacation responder.", Setting: "Only send a response to people in my Contacts", Docs: "https://support.google.com/mail/answer/25922"},
	}},
	"gmail/bounce": {"Google Workspace: bounces after accepting come from routing or forwarding", []AdviceStep{
		{Text: "Gmail rejects unknown recipients in the session itself. Bounces sent after accepting usually come from a routing rule or a forward to another server that then refuses: check Admin console > Apps > Gmail > Routing (catch-all routes, split delivery) and forwards, and send the forwarded mail only after spam filtering."},
	}},
}

// withSites fills DocsSite from each step's link.
func withSites(steps []AdviceStep) []AdviceStep {
	out := make([]AdviceStep, len(steps))
	for i, s := range steps {
		if u, err := url.Parse(s.Docs); err == nil && u.Host != "" {
			s.DocsSite = strings.TrimPrefix(u.Host, "www.")
		}
		out[i] = s
	}
	return out
}

// adviceFor returns the advice for one (mta, kind).
func adviceFor(mta, kind string) Advice {
	a := adviceFor0(mta, kind)
	a.Steps = withSites(a.Steps)
	return a
}

func adviceFor0(mta, kind string) Advice {
	a := Advice{MTA: mta, Kind: kind, MTAName: mtaNames[mta]}
	if a.MTAName == "" && mta != "" {
		a.MTAName = mta
	}
	if e, ok := adviceTable[mta+"/"+kind]; ok && mta != "" {
		a.Known, a.Title, a.Steps = true, e.title, e.steps
		// The generic steps still apply (e.g. SPF/DMARC for auto-replies).
		if g, ok := adviceTable["/"+kind]; ok && kind != "bounce" {
			a.Steps = append(append([]AdviceStep(nil), a.Steps...), g.steps...)
		}
		return a
	}
	g := adviceTable["/"+kind]
	a.Title, a.Steps = g.title, g.steps
	return a
}

// adviceOf turns evidence into advice: one entry per (mta, kind),
// the most frequent first, at most 6.
func adviceOf(evs []store.Event) []Advice {
	type key struct {
		mta, kind string
		guessed   bool
	}
	n := map[key]int{}
	for i := range evs {
		kind := adviceKind(evs[i].Kind)
		if kind == "" {
			continue
		}
		mta, guessed := strings.ToLower(strings.TrimSpace(evs[i].MTA)), false
		if mta == "" {
			mta = guessMTA(&evs[i])
			guessed = mta != ""
		}
		n[key{mta, kind, guessed}]++
	}
	var keys []key
	for k := range n {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if n[keys[i]] != n[keys[j]] {
			return n[keys[i]] > n[keys[j]]
		}
		return keys[i].mta+keys[i].kind < keys[j].mta+keys[j].kind
	})
	out := []Advice{}
	seen := map[string]bool{}
	for _, k := range keys {
		if seen[k.mta+"/"+k.kind] || len(out) == 6 {
			continue
		}
		seen[k.mta+"/"+k.kind] = true
		a := adviceFor(k.mta, k.kind)
		a.Guessed, a.Count = k.guessed, n[k]
		out = append(out, a)
	}
	return out
}

// guessMTA names the software from what older evidence (stored before the
// classifier recorded mta) still carries: the bounce's subject and
// headers, a callout's sender. Empty when it does not say.
func guessMTA(e *store.Event) string {
	subj := strings.ToLower(e.Subject)
	from := strings.ToLower(e.From)
	h := func(k string) string { return strings.ToLower(e.Headers[k]) }
	switch {
	case e.Kind == store.KindCallout:
		for _, s := range e.Signals {
			switch s {
			case "callout-sender:double-bounce":
				return "postfix"
			case "random-local-part":
				return "exim"
			}
		}
	case h("X-MS-Exchange-Message-Is-Ndr") != "" || strings.HasPrefix(subj, "undeliverable:"):
		return "exchange"
	case strings.HasPrefix(subj, "undelivered mail returned to sender") || strings.HasPrefix(subj, "delayed mail (still being retried)"):
		return "postfix"
	case strings.HasPrefix(subj, "mail delivery failed: returning message to sender") || strings.Contains(subj, "warning: message") && strings.Contains(subj, "delayed"):
		return "exim"
	case strings.HasPrefix(subj, "returned mail: see transcript for details") || strings.HasPrefix(subj, "warning: could not send message for past"):
		return "sendmail"
	case subj == "failure notice" && strings.Contains(from, "mailer-daemon"):
		return "qmail"
	case strings.HasPrefix(subj, "delivery failure:") || strings.HasPrefix(subj, "delivery_failure:") || strings.Contains(h("X-Mailer"), "domino"):
		return "domino"
	case strings.Contains(h("X-Mailer"), "zimbra"):
		return "zimbra"
	case strings.HasPrefix(subj, "delivery status notification (failure)") && strings.Contains(strings.ToLower(e.HELO), "google.com"):
		return "gmail"
	}
	return ""
}
