package classify

// Signature tables. Every pattern is lower case and matched as a substring
// of text whose whitespace was collapsed to single spaces (see normText), so
// a phrase wrapped over two lines still matches. The names are what ends up
// in Result.Signals: keep them short and stable.
//
// The phrases were collected from the bounce texts of the MTAs themselves and
// from what bounce parsers and filters look for (sisimai's Lhost modules,
// SpamAssassin's 20_vbounce.cf, Rspamd's bounce.lua); they are written down
// here from those sources' behaviour, not copied.

// ndrSig names a non-standard bounce format by phrases its notices carry.
type ndrSig struct {
	name string
	pats []string
}

var ndrSigs = []ndrSig{
	{"postfix", []string{
		"this is the mail system at host",
		"this is the postfix program at host",
		"postfix smtp server: errors from",
		"i'm sorry to have to inform you that your message could not be delivered to one or more recipients",
		"the mail system <",
	}},
	{"yahoo", []string{
		"sorry, we were unable to deliver your message to the following address",
		"message from yahoo! mail",
		"we have been unable to deliver your message",
	}},
	{"qmail", []string{
		"this is the qmail-send program at",
		"i'm afraid i wasn't able to deliver your message to the following addresses",
		"this is a permanent error; i've given up",
		"--- below this line is a copy of the message",
		"this is the notqmail-send program",
		"vpopmail",
	}},
	{"exim", []string{
		"this message was created automatically by mail delivery software",
		"a message that you sent could not be delivered to one or more of its recipients",
		"a message that you sent has not yet been delivered to one or more of its recipients",
		"------ this is a copy of the message, including all the headers",
		"------ this is a copy of the body of the message, without the headers",
		"------ this is a copy of your message, including all the headers",
		"a message that you sent contained one or more recipient addresses that were incorrectly constructed",
		"the following address(es) failed",
	}},
	{"sendmail", []string{
		"----- the following addresses had permanent fatal errors -----",
		"----- transcript of session follows -----",
		"the original message was received at",
		"----- the following addresses had transient non-fatal errors -----",
		"----- original message follows -----",
		"----- message header follows -----",
		"-----unsent message follows-----",
		"----- unsent message follows -----",
	}},
	{"exchange", []string{
		"delivery has failed to these recipients or groups",
		"your message did not reach some or all of the intended recipients",
		"the following recipient(s) cannot be reached",
		"diagnostic information for administrators",
		"the following recipient(s) could not be reached",
		"delivery to the following recipients failed",
		"delivery to these recipients or groups is complete, but no delivery notification was sent by the destination server",
		"your message has been delivered to the following recipients",
		"original message details",
		"more info for email admins",
		"your message to", // paired below with "couldn't be delivered"
		"couldn't be delivered",
		"message could not be delivered",
		"the e-mail account does not exist at the organization this message was sent to",
		"microsoft exchange server",
		"remote server returned '",
		"did not reach the following recipient(s)",
		"did not reach the following recipients",
		"delivery to the following recipients has been delayed",
		"delivery is delayed to these recipients or groups",
	}},
	{"gmail", []string{
		"delivery to the following recipient failed permanently",
		"delivery to the following recipients failed permanently",
		"this is an automatically generated delivery status notification",
		"the response from the remote server was",
		"the recipient server did not accept our requests to connect",
		"your message wasn't delivered to",
		"your message wasn't delivered because",
		"google tried to deliver your message",
		"delivery to the following recipient has been delayed",
		"message will be retried for",
		"we're writing to let you know that the group you tried to contact",
	}},
	{"aol", []string{
		"your mail to the following recipients could not be delivered",
		"the mail you sent could not be delivered to",
	}},
	{"courier", []string{
		"this is a delivery status notification from",
		"your message to the following recipients cannot be delivered",
		"courier mail server at",
		",,,,,,,,,,,,,,,,,,,,,,,,,,,,",
	}},
	{"opensmtpd", []string{
		"this is the mailer-daemon at",
		"an error has occurred while attempting to deliver a message for the following list of recipients",
		"below is a copy of the original message",
	}},
	{"lotus", []string{
		"was not delivered to:",
		"delivery failure report",
		"the following recipients were not delivered",
		"your message was not delivered to",
		"was not delivered because",
		"lotus notes",
		"domino",
		"------- failure reasons --------",
	}},
	{"groupwise", []string{
		"the attached file had the following undeliverable recipient(s)",
		"message status - undeliverable",
		"the message that you sent was not delivered to the following",
		"this message was not delivered to the following recipients",
	}},
	{"messagingserver", []string{
		"this report relates to a message you sent with the following header fields",
		"your message cannot be delivered to the following recipients",
		"your message has been delayed and is still awaiting delivery",
	}},
	{"dma", []string{
		"this is the dragonfly mail agent",
		"there was an error delivering your mail to",
	}},
	{"ezweb", []string{
		"each of the following recipients was rejected by a remote mail server",
		"the user(s) account is disabled",
	}},
	{"interscan", []string{
		"message from interscan messaging security suite",
	}},
	{"x6", []string{
		"we had trouble delivering your message. full details follow",
	}},
	{"x2", []string{
		"unable to deliver message to the following address(es)",
	}},
	{"smail", []string{
		"failed addresses follow:",
		"message log follows:",
	}},
	{"kddi", []string{
		"your mail sent on:",
		"could not be delivered to: <",
	}},
	{"messagelabs", []string{
		"this is the mail delivery agent at",
		"i was unable to deliver your message to the following addresses",
	}},
	{"mcafee", []string{
		"--- the following addresses had delivery problems ---",
		"unable to deliver the message to the following recipients",
	}},
	{"imail", []string{
		"body of message generated response",
		"original message follows",
		"unknown user:",
	}},
	{"amazonses", []string{
		"an error occurred while trying to deliver the mail to the following recipients",
	}},
	{"mailru", []string{
		"message was not accepted",
	}},
	{"barracuda", []string{
		"your message could not be delivered",
		"barracuda",
	}},
	{"mimecast", []string{
		"your message couldn't be delivered",
		"mimecast",
	}},
	{"generic", []string{
		"delivery status notification",
		"could not be delivered to the following recipients",
		"could not be delivered to one or more recipients",
		"message could not be delivered to the following",
		"unable to deliver your message",
		"unable to deliver message to the following",
		"undeliverable mail",
		"your message could not be delivered",
		"your email could not be delivered",
		"your e-mail could not be delivered",
		"was undeliverable",
		"the following message to <",
		"permanent fatal errors",
		"recipient address rejected",
		"mailbox unavailable",
		"user unknown",
		"unknown user",
		"no such user",
		"mailbox full",
		"mailbox is full",
		"over quota",
		"quota exceeded",
		"addressee unknown",
		"account is disabled",
		"account has been disabled",
		"does not exist",
		"invalid user address",
		"message rejected",
		"giving up on",
		"failed permanently",
		"failed to deliver",
		"delivery failed",
		"could not deliver",
		"delivery to the following",
	}},
	// Free-text notices of MTAs, webmail systems and list managers that
	// send no DSN part, by language ("lang-*" names no software).
	{"lang-fr", []string{
		"votre message n'a pas pu être délivré", "n'a pas pu être délivré", "n'a pas pu être remis",
		"n'a pas pu être distribué", "impossible de remettre le message", "le message n'a pas pu être envoyé",
		"votre message n'a pas été remis", "destinataire inconnu", "ce message a été généré automatiquement par le système de messagerie",
		"n'a pas pu être acheminé",
	}},
	{"lang-de", []string{
		"konnte nicht zugestellt werden", "konnte nicht ausgeliefert werden", "ihre nachricht konnte nicht",
		"die nachricht wurde nicht zugestellt", "zustellung fehlgeschlagen", "empfänger unbekannt",
		"unbekannter empfänger", "nicht zustellbar", "die folgende adresse ist ungültig",
	}},
	{"lang-es", []string{
		"no se pudo entregar", "no ha podido ser entregado", "no pudo ser entregado", "no se ha podido entregar",
		"no pudo entregarse", "destinatario desconocido", "error al entregar el mensaje", "falló la entrega",
		"no ha sido entregado",
	}},
	{"lang-pt", []string{
		"não pôde ser entregue", "não foi possível entregar", "não foi entregue", "falha na entrega",
		"destinatário desconhecido", "não pode ser entregue", "mensagem não entregue",
	}},
	{"lang-it", []string{
		"non è stato possibile recapitare", "impossibile recapitare", "non può essere recapitato",
		"non è stato recapitato", "non è stato consegnato", "mancato recapito", "destinatario sconosciuto",
		"impossibile consegnare il messaggio",
	}},
	{"lang-pl", []string{
		"nie może być dostarczona", "nie mogła zostać dostarczona", "nie została dostarczona",
		"nie można dostarczyć", "nie udało się dostarczyć", "adresat nieznany", "nieznany adresat", "nieznany odbiorca",
	}},
	{"lang-ru", []string{
		"не может быть доставлено", "не было доставлено", "не удалось доставить", "не доставлено",
		"адресат не найден", "получатель не найден", "ошибка доставки", "невозможно доставить",
		"это письмо создано автоматически", "сообщение не доставлено",
	}},
	{"lang-zh", []string{
		"无法投递", "无法送达", "投递失败", "邮件无法发送", "收件人不存在", "系统退信", "未能送达", "无法发送到",
		"無法傳遞", "無法送達", "傳送失敗", "郵件無法", "收件人不存在", "未能送達", "退信通知", "退回的邮件",
	}},
	{"lang-nl", []string{
		"kon niet worden bezorgd", "kon niet worden afgeleverd", "onbestelbaar", "niet afgeleverd",
	}},
	{"japanese", []string{
		"送信できませんでした",
		"配信できませんでした",
		"届きませんでした",
		"配送できませんでした",
		"宛先不明",
		"宛先のメールアドレスが見つかりません",
		"メールアドレスが存在しません",
		"送信に失敗しました",
		"配信に失敗しました",
		"受信拒否",
		"このメールは自動的に生成",
		"メールを配信できません",
		"送信したメールは",
	}},
}

