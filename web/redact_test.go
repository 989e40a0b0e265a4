package web

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// unit is one rune of s, or one byte of invalid UTF-8.
type unit struct {
	s       string // its bytes
	invalid bool
}

func units(s string) []unit {
	var out []unit
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		out = append(out, unit{s: s[i : i+n], invalid: r == utf8.RuneError && n == 1})
		i += n
	}
	return out
}

// sameUnit compares case-insensitively as strings.EqualFold does; an
// invalid byte equals only the same byte.
func sameUnit(a, b unit) bool {
	if a.invalid || b.invalid {
		return a.invalid && b.invalid && a.s == b.s
	}
	return strings.EqualFold(a.s, b.s)
}

// refHide is the simple reference: mark every unit inside any occurrence
// of any local part (quadratic, obviously right), then write each run of
// marked units as one "…".
func refHide(rcpts []string, s string) string {
	u := units(s)
	hidden := make([]bool, len(u))
	for _, rc := range rcpts {
		local := localPart(rc)
		if len(local) < minHidden {
			continue
		}
		p := units(local)
		for i := 0; i+len(p) <= len(u); i++ {
			ok := true
			for j := range p {
				if !sameUnit(u[i+j], p[j]) {
					ok = false
					break
				}
			}
			if ok {
				for j := range p {
					hidden[i+j] = true
				}
			}
		}
	}
	var b strings.Builder
	for i := range u {
		switch {
		case !hidden[i]:
			b.WriteString(u[i].s)
		case i == 0 || !hidden[i-1]:
			b.WriteString("…")
		}
	}
	return b.String()
}

// TestHideTable: the cases that looped forever or panicked before, and the
// ordinary ones.
func TestHideTable(t *testing.T) {
	for _, c := range []struct {
		name  string
		rcpts []string
		in    string
		want  string
	}{
		{"plain", []string{"trap123@trap.test"}, "mail for trap123@trap.test", "mail for …@trap.test"},
		{"case", []string{"Trap123@trap.test"}, "TRAP123 and trap123", "… and …"},
		{"angle brackets", []string{"<secret@trap.test>"}, "<secret.1@x>", "<….1@x>"},
		{"short local kept", []string{"ab@trap.test"}, "ab cd", "ab cd"},
		{"no rcpts", nil, "anything", "anything"},
		{"empty text", []string{"secret@x"}, "", ""},
		// U+2026 as the local part (the replacement itself): looped forever.
		{"ellipsis local part", []string{"…@trap.test"}, "helo …", "helo …"},
		{"ellipsis inside local part", []string{"a…b@trap.test"}, "x a…b y a…b", "x … y …"},
		{"ellipsis twice", []string{"……@t"}, "……………", "…"},
		// KELVIN SIGN U+212A lower-cases to one byte: panicked (cut out of range).
		{"kelvin in helo", []string{"kkk@trap.test"}, "mx\u212a\u212a\u212a.example", "mx….example"},
		{"kelvin in local part", []string{"\u212aelvin@trap.test"}, "kelvin KELVIN \u212aELVIN", "… … …"},
		{"kelvin before match", []string{"secret@t"}, "\u212a\u212a\u212a secret", "\u212a\u212a\u212a …"},
		{"dotted capital I", []string{"secret@t"}, "İİİİ secret İ", "İİİİ … İ"},
		{"invalid utf-8 before match", []string{"secret@t"}, "\xff\xfe\xfd secret \xff", "\xff\xfe\xfd … \xff"},
		{"invalid utf-8 in local part", []string{"a\xffb@t"}, "xa\xffbx a\xfeb", "x…x a\xfeb"},
		{"invalid is not U+FFFD", []string{"a\xffb@t"}, "a\uFFFDb", "a\uFFFDb"},
		{"overlapping matches", []string{"abab@t"}, "ababab", "…"},
		{"two patterns overlap", []string{"abc@t", "cde@t"}, "xabcdex", "x…x"},
		{"adjacent", []string{"abc@t"}, "abcabc-abc", "…-…"},
		{"nested", []string{"abcdef@t", "bcd@t"}, "abcdefg bcd", "…g …"},
		{"quoted local with @", []string{`"a@bcd"@trap.test`}, `"a@bcd" x`, "… x"},
		{"long pattern starts before short", []string{"xyz@t", "wxyzq@t"}, "wxyzq", "…"},
	} {
		got := newRedactor(c.rcpts).Hide(c.in)
		if got != c.want {
			t.Errorf("%s: hide(%q) = %q, want %q", c.name, c.in, got, c.want)
		}
		if ref := refHide(c.rcpts, c.in); ref != c.want {
			t.Errorf("%s: reference disagrees with the table: %q", c.name, ref)
		}
	}
}

// TestHideLinear: a large text full of matches of a pattern that contains
// the replacement finishes (the old code never returned) and the output is
// bounded by the input.
func TestHideLinear(t *testing.T) {
	in := strings.Repeat("…\u212ax", 100000)
	out := newRedactor([]string{"…\u212ax@trap.test", "KX…@t"}).Hide(in)
	if out != "…" {
		t.Errorf("got %d bytes: %.40q", len(out), out)
	}
}

// FuzzHide checks the one-pass redaction against the quadratic reference
// for any text and local parts, valid UTF-8 or not.
func FuzzHide(f *testing.F) {
	for _, s := range [][3]string{
		{"trap123@t", "", "x trap123 y"},
		{"…@t", "…", "……"},
		{"kkk@t", "K", "\u212a\u212a\u212a"},
		{"a\xffb@t", "bcd", "a\xffbcd"},
		{"abab@t", "ba", "abababa"},
		{"İstanbul@t", "ǅǅǅ", "i̇stanbul ǆǆǆ"},
	} {
		f.Add(s[0], s[1], s[2])
	}
	f.Fuzz(func(t *testing.T, r1, r2, s string) {
		rcpts := []string{r1, r2 + "@x"}
		got := newRedactor(rcpts).Hide(s)
		if want := refHide(rcpts, s); got != want {
			t.Fatalf("hide(%q, %q) = %q, reference %q", rcpts, s, got, want)
		}
	})
}
