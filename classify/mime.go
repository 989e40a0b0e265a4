package classify

// A lenient, bounded MIME reader for the classifier. Bounces are written by
// every kind of software, many of them broken, and some of what reaches a trap
// is hostile: nothing here returns an error or panics, every loop is capped,
// and what cannot be understood is kept as plain text (RFC 2045 §5.2 default
// Content-Type) so that signatures still get a chance to match.

import (
	"bytes"
	"encoding/base64"
	"io"
	"mime"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/htmlindex"
	"golang.org/x/text/encoding/ianaindex"
	"golang.org/x/text/encoding/japanese"
	"golang.org/x/text/transform"
)

// Limits bound the work done on one message.
const (
	maxHeaderBytes  = 256 << 10 // one header block
	maxFields       = 1000      // fields kept per header block
	maxFieldBytes   = 16 << 10  // one unfolded field value
	maxMIMEDepth    = 8         // nested multiparts / message/rfc822
	maxMIMEParts    = 200       // parts in the whole tree
	maxDecodedBytes = 4 << 20   // bytes produced by transfer and charset decoding, whole tree
	maxPartText     = 256 << 10 // text kept from one part for signature matching
	maxNoticeText   = 64 << 10  // human-readable report text matched against signatures
)

// field is one header field; name keeps its spelling, value is unfolded and
// trimmed but not decoded (RFC 5322 §2.2.3).
type field struct {
	name, value string
}

type header []field

func (h header) get(name string) string {
	for _, f := range h {
		if len(f.name) == len(name) && strings.EqualFold(f.name, name) {
			return f.value
		}
	}
	return ""
}

func (h header) has(name string) bool {
	for _, f := range h {
		if len(f.name) == len(name) && strings.EqualFold(f.name, name) {
			return true
		}
	}
	return false
}

// hasPrefix reports whether a field name starts with prefix (any case).
func (h header) hasPrefix(prefix string) bool {
	for _, f := range h {
		if len(f.name) >= len(prefix) && strings.EqualFold(f.name[:len(prefix)], prefix) {
			return true
		}
	}
	return false
}

func (h header) values(name string) []string {
	var vs []string
	for _, f := range h {
		if len(f.name) == len(name) && strings.EqualFold(f.name, name) {
			vs = append(vs, f.value)
		}
	}
	return vs
}

// isFieldName reports whether s is an RFC 5322 §3.6.8 field name (printable
// US-ASCII except colon and space).
func isFieldName(s string) bool {
	if s == "" || len(s) > 76 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= 32 || c >= 127 || c == ':' {
			return false
		}
	}
	return true
}

// nextLine returns the line at b[off:] without its terminator, and the offset
// of the following line.
func nextLine(b []byte, off int) (line []byte, next int) {
	i := bytes.IndexByte(b[off:], '\n')
	if i < 0 {
		return trimCR(b[off:]), len(b)
	}
	return trimCR(b[off : off+i]), off + i + 1
}

func trimCR(b []byte) []byte {
	if n := len(b); n > 0 && b[n-1] == '\r' {
		return b[:n-1]
	}
	return b
}