// gatewaySigs name the anti-virus and content-filter gateways by what their
// notices carry (product names in the sender's name, subject or text, and
// fixed phrases of their default templates).
var gatewaySigs = []ndrSig{
	{"interscan", []string{"interscan messaging security", "interscan mss", "interscan virusw", "trend micro", "scanmail for"}},
	{"mcafee", []string{"mcafee email gateway", "mcafee email security", "mcafee web gateway", "groupshield", "webshield", "mcafee"}},
	{"sophos", []string{"sophos email appliance", "sophos email", "puremessage", "sophos"}},
	{"symantec", []string{"symantec mail security", "symantec messaging gateway", "brightmail", "messagelabs", "symantec"}},
	{"barracuda", []string{"message you sent blocked by our bulk email filter", "barracuda"}},
	{"proofpoint", []string{"proofpoint", "pphosted.com"}},
	{"mimecast", []string{"mimecast"}},
	{"mailscanner", []string{"mailscanner"}},
	{"amavis", []string{"generated by the program amavisd", "amavisd-new", "amavis", "content-filter at"}},
}

// strongNDR are the vendor phrases specific enough to decide alone (their
// signal is "ndr:<name>"); generic and single-word ones only add weight.
var weakNDRPhrases = map[string]bool{
	"your message to": true, "couldn't be delivered": true, "domino": true, "lotus notes": true,
	"barracuda": true, "mimecast": true, "microsoft exchange server": true, "vpopmail": true,
	"original message follows": true, "original message details": true, "unknown user:": true,
	"below is a copy of the original message": true, "was not delivered because": true,
	"the mail system <": true, "message was not accepted": true, "message could not be delivered": true,
	",,,,,,,,,,,,,,,,,,,,,,,,,,,,": true, "your message could not be delivered": true, "your message couldn't be delivered": true,
}

