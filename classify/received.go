package classify

import (
	"net/mail"
	"net/netip"
	"regexp"
	"strings"
	"time"
)

// Hop is what one Received field says (RFC 5321 §4.4): "from HELO (rdns
// [IP]) by HOST ...; DATE", in the forms Postfix, Exim, Sendmail, qmail,
// Exchange and others write.
type Hop struct {
	HELO string     // the first word after "from" (brackets trimmed), as the client named itself
	Host string     // the sending host's name: the reverse name in parentheses, else the HELO; lower case, "" unless it has a dot
	IP   netip.Addr // the sending host's address (IPv4-mapped addresses unmapped)
	By   string     // the receiving host, lower case
	Time time.Time  // the date after the last ";", zero when unreadable
}

// ipBareRE: qmail's and others' "(192.0.2.1)".
var ipBareRE = regexp.MustCompile(`\(([0-9]{1,3}(?:\.[0-9]{1,3}){3}|[0-9A-Fa-f:]*:[0-9A-Fa-f:.]+)\)`)

// bracketedIP finds the first "[addr]" or "[IPv6:addr]" whose inside is
// made of hex digits, colons and dots (the regexp
// \[(?:IPv6:)?([0-9A-Fa-f:.]+)\], by hand).
func bracketedIP(s string) (string, bool) {
	for i := 0; i < len(s); i++ {
		if s[i] != '[' {
			continue
		}
		j := i + 1
		if strings.HasPrefix(s[j:], "IPv6:") {
			j += 5
		}
		k := j
		for k < len(s) && isIPByte(s[k]) {
			k++
		}
		if k > j && k < len(s) && s[k] == ']' {
			return s[j:k], true
		}
	}
	return "", false
}

func isIPByte(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F' || c == ':' || c == '.'
}

// ParseReceived reads one Received field, leniently: whatever it cannot
// find stays empty.
func ParseReceived(v string) Hop { return parseHop(v, true) }

// parseHop is ParseReceived; the classifier needs no date.
func parseHop(v string, withDate bool) Hop {
	var h Hop
	if !unfolded(v) {
		v = strings.Join(strings.Fields(v), " ") // unfold
	}
	clauses, date := v, ""
	if i := strings.LastIndexByte(v, ';'); i >= 0 {
		clauses, date = v[:i], v[i+1:]
	}
	if date != "" && withDate {
		if t, err := mail.ParseDate(strings.TrimSpace(date)); err == nil {
			h.Time = t
		}
	}
	low := asciiLower(clauses) // same length as clauses: indexes carry over
	fromPart := ""
	if i := strings.Index(low, "from "); i >= 0 && i <= 10 {
		fromPart = clauses[i+5:]
		if j := strings.Index(low[i+5:], " by "); j >= 0 {
			fromPart = fromPart[:j]
		}
		if i == 0 {
			if f := strings.Fields(fromPart); len(f) > 0 && !strings.HasPrefix(f[0], "(") {
				h.HELO = strings.Trim(f[0], "[]")
			}
		}
	}
	by := ""
	if strings.HasPrefix(low, "by ") {
		by = clauses[3:]
	} else if i := strings.Index(low, " by "); i >= 0 {
		by = clauses[i+4:]
	}
	if f := strings.Fields(by); len(f) > 0 {
		h.By = strings.TrimSuffix(strings.ToLower(strings.Trim(f[0], "();")), ".")
	}
	if m, ok := bracketedIP(fromPart); ok {
		h.IP, _ = netip.ParseAddr(m)
	} else if strings.IndexByte(fromPart, '(') >= 0 {
		if m := ipBareRE.FindStringSubmatch(fromPart); m != nil {
			h.IP, _ = netip.ParseAddr(m[1])
		}
	}
	if !h.IP.IsValid() { // a bare address as HELO
		for _, f := range strings.Fields(fromPart) {
			if a, err := netip.ParseAddr(strings.Trim(f, "()[],")); err == nil {
				h.IP = a
				break
			}
		}
	}
	h.IP = h.IP.Unmap()
	h.Host = receivedHost(fromPart)
	return h
}

// receivedHost is the reverse name that stands in parentheses before the
// address ("from helo (rdns [ip])"), else the first word.
func receivedHost(fromPart string) string {
	host := ""
	if j := strings.IndexByte(fromPart, '('); j >= 0 {
		inner := strings.Fields(strings.Trim(fromPart[j+1:], "()"))
		if len(inner) > 0 && strings.Contains(inner[0], ".") && !strings.ContainsAny(inner[0], "[=") && !isIPLiteral(inner[0]) {
			host = inner[0]
		}
	}
	if host == "" {
		if f := strings.Fields(fromPart); len(f) > 0 && !strings.HasPrefix(f[0], "[") && !isIPLiteral(f[0]) {
			host = f[0]
		}
	}
	host = strings.ToLower(strings.Trim(host, "[]()."))
	if !strings.Contains(host, ".") {
		host = ""
	}
	return host
}

// asciiLower lowers A-Z only, keeping every byte where it is.
func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// HopRule says which Received field of a delivered message names the
// client: the Nth from the top (1: the topmost), or the topmost written by
// one of MX, or the first from the Nth down that Regexp matches (its group
// "ip", else its first group, is the address).
type HopRule struct {
	N      int
	MX     []string // lower-case host names, as in the "by" part
	Regexp *regexp.Regexp
}

// Client picks the Received field that names the client (top first, as
// in the message) and parses it.
func (r HopRule) Client(received []string) (Hop, bool) {
	n := max(r.N, 1)
	if len(r.MX) > 0 {
		for _, v := range received {
			h := ParseReceived(v)
			for _, mx := range r.MX {
				if h.By == mx && h.IP.IsValid() {
					return h, true
				}
			}
		}
		return Hop{}, false
	}
	if n > len(received) {
		return Hop{}, false
	}
	if re := r.Regexp; re != nil {
		for _, v := range received[n-1:] {
			m := re.FindStringSubmatch(strings.Join(strings.Fields(v), " "))
			if len(m) < 2 {
				continue
			}
			s := m[1]
			if i := re.SubexpIndex("ip"); i > 0 {
				s = m[i]
			}
			if a, err := netip.ParseAddr(strings.TrimPrefix(s, "IPv6:")); err == nil {
				h := ParseReceived(v)
				h.IP = a.Unmap()
				return h, true
			}
		}
		return Hop{}, false
	}
	h := ParseReceived(received[n-1])
	return h, h.IP.IsValid()
}

// unfolded: v is ASCII with single spaces between words and none at the
// ends, so strings.Join(strings.Fields(v), " ") would return it unchanged.
func unfolded(v string) bool {
	if v == "" || v[0] == ' ' || v[len(v)-1] == ' ' {
		return v == ""
	}
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case c >= 0x80, c == '\t', c == '\n', c == '\r', c == '\v', c == '\f':
			return false
		case c == ' ' && v[i+1] == ' ':
			return false
		}
	}
	return true
}