// parseHeader reads a header block and returns it with the body that follows
// the empty line. A leading mbox "From " line is skipped. Lines that are
// neither fields nor continuations are skipped too, unless no field was seen
// yet, in which case the whole input is body (no header at all).
func parseHeader(b []byte) (header, []byte) {
	var h header
	off := 0
	if bytes.HasPrefix(b, []byte("From ")) {
		_, off = nextLine(b, 0)
	}
	start := off
	// One string for the header block (up to the first blank line, within
	// the bounds), so that names and values are slices of it rather than a
	// copy each; past it (rare), lines are copied one by one.
	end := len(b)
	if i := bytes.Index(b[start:], []byte("\n\n")); i >= 0 {
		end = start + i + 1
	}
	if i := bytes.Index(b[start:end], []byte("\n\r\n")); i >= 0 {
		end = start + i + 1
	}
	end = min(end, start+maxHeaderBytes+2*maxFieldBytes)
	block := string(b[start:end])
	str := func(lo, hi int) string {
		if hi <= end {
			return block[lo-start : hi-start]
		}
		return string(b[lo:hi])
	}
	// cont is the field whose folded lines cb is gathering, or -1.
	cont := -1
	var cb strings.Builder
	curLen := func(i int) int {
		if i == cont {
			return cb.Len()
		}
		return len(h[i].value)
	}
	flush := func() {
		if cont >= 0 {
			h[cont].value = cb.String()
			cont = -1
		}
	}
	for off < len(b) {
		if off-start > maxHeaderBytes {
			flush()
			return h, b[off:]
		}
		line, next := nextLine(b, off)
		if len(bytes.TrimSpace(line)) == 0 {
			if len(line) == 0 || len(h) > 0 {
				flush()
				return h, b[next:]
			}
			off = next
			continue
		}
		if line[0] == ' ' || line[0] == '\t' {
			if n := len(h); n > 0 && curLen(n-1) < maxFieldBytes {
				v := strings.TrimSpace(str(off, off+len(line)))
				switch {
				case cont < 0 && h[n-1].value == "":
					h[n-1].value = v
				case v != "":
					// Folded lines are joined with one space, in a builder:
					// a long Received field is many lines.
					if cont < 0 {
						cont = n - 1
						cb.Reset()
						cb.WriteString(h[n-1].value)
					}
					if cb.Len() > 0 {
						cb.WriteByte(' ')
					}
					cb.WriteString(v)
				}
			}
			off = next
			continue
		}
		flush()
		colon := bytes.IndexByte(line, ':')
		name := ""
		if colon > 0 {
			name = strings.TrimRight(str(off, off+colon), " \t")
		}
		if !isFieldName(name) {
			if len(h) == 0 {
				return nil, b[start:]
			}
			off = next
			continue
		}
		if len(h) < maxFields {
			v := str(off+colon+1, off+len(line))
			if len(v) > maxFieldBytes {
				v = v[:maxFieldBytes]
			}
			h = append(h, field{name: name, value: strings.TrimSpace(v)})
		}
		off = next
	}
	flush()
	return h, nil
}

// part is one node of the MIME tree.
type part struct {
	hdr       header
	mediaType string            // lower case type/subtype
	params    map[string]string // lower-case keys
	filename  string
	body      []byte  // transfer-decoded content of a leaf (raw for multiparts)
	text      string  // UTF-8 text of text/* and report parts, capped
	children  []*part // multipart children, or the one message of a message/rfc822
	depth     int
	returned  bool // inside a returned or attached message (message/rfc822 and kin)
	encoded   bool // body was base64 or quoted-printable
}

// walker carries the budget of one message.
type walker struct {
	parts   int
	decoded int
	limited bool // some limit was hit
	charset map[string]bool
}

func (w *walker) spend(n int) bool {
	if w.decoded+n > maxDecodedBytes {
		w.limited = true
		return false
	}
	w.decoded += n
	return true
}

// parseEntity parses one MIME entity (a message or a body part).
func (w *walker) parseEntity(raw []byte, depth int, returned bool, defaultType string) *part {
	h, body := parseHeader(raw)
	return w.entity(h, body, depth, returned, defaultType)
}

func (w *walker) entity(h header, body []byte, depth int, returned bool, defaultType string) *part {
	w.parts++
	p := &part{hdr: h, depth: depth, returned: returned}
	ct := h.get("Content-Type")
	mt, params := parseContentType(ct)
	if mt == "" {
		mt = defaultType
	}
	p.mediaType, p.params = mt, params
	p.filename = filename(h, params)
	if depth >= maxMIMEDepth || w.parts > maxMIMEParts {
		w.limited = true
		p.body = capBytes(body, maxPartText)
		return p
	}
	cte := strings.ToLower(strings.TrimSpace(h.get("Content-Transfer-Encoding")))
	switch {
	case strings.HasPrefix(mt, "multipart/"):
		p.body = body
		boundary := params["boundary"]
		sub := "text/plain"
		if mt == "multipart/digest" {
			sub = "message/rfc822" // RFC 2046 §5.1.5
		}
		if boundary == "" {
			// A multipart without boundary: read it as text.
			p.mediaType = "text/plain"
			p.text = w.toText(body, "", p)
			return p
		}
		parts, ok := splitMultipart(body, boundary)
		if !ok {
			p.mediaType = "text/plain"
			p.text = w.toText(body, "", p)
			return p
		}
		for _, raw := range parts {
			if w.parts >= maxMIMEParts {
				w.limited = true
				break
			}
			p.children = append(p.children, w.parseEntity(raw, depth+1, returned, sub))
		}
	case isMessageType(mt):
		dec := w.decode(body, cte, p)
		p.body = dec
		if mt == "message/rfc822-headers" || mt == "text/rfc822-headers" {
			// Headers only (RFC 6522 §4 text/rfc822-headers).
			hh, _ := parseHeader(dec)
			p.children = append(p.children, &part{hdr: hh, mediaType: "text/rfc822-headers", depth: depth + 1, returned: true})
			w.parts++
			return p
		}
		p.children = append(p.children, w.parseEntity(dec, depth+1, true, "text/plain"))
	default:
		p.body = w.decode(body, cte, p)
		// Text attachments are read too: some bounces attach the notice.
		if isTextual(mt) || isReportType(mt) {
			p.text = w.toText(p.body, params["charset"], p)
		}
	}
	return p
}