// bounceSubjects: subject phrases of delivery reports (Rspamd SUBJ_BOUNCE_WORDS
// and SpamAssassin __BOUNCE_* cover the English ones).
var bounceSubjects = []string{
	"undeliverable", "undelivered", "undeliverd", "returned mail", "return mail", "returned to sender",
	"delivery status notification", "delivery failure", "delivery failed", "delivery has failed",
	"failure notice", "failure delivery", "mail delivery failed", "mail delivery failure",
	"message delivery failure", "delivery problem", "could not send message", "couldn't be delivered",
	"could not be delivered", "not delivered", "nondeliverable", "non-deliverable", "non delivery",
	"non-delivery", "nondelivery", "delivery notification", "delivery report", "mail failure",
	"returned e-mail", "returned email", "message not delivered", "delivery warning", "delayed mail",
	"warning: could not send", "delivery delayed", "message delayed", "mail system error",
	"unable to deliver", "user unknown", "hasn't been delivered", "has not been delivered",
	"delivery status", "mail could not be delivered", "message could not be delivered",
	"unzustellbar", "nicht zustellbar", "non remis", "non distribuable", "échec de la remise",
	"notification d'état de la distribution", "no se puede entregar", "no entregado", "não entregue",
	"niet bestelbaar", "onbestelbaar", "non recapitabile", "impossibile recapitare", "olevererbart",
	"ikke leveret", "nie dostarczono", "недоставленное", "не доставлено", "не удалось доставить",
	"不達", "配信エラー", "配送エラー", "送信エラー", "メールエラー", "未配達", "未達", "エラー通知",
	"退信", "無法傳遞", "无法投递", "无法送达", "傳送失敗", "发送失败", "전달되지", "반송",
	"mail returned", "bounced mail", "bounce notification", "delivery error", "mail error",
	"message undeliverable", "message status - undeliverable", "dsn", "ndn:", "ndr:",
	"returned mail:", "delivery failure report", "mail delivery problem", "rejected:",
	"returning to sender", "mail failed", "errors from", "could not deliver",
}

