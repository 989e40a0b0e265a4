package classify

import (
	"reflect"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"
)

// The hand-written scanners of the hot path must answer as the regexps
// they replace; these are those regexps, and a fuzz target comparing them.
// normText and htmlText are held to references written differently (the
// library's Fields, a regexp tokenizer), not to copies of themselves.
var (
	refLinkRE          = regexp.MustCompile(`(?i)\b(?:https?://|www\.)([a-z0-9.-]+\.[a-z]{2,})`)
	refSMTPReplyLineRE = regexp.MustCompile(`(?m)^[ \t>]*[245][0-9][0-9][ -].*$|said:.*$`)
	refEnhancedRE      = regexp.MustCompile(`\b([245])\.(\d{1,3})\.(\d{1,3})\b`)
	refSMTPReplyRE     = regexp.MustCompile(`\b[245]\d\d[ -]`)
	refBracketRE       = regexp.MustCompile(`\[(?:IPv6:)?([0-9A-Fa-f:.]+)\]`)
)

func refLinkHosts(text string) []string {
	var hosts []string
	seen := map[string]bool{}
	text = refSMTPReplyLineRE.ReplaceAllString(clip(text, 64<<10), "")
	for _, m := range refLinkRE.FindAllStringSubmatch(text, 50) {
		h := strings.ToLower(strings.TrimSuffix(m[1], "."))
		if strings.HasPrefix(strings.ToLower(m[0]), "www.") {
			h = "www." + h
		}
		if !seen[h] && len(hosts) < 20 {
			seen[h] = true
			hosts = append(hosts, h)
		}
	}
	return hosts
}

// refNormText is normText by the library: strings.ToLower, then the
// fields between the whitespace normText folds, joined by one space.
func refNormText(s string) string {
	return strings.Join(strings.FieldsFunc(strings.ToLower(s), func(r rune) bool {
		switch r {
		case ' ', '\t', '\n', '\r', '\v', '\f', '\u00a0', '\u3000':
			return true
		}
		return false
	}), " ")
}

// foldASCII is a regexp matching word with its ASCII letters in either
// case, and nothing else folded: htmlText matches tag names so, where (?i)
// would also let ſ stand for s and the Kelvin sign for k.
func foldASCII(words ...string) string {
	alt := make([]string, len(words))
	for i, w := range words {
		for _, c := range []byte(w) {
			if 'a' <= c && c <= 'z' {
				alt[i] += "[" + string(c) + string(c-'a'+'A') + "]"
			} else {
				alt[i] += regexp.QuoteMeta(string(c))
			}
		}
	}
	return "(?:" + strings.Join(alt, "|") + ")"
}

// The regexps of refHTMLText. A field of an href value ends at what
// strings.Fields counts as space (unicode.IsSpace: Zs, the ASCII
// controls \t to \r, U+0085, U+2028, U+2029).
var (
	refTokenRE = regexp.MustCompile(`^([^<]*)(?:(<[^>]*)>)?`)
	refRawRE   = regexp.MustCompile(`^<(?:(` + foldASCII("script") + `)|` + foldASCII("style") + `)`)
	refEndRE   = map[bool]*regexp.Regexp{true: regexp.MustCompile(foldASCII("</script")), false: regexp.MustCompile(foldASCII("</style"))}
	refBreakRE = regexp.MustCompile(`^` + foldASCII("<br", "<p", "</p", "<div", "</div", "<tr", "<li"))
	refHrefRE  = regexp.MustCompile(foldASCII("href=") + `[\p{Zs}\t-\r\x{85}\x{2028}\x{2029}]*([^\p{Zs}\t-\r\x{85}\x{2028}\x{2029}]*)`)
)

// refHTMLText is htmlText by regexps, token by token: the text before a
// tag is kept; a tag with no '>' after it ends the text; a script or style
// element is skipped to its end tag, and one never closed ends the text
// (not entity-decoded); a block tag is a newline; an href value is kept
// between spaces.
func refHTMLText(s string) string {
	var b strings.Builder
	for rest := s; rest != ""; {
		m := refTokenRE.FindStringSubmatch(rest)
		b.WriteString(m[1])
		tag := m[2]
		if tag == "" {
			break
		}
		if raw := refRawRE.FindStringSubmatch(tag); raw != nil {
			at := rest[len(m[1]):]
			loc := refEndRE[raw[1] != ""].FindStringIndex(at)
			if loc == nil {
				return b.String()
			}
			rest = at[loc[0]:]
			continue
		}
		if refBreakRE.MatchString(tag) {
			b.WriteString("\n")
		}
		if h := refHrefRE.FindStringSubmatch(tag); h != nil && h[1] != "" {
			b.WriteString(" " + strings.Trim(h[1], `"'`) + " ")
		}
		rest = rest[len(m[0]):]
	}
	return htmlEntities.Replace(b.String())
}