func isMessageType(mt string) bool {
	switch mt {
	case "message/rfc822", "message/global", "message/rfc822-headers", "text/rfc822-headers",
		"message/global-headers", "message/partial", "message/news":
		return true
	}
	return false
}

// isReportType: the machine-readable parts of RFC 6522 reports.
func isReportType(mt string) bool {
	switch mt {
	case "message/delivery-status", "message/global-delivery-status",
		"message/disposition-notification", "message/global-disposition-notification",
		"message/feedback-report", "text/delivery-status":
		return true
	}
	return false
}

func isTextual(mt string) bool {
	return strings.HasPrefix(mt, "text/") || mt == "message/delivery-status" || mt == "application/json"
}

func capBytes(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}

// parseContentType is mime.ParseMediaType made lenient: on error it falls
// back to the bare type and a hand-split parameter list.
func parseContentType(v string) (string, map[string]string) {
	if v == "" {
		return "", map[string]string{}
	}
	mt, params, err := mime.ParseMediaType(v)
	if err == nil {
		return strings.ToLower(mt), params
	}
	params = map[string]string{}
	segs := strings.Split(v, ";")
	mt = strings.ToLower(strings.TrimSpace(segs[0]))
	if i := strings.IndexAny(mt, " \t"); i >= 0 {
		mt = mt[:i]
	}
	if !strings.Contains(mt, "/") {
		mt = ""
	}
	for _, s := range segs[1:] {
		k, val, ok := strings.Cut(s, "=")
		if !ok {
			continue
		}
		k = strings.ToLower(strings.TrimSpace(k))
		val = strings.TrimSpace(val)
		val = strings.Trim(val, "\"'")
		if _, dup := params[k]; !dup && k != "" {
			params[k] = val
		}
	}
	return mt, params
}

func filename(h header, ctParams map[string]string) string {
	if d := h.get("Content-Disposition"); d != "" {
		_, p, err := mime.ParseMediaType(d)
		if err != nil {
			_, rest, _ := strings.Cut(d, ";")
			_, p = parseContentType("x/x;" + rest)
		}
		if n := p["filename"]; n != "" {
			return decodeWords(n)
		}
	}
	return decodeWords(ctParams["name"])
}

// splitMultipart splits a multipart body on its boundary (RFC 2046 §5.1.1).
// A missing close delimiter is tolerated; no delimiter at all is not.
func splitMultipart(body []byte, boundary string) ([][]byte, bool) {
	delim := []byte("--" + boundary)
	var parts [][]byte
	start := -1
	found := false
	off := 0
	for off < len(body) {
		line, next := nextLine(body, off)
		if bytes.HasPrefix(line, delim) {
			rest := bytes.TrimRight(line[len(delim):], " \t")
			closing := bytes.Equal(rest, []byte("--"))
			if len(rest) == 0 || closing {
				found = true
				if start >= 0 {
					end := off
					// The CRLF before the delimiter belongs to it.
					if end > start && body[end-1] == '\n' {
						end--
						if end > start && body[end-1] == '\r' {
							end--
						}
					}
					parts = append(parts, body[start:end])
					if len(parts) >= maxMIMEParts {
						return parts, true
					}
				}
				if closing {
					return parts, true
				}
				start = next
			}
		}
		off = next
	}
	if start >= 0 && start < len(body) {
		parts = append(parts, body[start:])
	}
	return parts, found
}

// decode undoes the Content-Transfer-Encoding (RFC 2045 §6), leniently.
func (w *walker) decode(b []byte, cte string, p *part) []byte {
	var out []byte
	switch cte {
	case "base64":
		out = decodeBase64(b)
	case "quoted-printable":
		out = decodeQP(b)
	default:
		return b
	}
	p.encoded = true
	if !w.spend(len(out)) {
		return nil
	}
	return out
}

