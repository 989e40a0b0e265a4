package classify

import (
	"regexp"
	"testing"
	"time"
)

func TestParseReceived(t *testing.T) {
	for _, c := range []struct {
		in, helo, ip, by string
		date             string
	}{
		{"from mx.sender.example (mx.sender.example [192.0.2.7]) by mx.trap.example (Postfix) with ESMTP id 4Xy; Tue, 3 Jun 2025 10:11:12 +0000",
			"mx.sender.example", "192.0.2.7", "mx.trap.example", "2025-06-03T10:11:12Z"},
		{"from [198.51.100.3] (helo=bounce.example)\r\n\tby mx.trap.example with esmtp (Exim 4.96)\r\n\tid 1abc; Wed, 04 Jun 2025 01:02:03 +0200",
			"198.51.100.3", "198.51.100.3", "mx.trap.example", "2025-06-03T23:02:03Z"},
		{"from mail.example.org ([203.0.113.9] helo=mail.example.org) by mx.trap.example with esmtps; Thu, 5 Jun 2025 00:00:00 -0000",
			"mail.example.org", "203.0.113.9", "mx.trap.example", "2025-06-05T00:00:00Z"},
		{"from helo.example (rdns.example [IPv6:2001:db8::25]) by mx.trap.example (8.17/8.17) with ESMTP id x; Fri, 6 Jun 2025 12:00:00 GMT",
			"helo.example", "2001:db8::25", "mx.trap.example", "2025-06-06T12:00:00Z"},
		{"from email.example.com (HELO example.com) (192.0.2.4) by example.com with SMTP; 29 Apr 2009 00:00:00 -0000",
			"email.example.com", "192.0.2.4", "example.com", "2009-04-29T00:00:00Z"},
		{"by mx.trap.example (Postfix, from userid 0) id 1; Fri, 6 Jun 2025 12:00:00 +0000", "", "", "mx.trap.example", "2025-06-06T12:00:00Z"},
		{"from localhost (localhost [127.0.0.1]) by mx.trap.example (amavisd) with LMTP", "localhost", "127.0.0.1", "mx.trap.example", ""},
		{"garbage", "", "", "", ""},
		{"", "", "", "", ""},
	} {
		h := ParseReceived(c.in)
		ip := ""
		if h.IP.IsValid() {
			ip = h.IP.String()
		}
		date := ""
		if !h.Time.IsZero() {
			date = h.Time.UTC().Format(time.RFC3339)
		}
		if h.HELO != c.helo || ip != c.ip || h.By != c.by || date != c.date {
			t.Errorf("ParseReceived(%q)\n = helo %q ip %q by %q date %q\nwant helo %q ip %q by %q date %q", c.in, h.HELO, ip, h.By, date, c.helo, c.ip, c.by, c.date)
		}
	}
}

func TestHopRuleClient(t *testing.T) {
	recv := []string{
		"from localhost (localhost [127.0.0.1]) by mx1.trap.example (amavis); Tue, 3 Jun 2025 10:11:13 +0000",
		"from out.sender.example (out.sender.example [192.0.2.50]) by mx1.trap.example (Postfix); Tue, 3 Jun 2025 10:11:12 +0000",
		"from inner.sender.example (inner [10.1.1.1]) by out.sender.example; Tue, 3 Jun 2025 10:11:10 +0000",
	}
	for _, c := range []struct {
		name string
		rule HopRule
		want string
	}{
		{"top", HopRule{N: 1}, "127.0.0.1"},
		{"second", HopRule{N: 2}, "192.0.2.50"},
		{"beyond", HopRule{N: 4}, ""},
		{"mx", HopRule{N: 1, MX: []string{"mx1.trap.example"}}, "127.0.0.1"},
		{"mx other", HopRule{N: 1, MX: []string{"out.sender.example"}}, "10.1.1.1"},
		{"mx unknown", HopRule{N: 1, MX: []string{"nope.example"}}, ""},
		{"regexp", HopRule{N: 1, Regexp: regexp.MustCompile(`\(Postfix\)`)}, ""},
		{"regexp named", HopRule{N: 1, Regexp: regexp.MustCompile(`\[(?P<ip>[0-9.]+)\]\) by mx1\.trap\.example \(Postfix\)`)}, "192.0.2.50"},
		{"regexp first group", HopRule{N: 2, Regexp: regexp.MustCompile(`\[([0-9.]+)\]`)}, "192.0.2.50"},
	} {
		h, ok := c.rule.Client(recv)
		got := ""
		if ok {
			got = h.IP.String()
		}
		if got != c.want {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
}

func FuzzParseReceived(f *testing.F) {
	f.Add("from a (b [192.0.2.1]) by c; Tue, 3 Jun 2025 10:11:12 +0000")
	f.Add("from [IPv6:::1] by ; ;")
	f.Fuzz(func(t *testing.T, s string) {
		h := ParseReceived(s)
		if h.IP.IsValid() && h.IP.Is4In6() {
			t.Fatalf("mapped address kept: %v", h.IP)
		}
	})
}
