package main

import (
	"bytes"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/blowback-dnsbl/blowback/listing"
	"github.com/blowback-dnsbl/blowback/store"
)

func TestTermSafe(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"plain text, ümlaut, 中文, …", "plain text, ümlaut, 中文, …"},
		{"clear\x1b[2Jscreen", `clear\x1b[2Jscreen`},
		{"fake\nline", `fake\nline`},
		{"cr\rover", `cr\rover`},
		{"c1 \u009b31m", `c1 \u009b31m`},
		{"del\x7f", `del\x7f`},
		{"bidi \u202eevil", `bidi \u202eevil`},
		{"zero\u200bwidth", `zero\u200bwidth`},
		{"bad \xff\xfe utf8", `bad \xff\xfe utf8`},
		{"line\u2028sep", `line\u2028sep`},
		{`back\slash`, `back\slash`},
		{"tab\there", `tab\there`},
	} {
		if got := termSafe(c.in); got != c.want {
			t.Errorf("termSafe(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// FuzzTermSafe: whatever comes in, nothing a terminal acts on comes out.
func FuzzTermSafe(f *testing.F) {
	for _, s := range []string{"a\x1b[2Jb", "\xff", "\u202e", "ok"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := termSafe(s)
		if !utf8.ValidString(out) {
			t.Fatalf("invalid UTF-8 out of %q: %q", s, out)
		}
		for _, r := range out {
			if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
				t.Fatalf("control %U out of %q", r, s)
			}
		}
	})
}

// TestExplainOutputEscaped (13.8): `blowback explain` prints stored
// strings (a self-service delist's reason and requester, evidence whys)
// without terminal escape sequences or fake lines.
func TestExplainOutputEscaped(t *testing.T) {
	evil := "fixed\x1b[2J\x1b[H\nLISTED 0 (fake line)\u202e"
	now := time.Now().UTC()
	x := listing.Explanation{IP: "192.0.2.1", Unit: "192.0.2.1/32", Reason: "delisted (self-service): " + evil,
		Evidence: []listing.ExplainedEvent{{Time: now, Addr: "192.0.2.1", Kind: "bounce", Why: evil}},
		Actions:  []store.Action{{Time: now, Op: "delist", Who: "public:" + evil, Reason: evil}},
		Policy:   map[string]string{"allow": evil}, Allowed: evil}
	var buf bytes.Buffer
	printExplanation(&buf, x)
	out := buf.String()
	if strings.ContainsAny(out, "\x1b\r\u202e") {
		t.Errorf("explain output carries control characters:\n%q", out)
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "LISTED") {
			t.Errorf("a stored string made its own line: %q", line)
		}
	}
}