// daemonLocals are local parts of report senders (SpamAssassin
// __BOUNCE_FROM_DAEMON and friends).
var daemonLocals = []string{
	"mailer-daemon", "mailer_daemon", "mailerdaemon", "maildaemon", "mail-daemon", "mail_daemon",
	"postmaster", "post_master", "post-master", "poostmaster", "mdaemon", "mailadmin", "mailmaster",
	"bounce", "bounces", "bouncer", "bounce-notification", "mail-delivery", "maildelivery",
	"nobody", "deliverystatus", "delivery-status", "ndr", "dsn", "daemon", "smtp.gateway", "smtp_gateway",
	"mail-error", "mailerror", "mail.system", "mailsystem", "sysadmin", "administrator", "root",
}

// daemonNames are display names of report senders.
var daemonNames = []string{
	"mail delivery system", "mail delivery subsystem", "mail administrator", "mailer daemon",
	"mailer-daemon", "internet mail delivery", "mail delivery service", "mail delivery",
	"system administrator", "microsoft outlook", "postmaster", "mail system", "ndr administrator",
	"delivery status notification", "message delivery", "mail router", "mail server",
}

// delaySubjects/delayBody mark warnings about delayed delivery: RFC 3464
// Action: delayed, written out in text by MTAs that do not send DSNs.
var delaySubjects = []string{
	"delayed mail", "delivery delayed", "message delayed", "delivery status notification (delay)",
	"warning: could not send message for past", "delivery warning", "delay notification",
	"still being retried", "mail delivery delayed", "delayed delivery", "message delivery delayed",
	"zustellung verzögert", "remise différée", "配送遅延",
}

var delayBody = []string{
	"this is a warning message only",
	"you do not need to resend your message",
	"delivery attempts will continue to be made",
	"will continue trying to deliver",
	"is still being retried",
	"has not yet been delivered to one or more of its recipients",
	"your message has been delayed",
	"delivery to the following recipient has been delayed",
	"delivery to the following recipients has been delayed",
	"delivery is delayed to these recipients or groups",
	"message will be retried for",
	"no action is required on your part",
	"the server will retry",
	"will retry for",
	"could not be delivered for",
	"still trying",
}

