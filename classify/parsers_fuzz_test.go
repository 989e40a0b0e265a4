package classify

import (
	"testing"
	"unicode/utf8"
)

// FuzzReportParsers feeds the report parsers (RFC 3464 DSN, RFC 8098
// MDN, RFC 5965 ARF) arbitrary text directly, faster than through the
// MIME tree that FuzzClassify walks: none may panic, and what a DSN parse
// returns is bounded by its input.
func FuzzReportParsers(f *testing.F) {
	f.Add("Reporting-MTA: dns; mx.example.net\r\n\r\nFinal-Recipient: rfc822; a@b\r\nAction: failed\r\nStatus: 5.1.1\r\n")
	f.Add("Reporting-UA: x; y\r\nFinal-Recipient: rfc822; a@b\r\nOriginal-Message-ID: <m@x>\r\nDisposition: manual-action/MDN-sent-manually; displayed\r\n")
	f.Add("Feedback-Type: abuse\r\nUser-Agent: x/1\r\nVersion: 1\r\nSource-IP: 192.0.2.1\r\n")
	f.Add("Action: delayed\nStatus: 4.4.7\nWill-Retry-Until: Mon, 1 Jan 2026 00:00:00 +0000\n\n\n\n")
	f.Add("Final-Recipient: \x00\xff;\r\n continued\r\n\tfolded")
	f.Fuzz(func(t *testing.T, s string) {
		if d, ok := parseDSN(s); ok && d == nil {
			t.Fatal("parseDSN ok without a report")
		}
		_, _ = parseMDN(s)
		_ = parseARF(s)
	})
}

// FuzzMIMEHeader: header, Content-Type, quoted-printable and encoded-word
// decoding never panic; decoded words are valid UTF-8 and quoted-printable
// never grows its input.
func FuzzMIMEHeader(f *testing.F) {
	f.Add([]byte("Content-Type: multipart/report; report-type=delivery-status;\r\n boundary=\"B\"\r\nSubject: =?utf-8?q?caf=C3=A9?= =?iso-8859-1?b?5Q==?=\r\n\r\nbody=3D=\r\nx"))
	f.Add([]byte("Subject: =?unknown?x?abc?=\n\n"))
	f.Add([]byte(":\r\n \r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, _ := parseHeader(b)
		_ = h
		ct, params := parseContentType(string(b))
		_, _ = ct, params
		if q := decodeQP(b); len(q) > len(b) {
			t.Fatalf("quoted-printable grew %d → %d bytes", len(b), len(q))
		}
		if w := decodeWords(string(b)); !utf8.ValidString(w) && utf8.ValidString(string(b)) {
			t.Fatalf("decodeWords(%q) = %q: not UTF-8", b, w)
		}
	})
}
