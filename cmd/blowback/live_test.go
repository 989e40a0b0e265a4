package main

// Scaffolding shared by the tests that run real mail software and DNS
// consumers (Postfix, Exim, Haraka, rspamd) against blowback: SMTP
// sessions from chosen loopback addresses, blowback's DNS server where a
// consumer's resolver looks (port 53, or under a refusing policy), and a
// small authoritative server for the test's own domains.

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/miekg/dns"

	"github.com/blowback-dnsbl/blowback/dnsd"
	"github.com/blowback-dnsbl/blowback/internal/testenv"
	"github.com/blowback-dnsbl/blowback/zones"
)

func readFile(p string) string {
	b, _ := os.ReadFile(p)
	return string(b)
}

// smtpAttempt sends one message from the local address src; it returns the
// first error (a rejection is an *smtp.SMTPError).
func smtpAttempt(addr, src, from, rcpt string) error {
	conn, err := testenv.DialFrom(src, addr, 10*time.Second)
	if err != nil {
		return err
	}
	conn.SetDeadline(time.Now().Add(time.Minute))
	return testenv.Deliver(smtp.NewClient(conn), "client.example", from, rcpt,
		"From: "+from+"\r\nTo: "+rcpt+"\r\nSubject: test\r\n\r\nhello\r\n")
}

// smtpMail opens an SMTP session to addr from the local address from and
// returns the reply to MAIL FROM:<sender>.
func smtpMail(t *testing.T, addr, from, sender string) string {
	t.Helper()
	c, err := testenv.DialFrom(from, addr, 10*time.Second)
	if err != nil {
		t.Fatalf("dial from %s: %v", from, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	r := bufio.NewReader(c)
	reply := func() string {
		var last string
		for {
			l, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("from %s: %v (after %q)", from, err, last)
			}
			last = strings.TrimRight(l, "\r\n")
			if len(last) < 4 || last[3] != '-' {
				return last
			}
		}
	}
	if l := reply(); !strings.HasPrefix(l, "220") {
		t.Fatalf("banner %q", l)
	}
	fmt.Fprintf(c, "EHLO client.test\r\n")
	if l := reply(); !strings.HasPrefix(l, "250") {
		t.Fatalf("EHLO: %q", l)
	}
	fmt.Fprintf(c, "MAIL FROM:<%s>\r\n", sender)
	l := reply()
	fmt.Fprintf(c, "QUIT\r\n")
	return l
}

// waitListening waits up to d (a daemon that starts slowly on a loaded
// machine) until something accepts TCP connections on addr; it fails the
// test with what the daemon said, out, if nothing does.
func waitListening(t *testing.T, what, addr string, d time.Duration, out func() string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s does not listen on %s: %v\n%s", what, addr, err, out())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// refuseAll is the refused-query policy that refuses every loopback client
// with the "public resolver" code 127.255.255.254 (dnsd/policy.go): what
// a consumer behind a public resolver gets from a list that refuses those.
var refuseAll = dnsd.Policy{Refuse: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, Answer: dnsd.AnswerCode}

// consumerDNS serves a node's zone on addr (127.0.0.1:53 in a test's own
// network namespace, where the system resolver of Postfix and Exim asks)
// under the refused-query policy p; stop swaps it for another.
type consumerDNS struct {
	srv *dnsd.Server
}

func startConsumerDNS(t *testing.T, cur *zones.Current, addr string, p dnsd.Policy) *consumerDNS {
	t.Helper()
	c := &consumerDNS{srv: dnsd.New(dnsd.Config{Policy: p}, cur, nil, nil)}
	if err := c.srv.Start(addr); err != nil {
		t.Fatalf("dns on %s: %v", addr, err)
	}
	t.Cleanup(c.stop)
	return c
}

func (c *consumerDNS) stop() {
	if c.srv == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c.srv.Stop(ctx)
	c.srv = nil
}

// checkRefused asserts that the server on addr answers ip with the
// refusal code, not a listing (so a consumer test that then sees no
// rejection saw the code, not a dead server).
func checkRefused(t *testing.T, addr, ip string) {
	t.Helper()
	r := check(t, addr, ip)
	if r.Listed || len(r.Codes) != 1 || r.Codes[0] != dnsd.CodePublicResolver {
		t.Fatalf("refusing server answers %s with %+v; want the code %v, not listed", ip, r, dnsd.CodePublicResolver)
	}
}

// serveOn53 serves zone with blowback's DNS server on port 53 of a
// loopback address of its own (127.53.x.y), for consumers whose resolver
// knows no other port; it returns the address.
func serveOn53(t *testing.T, zone *zones.Snapshot) string {
	t.Helper()
	cur := &zones.Current{}
	cur.Store(zone)
	cfg := defaultConfig()
	for try := 0; ; try++ {
		ns := fmt.Sprintf("127.53.%d.%d", 1+rand.IntN(250), 1+rand.IntN(250))
		srv := dnsd.New(cfg.dnsConfig(), cur, nil, nil)
		err := srv.Start(ns + ":53")
		if err == nil {
			t.Cleanup(func() { srv.Stop(context.Background()) })
			return ns
		}
		if try == 5 {
			testenv.Missing(t, "cannot serve DNS on a loopback port 53: "+err.Error())
		}
	}
}

func mustRR(t *testing.T, s string) dns.RR {
	t.Helper()
	rr, err := dns.NewRR(s)
	if err != nil {
		t.Fatal(err)
	}
	return rr
}

// serveTestZone answers from rrs (authoritative; NOERROR/NODATA for a
// known name without the type, NXDOMAIN otherwise) on UDP and TCP.
func serveTestZone(t *testing.T, rrs map[string][]dns.RR) string {
	t.Helper()
	h := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		m.Authoritative = true
		if len(r.Question) == 1 {
			q := r.Question[0]
			set, ok := rrs[strings.ToLower(q.Name)]
			if !ok {
				m.Rcode = dns.RcodeNameError
			}
			for _, rr := range set {
				if rr.Header().Rrtype == q.Qtype {
					m.Answer = append(m.Answer, rr)
				}
			}
		}
		w.WriteMsg(m)
	})
	// The same port for UDP and TCP: retry when another process holds
	// the TCP side of the UDP port we got.
	var pc net.PacketConn
	var tl net.Listener
	var addr string
	for i := 0; ; i++ {
		var err error
		if pc, err = net.ListenPacket("udp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		addr = pc.LocalAddr().String()
		if tl, err = net.Listen("tcp", addr); err == nil {
			break
		}
		pc.Close()
		if i == 20 {
			t.Fatal(err)
		}
	}
	udp := &dns.Server{PacketConn: pc, Handler: h}
	tcp := &dns.Server{Listener: tl, Handler: h}
	go udp.ActivateAndServe()
	go tcp.ActivateAndServe()
	t.Cleanup(func() { udp.Shutdown(); tcp.Shutdown() })
	return addr
}
