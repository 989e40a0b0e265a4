package classify

import (
	"strings"
	"testing"
)

// TestLowerCutSameLength (issue 13.1, the same mistake as the redaction):
// an index found in a lower-cased copy must cut the original. Characters
// whose lower case has another byte length (KELVIN SIGN U+212A: 3 bytes,
// "k": 1; an invalid byte: 1, U+FFFD: 3) made these cut in the wrong
// place or panic.
func TestLowerCutSameLength(t *testing.T) {
	k := strings.Repeat("\u212a", 4)
	if got := htmlText(k + "<br>x<a href=\"http://e.example/\">y</a>"); !strings.Contains(got, "http://e.example/") || !strings.HasPrefix(got, k) {
		t.Errorf("htmlText with KELVIN SIGN: %q", got)
	}
	if got := htmlText(strings.Repeat("\xff", 6) + "<SCRIPT>x</script>after"); !strings.HasSuffix(got, "after") {
		t.Errorf("htmlText with invalid UTF-8: %q", got)
	}
	text := k + "notice\n----- Original message follows -----\nFrom: a@b\n"
	notice, tail := splitInlineOriginal(text, false)
	if notice != k+"notice\n----- Original message follows -----\n" || tail != "From: a@b\n" {
		t.Errorf("splitInlineOriginal: %q | %q", notice, tail)
	}
	bad := strings.Repeat("\xff", 40) + "x\n----- Original message follows -----\nFrom: a@b\n"
	notice, tail = splitInlineOriginal(bad, false)
	if tail != "From: a@b\n" || notice+tail != bad {
		t.Errorf("splitInlineOriginal with invalid UTF-8: %q | %q", notice, tail)
	}
}
