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

// refNormText is normText as it was: strings.ToLower, then a rune loop.
func refNormText(s string) string {
	var b strings.Builder
	space := false
	for _, r := range strings.ToLower(s) {
		switch r {
		case ' ', '\t', '\n', '\r', '\v', '\f', '\u00a0', '\u3000':
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

// refHTMLText is htmlText as it was: tags matched in a copy with ASCII
// lowered.
func refHTMLText(s string) string {
	var b strings.Builder
	lower := asciiLower(s)
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
		case strings.HasPrefix(tag, "<script"), strings.HasPrefix(tag, "<style"):
			name := "</script"
			if strings.HasPrefix(tag, "<style") {
				name = "</style"
			}
			if j := strings.Index(lower[i:], name); j >= 0 {
				i += j
				continue
			}
			return b.String()
		case strings.HasPrefix(tag, "<br"), strings.HasPrefix(tag, "<p"), strings.HasPrefix(tag, "</p"),
			strings.HasPrefix(tag, "<div"), strings.HasPrefix(tag, "</div"), strings.HasPrefix(tag, "<tr"), strings.HasPrefix(tag, "<li"):
			b.WriteByte('\n')
		}
		if k := strings.Index(tag, "href="); k >= 0 {
			v := s[i+k+5 : i+end]
			v = strings.Trim(strings.Fields(v + " ")[0], "\"'")
			b.WriteString(" " + v + " ")
		}
		i += end + 1
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