// avSubjects/avBody mark anti-virus and content-filter notices about mail
// "you" sent (SpamAssassin 20_vbounce.cf __VBOUNCE_*).
var avSubjects = []string{
	"virus", "infected", "malware", "quarantine", "banned attachment", "blocked attachment",
	"disallowed attachment", "content violation", "antivirus", "anti-virus", "scanmail",
	"interscan", "mailmarshal", "mailsweeper", "groupshield", "security alert", "policy violation",
	"file type forbidden", "banned or potentially offensive material", "report to sender",
	"antigen found", "nav detected", "norton antivirus", "message blocked", "blocked message",
	"spam detected", "possible spam", "identified as spam", "your message was blocked",
	"mail rejected", "email rejected",
}

var avBody = []string{
	"virus", "infected", "malware", "worm", "trojan", "quarantined", "has been quarantined",
	"a potentially executable attachment", "has stripped one or more attachments",
	"contains file attachments that are not permitted", "unrepairable virus", "illegal attachment",
	"the infected attachment", "banned file", "banned attachment", "blocked attachment",
	"dangerous attachment", "antivirus", "anti-virus", "v i r u s", "content filter",
	"blocked by mailsweeper", "virus scanner deleted your message", "incident information:",
	"identified as spam", "classified as spam", "considered spam", "detected as spam",
	"looks like spam", "marked as spam", "rejected as spam", "spam score", "is spam",
	"blocked by our spam", "spam filter", "spam-filter", "spamfilter", "junk mail filter",
	"bulk email filter", "policy violation", "content policy", "blocked because it contains",
}

// smtpDiagnostics are fragments of SMTP replies and reasons quoted in bounce
// texts.
var smtpDiagnostics = []string{
	"<<< 5", "<<< 4", "said: 5", "said: 4", "said:5", "550 ", "551 ", "552 ", "553 ", "554 ", "450 ", "451 ",
	"452 ", "421 ", "550-", "554-", "5.1.1", "5.1.0", "5.2.2", "5.7.1", "5.0.0", "5.4.4", "4.4.1",
	"4.2.2", "user unknown", "unknown user", "no such user", "mailbox unavailable", "mailbox full",
	"over quota", "quota exceeded", "does not exist", "host not found", "relay access denied",
	"relaying denied", "recipient rejected", "address rejected", "invalid recipient",
	"remote host said", "remote server returned", "connection timed out", "name service error",
	"host unknown", "no mx", "the recipient's mailbox is full", "account is disabled",
	"diagnostic-code:", "status: 5.", "status: 4.",
}

// autoreplySubjects are subject prefixes or phrases of auto-responders
// (SpamAssassin __BOUNCE_OOO_*, sisimai RFC3834 and vendor defaults).
var autoreplySubjects = []string{
	"auto:", "automatic reply", "autoreply", "auto-reply", "auto reply", "auto response",
	"autoresponse", "autorespons", "auto-response", "automatic response", "automated response",
	"automated reply", "automatically generated response", "auto-respond e-mail",
	"out of office", "out of the office", "out-of-office", "ooo:", "away from the office",
	"away from my desk", "on vacation", "vacation reply", "vacation:", "on leave", "away until",
	"abwesenheitsnotiz", "abwesenheit", "automatische antwort", "außer haus", "ausser haus",
	"réponse automatique", "reponse automatique", "absence du bureau", "risposta automatica",
	"fuori ufficio", "respuesta automática", "respuesta automatica", "mensaje de respuesta automática",
	"fuera de la oficina", "resposta automática", "resposta automatica", "ausente",
	"automatisch antwoord", "afwezig", "autosvar", "automatisk svar", "automaattinen vastaus",
	"automatyczna odpowiedź", "nieobecność", "automatická odpověď", "автоматический ответ",
	"автоответ", "自動応答", "自動返信", "不在", "自动回复", "自動回覆", "자동 응답", "부재",
	"yahoo! auto response", "thank you for your email", "thank you for your e-mail",
	"thank you for your message", "thank you for contacting", "thanks for your email",
	"we have received your", "we received your", "your request has been received",
	"has been received", "ticket", "[#", "case #", "no longer with", "no longer in use",
	"address change", "new email address", "changed my email",
}

