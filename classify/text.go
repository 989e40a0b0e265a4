package classify

// Text helpers: matching phrases in normalised text, signal tokens,
// addresses.

import (
	"net/mail"
	"strings"
	"unicode"
	"unicode/utf8"
)

// containsAny returns the first pattern contained in s.
func containsAny(s string, pats []string) (string, bool) {
	if s == "" {
		return "", false
	}
	for _, p := range pats {
		if strings.Contains(s, p) {
			return p, true
		}
	}
	return "", false
}

// containsPrefix returns the first pattern s starts with, after reply and
// forward prefixes ("Re:", "AW:", "Fwd:").
func containsPrefix(s string, pats []string) (string, bool) {
	s = strings.TrimSpace(s)
	for range 4 {
		t := s
		for _, pre := range []string{"re:", "aw:", "sv:", "fw:", "fwd:", "tr:", "wg:", "vs:", "antw:", "r:", "[auto]", "[auto-reply]"} {
			t = strings.TrimSpace(strings.TrimPrefix(t, pre))
		}
		if t == s {
			break
		}
		s = t
	}
	for _, p := range pats {
		if strings.HasPrefix(s, p) {
			return p, true
		}
	}
	return "", false
}

// normText lowers s and collapses whitespace runs to one space (what
// strings.ToLower and a rune loop did, in one pass with an ASCII fast path).
func normText(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	space := false
	for i := 0; i < len(s); {
		c := s[i]
		// A run of bytes that stay as they are is copied at once.
		if j := i; c < utf8.RuneSelf && c > ' ' && !('A' <= c && c <= 'Z') {
			for j < len(s) && s[j] < utf8.RuneSelf && s[j] > ' ' && !('A' <= s[j] && s[j] <= 'Z') {
				j++
			}
			if space && b.Len() > 0 {
				b.WriteByte(' ')
			}
			space = false
			b.WriteString(s[i:j])
			i = j
			continue
		}
		if c < utf8.RuneSelf {
			i++
			switch c {
			case ' ', '\t', '\n', '\r', '\v', '\f':
				space = true
				continue
			}
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			if space && b.Len() > 0 {
				b.WriteByte(' ')
			}
			space = false
			b.WriteByte(c)
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		i += n
		r = unicode.ToLower(r)
		if r == '\u00a0' || r == '\u3000' {
			space = true
			continue
		}
		if space && b.Len() > 0 {
			b.WriteByte(' ')
		}
		space = false
		b.WriteRune(r)
	}
	return b.String()
}

// token makes a signal fragment from a phrase: lower case, spaces to
// dashes, at most 40 bytes.
func token(s string) string {
	s = strings.ToLower(strings.TrimSpace(s))
	s = strings.Map(func(r rune) rune {
		switch {
		case r == ' ' || r == '\t':
			return '-'
		case r < 32 || r == '"' || r == '\\':
			return -1
		}
		return r
	}, s)
	return clip(strings.Trim(s, "-"), 40)
}

// parseAddr splits a From-style field into display name and lower-case
// address, leniently.
func parseAddr(s string) (name, addr string) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", ""
	}
	if a, err := mail.ParseAddress(s); err == nil {
		return a.Name, strings.ToLower(a.Address)
	}
	if i := strings.LastIndexByte(s, '<'); i >= 0 {
		name = strings.Trim(strings.TrimSpace(s[:i]), "\"")
		rest := s[i+1:]
		if j := strings.IndexByte(rest, '>'); j >= 0 {
			rest = rest[:j]
		}
		return name, strings.ToLower(strings.TrimSpace(rest))
	}
	for _, f := range strings.Fields(s) {
		if strings.Contains(f, "@") {
			return strings.TrimSpace(strings.Replace(s, f, "", 1)), strings.ToLower(strings.Trim(f, "<>()\"',;"))
		}
	}
	if !strings.ContainsAny(s, " \t") {
		return "", strings.ToLower(s) // "MAILER-DAEMON" without a domain
	}
	return s, ""
}

func splitAddr(addr string) (local, domain string) {
	i := strings.LastIndexByte(addr, '@')
	if i < 0 {
		return addr, ""
	}
	return addr[:i], strings.TrimSuffix(addr[i+1:], ".")
}

// containsAffirmed is containsAny ignoring negated matches ("do not reply
// to this message").
func containsAffirmed(s string, pats []string) (string, bool) {
	for _, p := range pats {
		for off := 0; off < len(s); {
			i := strings.Index(s[off:], p)
			if i < 0 {
				break
			}
			at := off + i
			before := s[max(0, at-12):at]
			if !strings.Contains(before, "not ") && !strings.Contains(before, "n't ") && !strings.Contains(before, "never ") {
				return p, true
			}
			off = at + len(p)
		}
	}
	return "", false
}

// cleanString drops control characters other than tab and invalid UTF-8.
func cleanString(s string) string {
	clean := true
	for i := 0; i < len(s) && clean; i++ {
		c := s[i]
		clean = c >= 32 && c < 0x7f || c == '\t'
	}
	if clean { // printable ASCII: nothing to do
		return s
	}
	s = strings.ToValidUTF8(s, "\uFFFD")
	return strings.Map(func(r rune) rune {
		if r < 32 && r != '\t' || r == 0x7f {
			return -1
		}
		return r
	}, s)
}