func checkScanners(t *testing.T, s string) {
	t.Helper()
	if got, want := htmlText(s), refHTMLText(s); got != want {
		t.Errorf("htmlText(%q) = %q, want %q", s, got, want)
	}
	if got, want := normText(s), refNormText(s); got != want {
		t.Errorf("normText(%q) = %q, want %q", s, got, want)
	}
	if got, want := linkHosts(s), refLinkHosts(s); !reflect.DeepEqual(got, want) {
		t.Errorf("linkHosts(%q) = %q, regexp %q", s, got, want)
	}
	if got, want := enhancedStatus(s), refEnhancedRE.FindString(s); got != want {
		t.Errorf("enhancedStatus(%q) = %q, regexp %q", s, got, want)
	}
	want := -1
	if loc := refSMTPReplyRE.FindStringIndex(s); loc != nil {
		want = loc[0]
	}
	if got := smtpReplyIndex(s); got != want {
		t.Errorf("smtpReplyIndex(%q) = %d, regexp %d", s, got, want)
	}
	if isASCII(s) {
		want := -1
		for _, m := range inlineOriginalMarkers {
			if i := strings.Index(strings.ToLower(s), m); i >= 0 && (want < 0 || i < want) {
				want = i
			}
		}
		if got := markers.firstFoldASCII(s); got != want {
			t.Errorf("markers.firstFoldASCII(%q) = %d, strings.Index %d", s, got, want)
		}
	}
	if unfolded(s) && strings.Join(strings.Fields(s), " ") != s {
		t.Errorf("unfolded(%q) but Fields/Join changes it", s)
	}
	if c := cleanString(s); !utf8.ValidString(c) || strings.ContainsAny(c, "\x00\r\n\x7f") {
		t.Errorf("cleanString(%q) = %q", s, c)
	}
	m := refBracketRE.FindStringSubmatch(s)
	got, ok := bracketedIP(s)
	if ok != (m != nil) || ok && got != m[1] {
		t.Errorf("bracketedIP(%q) = %q %v, regexp %q", s, got, ok, m)
	}
}

func TestScannersMatchRegexps(t *testing.T) {
	for _, s := range []string{
		"see http://www.Example.COM/x and https://a.b.co.uk/ and www.foo.org.",
		"host said: 550 see http://spamhaus.org/x\nnext http://ok.example.net",
		"> 550-5.7.1 http://blocked.example\n  451 4.7.1 try http://later.example",
		"xhttp://no.example http://localhost/ then //www.yes.example",
		"www.a.b www.c.d1 http://e.f.gh.i http://1.2.3.4/ http://foo.comsaid: 550",
		"Status: 5.1.1 (user unknown) 4.4.7x 5.12.345 5.1234.5 a5.1.1 25.1.1 5.1.1_",
		"from [IPv6:2001:db8::1] (x [192.0.2.1]) [] [IPv6:] [zz] [1.2.3.4",
		"Hello\n--- Below this line is a copy of the message.\nOriginal Message Follows", "RETURNED MESSAGE", "x original message:",
		"<P>Hi <A HREF='http://x.example/'>x</A><BR><SCRIPT>bad()</SCRIPT>ok &amp; <Style>p{}</STYLE>end",
		"<a href=>x<a HREF= \"y\"\u00a0z><a href=''>", "<ſcript>x</script><SCRIPT a=</ScRiPt>y", "<style>never closed &amp;",
		"250 ok", "x550 no", "1550 x", "550x", "", "said:", "wwW.MiXeD.CoM", "https://a.b.c.dd.eee",
	} {
		checkScanners(t, s)
	}
}

func FuzzScanners(f *testing.F) {
	f.Add("see http://www.example.com/x said: 550 http://y.example\n> 451 4.7.1 www.z.example")
	f.Add("from a ([IPv6:::1]) 5.1.1 421-")
	f.Fuzz(func(t *testing.T, s string) { checkScanners(t, s) })
}
