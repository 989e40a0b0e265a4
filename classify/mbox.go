package classify

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/mail"
	"strings"
)

// ErrNotMbox: the input does not start with a "From " line.
var ErrNotMbox = errors.New("classify: not an mbox file (the first line is not a \"From \" line)")

// MboxReader splits a mailbox into messages at "From " lines (RFC 4155).
// mboxrd unquotes ">+From " by one ">"; mboxo unquotes only ">From ".
type MboxReader struct {
	br    *bufio.Reader
	rd    bool
	next  string // the From_ line that starts the next message
	begun bool
}

// NewMboxReader reads r as mboxrd (mboxrd true) or mboxo.
func NewMboxReader(r io.Reader, mboxrd bool) *MboxReader {
	return &MboxReader{br: bufio.NewReaderSize(r, 64<<10), rd: mboxrd}
}

// maxMboxLine bounds one line; longer lines are cut.
const maxMboxLine = 1 << 20

// Next returns the next message (CRLF line ends) and the sender of its
// From_ line, or io.EOF.
func (m *MboxReader) Next() ([]byte, string, error) {
	if !m.begun {
		m.begun = true
		for {
			line, err := m.readLine()
			if err != nil {
				return nil, "", err
			}
			if strings.HasPrefix(line, "From ") {
				m.next = line
				break
			}
			if strings.TrimSpace(line) != "" {
				return nil, "", ErrNotMbox
			}
		}
	}
	if m.next == "" {
		return nil, "", io.EOF
	}
	from := fromLineSender(m.next)
	m.next = ""
	var buf bytes.Buffer
	blank := false // the previous line was empty
	pendingBlank := false
	for {
		line, err := m.readLine()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, "", err
		}
		if strings.HasPrefix(line, "From ") && (blank || buf.Len() == 0) {
			m.next = line
			break
		}
		if pendingBlank {
			buf.WriteString("\r\n")
			pendingBlank = false
		}
		if line == "" {
			// Hold a blank line back: the one before a From_ line belongs to the mbox.
			pendingBlank, blank = true, true
			continue
		}
		blank = false
		if q := strings.TrimLeft(line, ">"); len(q) < len(line) && strings.HasPrefix(q, "From ") && (m.rd || len(line)-len(q) == 1) {
			line = line[1:]
		}
		buf.WriteString(line)
		buf.WriteString("\r\n")
	}
	return buf.Bytes(), from, nil
}

func (m *MboxReader) readLine() (string, error) {
	var sb strings.Builder
	for {
		frag, isPrefix, err := m.br.ReadLine()
		if err != nil {
			if sb.Len() > 0 && errors.Is(err, io.EOF) {
				return sb.String(), nil
			}
			return "", err
		}
		if sb.Len() < maxMboxLine {
			sb.Write(frag)
		}
		if !isPrefix {
			return strings.TrimSuffix(sb.String(), "\r"), nil
		}
	}
}

// fromLineSender is the address of "From sender date".
func fromLineSender(line string) string {
	f := strings.Fields(line)
	if len(f) < 2 {
		return ""
	}
	return f[1]
}

// DeliveredEnvelope reconstructs the envelope of a message taken from a
// mailbox: the recipient as the delivering MTA recorded it (Delivered-To,
// X-Original-To, Envelope-To, X-Envelope-To, else To), the sender from the
// Return-Path it wrote (RFC 5321 §4.4) or the mbox From_ line's sender.
func DeliveredEnvelope(h mail.Header, fromLine string) Envelope {
	var env Envelope
	if rcpt := deliveredRecipient(h); rcpt != "" {
		env.Rcpts = []string{rcpt}
	}
	if rp := strings.TrimSpace(h.Get("Return-Path")); rp != "" {
		f := strings.Trim(rp, "<> ")
		env.MailFrom, env.Null, env.Known = f, f == "", true
	} else if fromLine != "" {
		f := strings.ToLower(fromLine)
		if f == "mailer-daemon" || f == "<>" || f == "" {
			env.Null, env.Known = true, true
		} else {
			env.MailFrom, env.Known = fromLine, true
		}
	}
	return env
}

// deliveredRecipient is the trap address: the envelope recipient as the
// delivering MTA recorded it, else the To header.
func deliveredRecipient(h mail.Header) string {
	for _, k := range []string{"Delivered-To", "X-Original-To", "Envelope-To", "X-Envelope-To", "To"} {
		v := strings.TrimSpace(h.Get(k))
		if v == "" {
			continue
		}
		if a, err := mail.ParseAddress(v); err == nil {
			return strings.ToLower(a.Address)
		}
		if l, err := mail.ParseAddressList(v); err == nil && len(l) > 0 {
			return strings.ToLower(l[0].Address)
		}
		v = strings.Trim(v, "<> ")
		if strings.Count(v, "@") == 1 && !strings.ContainsAny(v, " ,;") {
			return strings.ToLower(v)
		}
	}
	return ""
}
