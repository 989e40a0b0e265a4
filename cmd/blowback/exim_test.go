package main

import (
	"bufio"
	"context"
	"net/netip"
	"strings"
	"testing"

	"github.com/blowback-dnsbl/blowback/dnsd"
	"github.com/blowback-dnsbl/blowback/internal/testenv"
	"github.com/blowback-dnsbl/blowback/zones"
)

// eximSnippet is the ACL statement of deploy/consumers/exim.conf (its
// lines that are not comments).
func eximSnippet(t *testing.T) string {
	t.Helper()
	b := readDeploy(t, "consumers/exim.conf")
	var out []string
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	for sc.Scan() {
		if l := sc.Text(); strings.TrimSpace(l) != "" && !strings.HasPrefix(strings.TrimSpace(l), "#") {
			out = append(out, l)
		}
	}
	if len(out) == 0 {
		t.Fatal("deploy/consumers/exim.conf has no statement")
	}
	return strings.Join(out, "\n")
}

// TestEximDnslists runs Debian's Exim (unpacked from its .deb, its own
// configuration and user) with deploy/consumers/exim.conf in its RCPT ACL
// against blowback's DNS server, session by session (exim -bh): listed
// sources of bounces are refused with the list's text, everything else
// passes, and an answer outside 127.0.0.2-5 (a refusal or error code, like
// a public-resolver block's 127.255.255.254) is not read as a listing in
// safe mode, while a naive `dnslists = zone` would reject on it.
func TestEximDnslists(t *testing.T) {
	snippet := eximSnippet(t)
	safe := testenv.NewExim(t, "acl_smtp_rcpt = acl_check_rcpt\nbegin acl\nacl_check_rcpt:\n"+snippet+"\n  accept\n")
	naive := testenv.NewExim(t, `acl_smtp_rcpt = acl_check_rcpt
begin acl
acl_check_rcpt:
  deny    senders  = : postmaster@*
          dnslists = bl.blowback.test
          message  = naive: $dnslist_value
  accept
`)

	// blowback's DNS server on port 53 of a loopback address of its own
	// (Exim's resolver knows no other port).
	zone := zones.Build(zones.Info{Zone: "bl.blowback.test", Serial: 7, TXT: "Backscatter from $ hit blowback traps"}, []zones.Entry{
		{Prefix: netip.MustParsePrefix("192.0.2.1/32"), Codes: zones.CodeBounce},
		{Prefix: netip.MustParsePrefix("192.0.2.3/32"), Codes: zones.CodeCallout | zones.CodeAutoreply},
		{Prefix: netip.MustParsePrefix("2001:db8:1:2::/64"), Codes: zones.CodeChallenge},
		{Prefix: netip.MustParsePrefix("192.0.2.254/32"), Value: &zones.Value{A: []netip.Addr{netip.MustParseAddr("127.255.255.254")},
			TXT: "query refused: use your own resolver", OwnTXT: true}},
	})
	ns := serveOn53(t, zone)
	// The refusal code is what the server answers (else this test proves nothing).
	if r, err := dnsd.Check(context.Background(), ns+":53", "bl.blowback.test", netip.MustParseAddr("192.0.2.254")); err != nil ||
		len(r.Codes) != 1 || r.Codes[0].String() != "127.255.255.254" {
		t.Fatalf("the refusal code is not served: %+v %v", r, err)
	}

	session := func(from string) []string {
		return []string{"EHLO client.test", "MAIL FROM:<" + from + ">", "RCPT TO:<user@mx.exim.test>", "QUIT"}
	}
	for _, c := range []struct {
		name, ip, from string
		exim           *testenv.Exim
		reject         string // "" = accepted
	}{
		{"listed bounce source", "192.0.2.1", "", safe, "550 192.0.2.1 sends backscatter: Backscatter from 192.0.2.1 hit blowback traps"},
		{"listed, postmaster sender", "192.0.2.3", "postmaster@client.test", safe, "550 192.0.2.3 sends backscatter"},
		{"listed, ordinary mail is not touched", "192.0.2.1", "alice@client.test", safe, ""},
		{"IPv6 /64 listed", "2001:db8:1:2::25", "", safe, "550-2001:0db8:0001:0002:0000:0000:0000:0025 sends backscatter"},
		{"not listed", "192.0.2.99", "", safe, ""},
		{"RFC 5782 test point 127.0.0.2", "127.0.0.2", "", safe, "550 127.0.0.2 sends backscatter"},
		{"RFC 5782 test point 127.0.0.1", "127.0.0.1", "", safe, ""},
		{"refusal code, safe mode", "192.0.2.254", "", safe, ""},
		{"refusal code, naive dnslists", "192.0.2.254", "", naive, "550 naive: 127.255.255.254"},
	} {
		t.Run(c.name, func(t *testing.T) {
			out, dbg := c.exim.HostCheck(t, c.ip, ns, session(c.from)...)
			var rcpt string
			for _, l := range strings.Split(out, "\n") {
				l = strings.TrimRight(l, "\r")
				if strings.HasPrefix(l, "250 Accepted") || (strings.HasPrefix(l, "550") && rcpt == "") {
					rcpt = l
				}
			}
			switch {
			case c.reject == "" && !strings.HasPrefix(rcpt, "250 Accepted"):
				t.Errorf("RCPT from %s: %q, want accepted\n%s\n%s", c.ip, rcpt, out, dbg)
			case c.reject != "" && !strings.HasPrefix(rcpt, c.reject):
				t.Errorf("RCPT from %s: %q, want %q\n%s\n%s", c.ip, rcpt, c.reject, out, dbg)
			}
			if strings.Contains(dbg, "DNS lookup") && strings.Contains(dbg, "DNS error") {
				t.Errorf("Exim saw a DNS error:\n%s", dbg)
			}
		})
	}
}