func decodeBase64(b []byte) []byte {
	clean := make([]byte, 0, len(b))
	for _, c := range b {
		switch {
		case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '+', c == '/':
			clean = append(clean, c)
		}
	}
	if len(clean)%4 == 1 {
		clean = clean[:len(clean)-1] // a lone trailing sextet carries no byte
	}
	out := make([]byte, base64.RawStdEncoding.DecodedLen(len(clean)))
	n, _ := base64.RawStdEncoding.Decode(out, clean)
	return out[:n]
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// decodeQP decodes quoted-printable (RFC 2045 §6.7), keeping bad escapes.
func decodeQP(b []byte) []byte {
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		c := b[i]
		if c != '=' {
			out = append(out, c)
			continue
		}
		// Soft line break: "=" then optional whitespace then line end.
		j := i + 1
		for j < len(b) && (b[j] == ' ' || b[j] == '\t') {
			j++
		}
		if j < len(b) && (b[j] == '\n' || b[j] == '\r') {
			if b[j] == '\r' && j+1 < len(b) && b[j+1] == '\n' {
				j++
			}
			i = j
			continue
		}
		if j >= len(b) {
			i = j
			continue
		}
		if i+2 < len(b) {
			h1, ok1 := unhex(b[i+1])
			h2, ok2 := unhex(b[i+2])
			if ok1 && ok2 {
				out = append(out, h1<<4|h2)
				i += 2
				continue
			}
		}
		out = append(out, c)
	}
	return out
}

// lookupCharset finds an encoding by MIME or WHATWG name.
func lookupCharset(name string) encoding.Encoding {
	name = strings.ToLower(strings.Trim(strings.TrimSpace(name), "\"'"))
	switch name {
	case "", "us-ascii", "ascii", "utf-8", "utf8", "unicode-1-1-utf-8":
		return nil
	case "iso-2022-jp", "csiso2022jp", "iso-2022-jp-2", "iso-2022-jp-3", "iso-2022-jp-ms":
		return japanese.ISO2022JP
	case "x-sjis", "shift-jis", "sjis", "ms932", "cp932", "windows-31j", "x-ms-cp932":
		return japanese.ShiftJIS
	}
	if e, err := htmlindex.Get(name); err == nil && e != nil {
		return e
	}
	if e, err := ianaindex.MIME.Encoding(name); err == nil && e != nil {
		return e
	}
	return nil
}

// toUTF8 converts b from charset to UTF-8. Unknown charsets, and bytes that
// are not valid in the declared one, degrade gracefully: ISO-2022-JP escape
// sequences are detected without a label (Japanese carriers often omit it),
// then anything that is not UTF-8 is read in the charset guessCharset
// picks from the shape of its 8-bit bytes.
func (w *walker) toUTF8(b []byte, charset string) string {
	enc := lookupCharset(charset)
	if enc == nil && bytes.Contains(b, []byte("\x1b$B")) || enc == nil && bytes.Contains(b, []byte("\x1b$@")) {
		enc = japanese.ISO2022JP
	}
	if enc != nil {
		if w != nil && charset != "" {
			if w.charset == nil {
				w.charset = map[string]bool{}
			}
			w.charset[strings.ToLower(charset)] = true
		}
		out, _, err := transform.Bytes(enc.NewDecoder(), b)
		if err == nil {
			if w != nil && !w.spend(len(out)) {
				return ""
			}
			return string(out)
		}
	}
	if utf8.Valid(b) {
		return string(b)
	}
	if e := lookupCharset(guessCharset(b)); e != nil {
		if out, _, err := transform.Bytes(e.NewDecoder(), b); err == nil {
			return string(out)
		}
	}
	return strings.ToValidUTF8(string(b), "\uFFFD")
}