// autoreplyBody are phrases of vacation and acknowledgement texts.
var autoreplyBody = []string{
	"i am currently out of the office", "i'm currently out of the office", "i am out of the office",
	"i'm out of the office", "i will be out of the office", "i'll be out of the office",
	"i am away from the office", "i am currently away", "i'm currently away", "i am on vacation",
	"i'm on vacation", "i am on leave", "i'm on leave", "i am away", "i'm away", "i will be away",
	"limited access to email", "limited access to e-mail", "upon my return", "when i return",
	"i will return", "i'll return", "i will be back", "i'll be back", "returning to the office",
	"back in the office", "this is an automated response", "this is an automatic reply",
	"this is an automatic response", "this is an auto-reply", "this is an autoreply",
	"this is an autoresponder", "auto-generated response", "i will not be reading my mail for a while",
	"will be read when i'm back", "will be read when i return", "i'll never see your message",
	"no longer in use", "is no longer monitored", "is not monitored", "no longer with the company",
	"no longer work", "has left the company", "is no longer valid", "thank you for your email",
	"thank you for your e-mail", "thank you for your message", "thank you for contacting",
	"we have received your", "we received your", "your request has been received",
	"your ticket", "ticket number", "will get back to you", "will respond to your",
	"will reply to your", "respond as soon as", "reply as soon as", "abwesend", "nicht im büro",
	"außer haus", "absent du bureau", "je suis absent", "fuori ufficio", "fuera de la oficina",
	"不在", "自動応答", "自動返信",
}

// autoreplyHeaders are vendor markers of auto-responses. Value "" means the
// field's presence is enough; otherwise its value must contain it.
var autoreplyHeaders = []struct{ name, value, signal string }{
	{"X-Autoreply", "", "x-autoreply"},
	{"X-Autorespond", "", "x-autorespond"},
	{"X-Autoresponder", "", "x-autoresponder"},
	{"X-AutoReply-From", "", "x-autoreply-from"},
	{"X-Mail-Autoreply", "", "x-mail-autoreply"},
	{"X-Auto-Reply", "", "x-auto-reply"},
	{"X-Autogenerated", "reply", "x-autogenerated"},
	{"X-Apple-Action", "vacation", "x-apple-action"},
	{"X-Vacation", "", "x-vacation"},
	{"X-FC-MachineGenerated", "true", "x-fc-machinegenerated"},
	{"X-POST-MessageClass", "autoresponder", "x-post-messageclass"},
	{"Precedence", "auto_reply", "precedence:auto_reply"},
	{"X-Precedence", "auto_reply", "precedence:auto_reply"},
	{"X-Mailer", "vacation", "x-mailer:vacation"},
	{"X-Mailer", "autorespond", "x-mailer:autoresponder"},
	{"X-Mailer", "auto-reply", "x-mailer:autoreply"},
	{"X-Mailer", "autoreply", "x-mailer:autoreply"},
	{"X-Yahoo-Newman-Property", "autoreply", "yahoo-autoreply"},
	{"X-MS-Exchange-Generated-Message-Source", "mailbox rules", "exchange-rules"},
	{"X-MS-Exchange-Inbox-Rules-Loop", "", "exchange-inbox-rules"},
	{"X-Autoreply-Type", "", "x-autoreply-type"},
	{"Auto-Submitted", "auto-notified", "auto-submitted:auto-notified"},
}

// challengeSig identifies a challenge-response system (SpamAssassin
// __CRBOUNCE_*; vendors' own notices). They are checked before DSN parsing:
// some (Boxbe) send well-formed RFC 3464 reports.
type challengeSig struct {
	name     string
	headers  []string    // any of these fields present
	hdrMatch [][2]string // field contains value (lower case)
	domains  []string    // in From, Reply-To, Sender, Message-ID or a link
	subjects []string
}

