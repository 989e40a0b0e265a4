package trap

import (
	"bufio"
	"bytes"
	"mime"
	"net/mail"
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
}

// Classify decides what a message is. It never fails: unparseable input is
// KindOther with a signal saying why.
func Classify(msg []byte, env Envelope) Result {
	var r Result
	m, err := mail.ReadMessage(bufio.NewReader(bytes.NewReader(msg)))
	if err != nil {
		r.Signals = append(r.Signals, "unparseable-header")
		return r
	}
	h := m.Header
	dec := new(mime.WordDecoder)
	r.MessageID = strings.TrimSpace(h.Get("Message-Id"))
	r.From = h.Get("From")
	if s, err := dec.DecodeHeader(h.Get("Subject")); err == nil {
		r.Subject = s
	} else {
		r.Subject = h.Get("Subject")
	}
	mt, params, _ := mime.ParseMediaType(h.Get("Content-Type"))
	if mt == "multipart/report" && strings.EqualFold(params["report-type"], "delivery-status") {
		r.Kind = store.KindBounce
		r.SubKind = "dsn"
		r.Signals = append(r.Signals, "multipart/report;delivery-status")
		return r
	}
	return r
}