// guessCharset names the likely charset of unlabelled 8-bit text that is
// not UTF-8, from the shape of its bytes: isolated high bytes inside ASCII
// words are Latin (Windows-1252); runs of high bytes all in 0xA1-0xFE and
// of even length are a double-byte CJK text (GB2312/GBK, the commonest
// unlabelled one in mail); other runs mostly in 0xC0-0xFF are Cyrillic
// words, KOI8-R when most of them are in 0xC0-0xDF (its lower case),
// Windows-1251 when most are in 0xE0-0xFF (its lower case).
func guessCharset(b []byte) string {
	var high, runs, isolated, oddRuns, outsideGB, c0df, e0ff int
	run := 0
	end := func() {
		if run == 0 {
			return
		}
		runs++
		if run == 1 {
			isolated++
		}
		if run%2 == 1 {
			oddRuns++
		}
		run = 0
	}
	for _, c := range b {
		if c < 0x80 {
			end()
			continue
		}
		high++
		run++
		if c < 0xA1 || c == 0xFF {
			outsideGB++
		}
		switch {
		case c >= 0xE0:
			e0ff++
		case c >= 0xC0:
			c0df++
		}
	}
	end()
	switch {
	case runs == 0 || isolated*2 >= runs:
		return "windows-1252"
	case oddRuns == 0 && outsideGB == 0:
		return "gbk"
	case (c0df+e0ff)*4 >= high*3 && c0df > e0ff:
		return "koi8-r"
	case (c0df+e0ff)*4 >= high*3:
		return "windows-1251"
	}
	return "windows-1252"
}

func (w *walker) toText(b []byte, charset string, p *part) string {
	b = capBytes(b, maxPartText)
	s := w.toUTF8(b, charset)
	if p != nil && p.mediaType == "text/html" {
		s = htmlText(s)
	}
	return s
}

// decodeWords decodes RFC 2047 encoded words, and raw 8-bit or ISO-2022-JP
// header text, into UTF-8. It never fails.
func decodeWords(s string) string {
	if s == "" {
		return ""
	}
	if strings.Contains(s, "=?") {
		d := mime.WordDecoder{CharsetReader: charsetReader}
		if out, err := d.DecodeHeader(s); err == nil {
			s = out
		}
	}
	if !utf8.ValidString(s) || strings.Contains(s, "\x1b$") {
		var w *walker
		s = w.toUTF8([]byte(s), "")
	}
	return s
}

func charsetReader(charset string, input io.Reader) (io.Reader, error) {
	enc := lookupCharset(charset)
	if enc == nil {
		return input, nil
	}
	return transform.NewReader(input, enc.NewDecoder()), nil
}

// htmlText reduces HTML to its text for signature matching, keeping link
// targets as " <href> " so links are found by the same scan as text ones.
func htmlText(s string) string {
	var b strings.Builder
	b.Grow(len(s) / 2)
	// ASCII text (the usual) is matched case-insensitively in place;
	// anything else against a copy with ASCII lowered (same length as s:
	// indexes carry over, which strings.ToLower's need not).
	ascii := isASCII(s)
	lower := s
	if !ascii {
		lower = asciiLower(s)
	}
	hasP := func(t, p string) bool {
		if ascii {
			return hasPrefixFold(t, p)
		}
		return strings.HasPrefix(t, p)
	}
	idx := func(h, p string) int {
		if ascii {
			return indexFoldASCII(h, p)
		}
		return strings.Index(h, p)
	}
	for i := 0; i < len(s); {
		c := s[i]
		if c != '<' {
			b.WriteByte(c)
			i++
			continue
		}
		end := strings.IndexByte(s[i:], '>')
		if end < 0 {
			break
		}
		tag := lower[i : i+end]
		switch {
		case hasP(tag, "<script"), hasP(tag, "<style"):
			name := "</script"
			if hasP(tag, "<style") {
				name = "</style"
			}
			if j := idx(lower[i:], name); j >= 0 {
				i += j
				continue
			}
			return b.String()
		case hasP(tag, "<br"), hasP(tag, "<p"), hasP(tag, "</p"),
			hasP(tag, "<div"), hasP(tag, "</div"), hasP(tag, "<tr"), hasP(tag, "<li"):
			b.WriteByte('\n')
		}
		if k := idx(tag, "href="); k >= 0 {
			// An empty value (`href=>`) has no field: nothing to keep.
			if v := strings.Fields(s[i+k+5 : i+end]); len(v) > 0 {
				b.WriteString(" " + strings.Trim(v[0], "\"'") + " ")
			}
		}
		i += end + 1
	}
	return htmlEntities.Replace(b.String())
}

// htmlEntities are the entities htmlText decodes.
var htmlEntities = strings.NewReplacer("&nbsp;", " ", "&amp;", "&", "&lt;", "<", "&gt;", ">", "&quot;", "\"", "&#39;", "'")