var challengeSigs = []challengeSig{
	{name: "boxbe", headers: []string{"X-Boxbe-Challenge", "X-Boxbe-Request"}, domains: []string{"boxbe.com"}},
	{name: "spamarrest", headers: []string{"X-Spamarrest-noauth", "X-SpamArrest-Challenge"}, domains: []string{"spamarrest.com"}},
	{name: "mailinblack", hdrMatch: [][2]string{{"Content-Type", "multipartboundary_mailinblack"}, {"X-Mailer", "mailinblack"}}, domains: []string{"mailinblack.com", "mailinblack.fr"}},
	{name: "tmda", hdrMatch: [][2]string{{"Message-Id", "-tmda-confirm"}, {"X-Delivery-Agent", "tmda"}, {"Reply-To", "-confirm-"}}, headers: []string{"X-TMDA-Confirm", "X-TMDA-Fingerprint"}},
	{name: "ask", headers: []string{"X-AskVersion"}},
	{name: "spamazoid", headers: []string{"X-Spamazoid-MD"}},
	{name: "spamlion", headers: []string{"Spamlion"}},
	{name: "boxtrapper", headers: []string{"X-Boxtrapper"}},
	{name: "bluebottle", headers: []string{"X-Bluebottle-Request"}},
	{name: "exispam", hdrMatch: [][2]string{{"X-ExiSpam", "exispam"}}},
	{name: "choicemail", headers: []string{"X-Choicemail-Registration-Request"}, domains: []string{"digiportal.com"}},
	{name: "qurb", subjects: []string{"[qurb #"}},
	{name: "uol-antispam", hdrMatch: [][2]string{{"From", "antispam uol"}, {"From", "antispam bol"}}},
	{name: "earthlink", hdrMatch: [][2]string{{"From", "spamblocker-challenge"}, {"Return-Path", "spamblocker-challenge"}}, subjects: []string{"[spamblocker challenge]"}},
	{name: "vanquish", domains: []string{"spamguard.vanquish.com"}},
	{name: "0spam", domains: []string{"0spam.com"}},
	{name: "si20", domains: []string{"si20.com"}},
	{name: "spamstomp", domains: []string{"spamstomp.com"}},
	{name: "ipermitmail", domains: []string{"ipermitmail.com"}},
	{name: "sendio", domains: []string{"sendio.com"}},
	{name: "mailblocks", domains: []string{"mailblocks.com"}},
	{name: "hushmail-verify", hdrMatch: [][2]string{{"Precedence", "spam"}}},
	{name: "generic", hdrMatch: [][2]string{{"Return-Path", "spambush"}, {"Return-Path", "apd.sspam"}, {"Return-Path", "spamhippo"}, {"Return-Path", "devnull-quarantine"}},
		subjects: []string{"your email requires verification", "please verify your email address", "unverified email to",
			"please confirm your message", "please confirm your e-mail", "please confirm your email",
			"confirmation required", "verification required", "sender verification", "demande d'authentification",
			"authentification requise", "authentication request", "request to join my guest list", "guest list request",
			"anti-spam verification", "antispam verification", "verify your message", "verify your e-mail",
			"confirm your message", "please confirm you are human"}},
}

// challengeBody are phrase groups: a text carries a challenge when it asks
// the sender to act (verb group) so that a held message gets through (hold
// group).
var challengeAct = []string{
	"simply reply", "just reply", "please confirm", "please verify", "confirm that you", "verify that you",
	"confirm your message", "verify your message", "confirm your email", "verify your email",
	"prove that you", "prove you are", "you are a human", "you are a real person", "not a robot",
	"authenticate yourself", "validate your", "cliquez sur le lien", "veuillez confirmer", "bitte bestätigen",
}

