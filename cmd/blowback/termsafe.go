package main

import (
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// termSafe makes a stored or received string safe to print on a terminal
// (issue 13.8, STYLE.md habit 17): control characters (C0, DEL, C1,
// which include ESC and CSI and so every terminal escape sequence, and
// newlines that would fake lines), Unicode format characters (the
// bidirectional overrides that reorder what is shown, zero-width ones)
// and invalid UTF-8 are written as Go escapes (\n, \x1b, \u202e, \xff);
// everything else, including a backslash, is printed as it is.
// Every CLI line that prints a string from the store or from a node's
// answer goes through it.
func termSafe(s string) string {
	clean := true
	for _, r := range s {
		if r == utf8.RuneError || unsafeRune(r) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			b.WriteString(`\x`)
			b.WriteString(strconv.FormatUint(uint64(s[i])|0x100, 16)[1:])
		case unsafeRune(r):
			q := strconv.QuoteRuneToASCII(r) // 'x' with Go escapes
			b.WriteString(q[1 : len(q)-1])
		default:
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

func unsafeRune(r rune) bool {
	return unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || r == '\u2028' || r == '\u2029'
}