var challengeHold = []string{
	"whitelist", "white list", "white-list", "approved senders", "approved sender list", "guest list",
	"allowed senders", "trusted senders", "safe sender list", "held pending", "pending verification",
	"awaiting verification", "until you confirm", "until you verify", "once you confirm", "once you verify",
	"after you confirm", "after you verify", "be delivered once", "be delivered after you",
	"challenge-response", "challenge/response", "liste blanche", "spam-schutz",
}

// executableExts are attachment types that have no business in a delivery
// report (RFC 3464 §6.3 returns them inside message/rfc822 only).
var executableExts = []string{
	".exe", ".scr", ".pif", ".com", ".bat", ".cmd", ".vbs", ".vbe", ".js", ".jse", ".wsf", ".wsh",
	".hta", ".cpl", ".msi", ".msc", ".jar", ".lnk", ".ps1", ".reg", ".dll", ".iso", ".img", ".vhd",
	".zip", ".rar", ".7z", ".ace", ".arj", ".cab", ".r00", ".gz", ".tgz", ".bz2", ".xz", ".z",
	".docm", ".xlsm", ".pptm", ".xlam", ".html", ".htm", ".shtml", ".svg",
}

var executableTypes = []string{
	"application/x-msdownload", "application/x-msdos-program", "application/x-ms-dos-executable",
	"application/x-executable", "application/x-dosexec", "application/x-exe", "application/exe",
	"application/zip", "application/x-zip", "application/x-zip-compressed", "application/x-rar",
	"application/x-rar-compressed", "application/vnd.rar", "application/x-7z-compressed",
	"application/java-archive", "application/hta", "application/x-javascript",
	"application/x-ms-shortcut", "application/x-iso9660-image",
}

// benignLinkHosts are hosts whose links real bounces carry (help pages of
// mail providers, blocklist lookups); links elsewhere in a bounce text
// without a returned message are the mark of a fake.
var benignLinkHosts = []string{
	"microsoft.com", "office.com", "outlook.com", "aka.ms", "office365.com", "live.com", "hotmail.com",
	"google.com", "gmail.com", "googlegroups.com", "yahoo.com", "yahoo.co.jp", "aol.com", "apple.com",
	"icloud.com", "amazon.com", "amazonaws.com", "spamhaus.org", "spamcop.net", "barracudacentral.org",
	"barracuda.com", "senderbase.org", "talosintelligence.com", "sorbs.net", "mimecast.com",
	"proofpoint.com", "messagelabs.com", "symantec.com", "trendmicro.com", "mcafee.com", "cisco.com",
	"ietf.org", "rfc-editor.org", "iana.org", "postmaster.", "support.", "help.", "mail.ru", "yandex.ru",
	"gmx.net", "gmx.de", "web.de", "orange.fr", "free.fr", "comcast.net", "att.net", "verizon.net",
	"cloudflare.com", "zoho.com", "sendgrid.com", "mailchannels.com", "example.com", "example.net",
	"example.org", "example.jp", "uribl.com", "surbl.org", "mxtoolbox.com", "abuseat.org", "spamrats.com",
	"barracudanetworks.com", "cloudmark.com", "returnpath.net", "validity.com", "dnsbl.info", "manitu.net",
}

// inlineOriginalMarkers introduce a returned message inside a text part
// (bounces that are not MIME, or put the copy in the same part).
var inlineOriginalMarkers = []string{
	"--- below this line is a copy of the message",
	"------ this is a copy of the message, including all the headers",
	"------ this is a copy of the body of the message",
	"------ this is a copy of your message",
	"message headers follow.",
	"------- returned message --------",
	"----- original message follows -----",
	"----- unsent message follows -----",
	"-----unsent message follows-----",
	"----- message header follows -----",
	"original message follows",
	"original message headers:",
	"--- original message follows",
	"below is a copy of the original message",
	"the original message was:",
	"original message:",
	"-----original message-----",
	"----- original message -----",
	"-------original mail info",
	"original mail as follows",
	"bounced e-mail:",
	"message text follows:",
	"message header follows",
	"returned message",
	"the header of the original message is",
	"headers of the original message",
	"original message header",
	"------ original message header",
	"以下は元のメッセージ",
	"元のメール",
}
