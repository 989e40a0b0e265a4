package main

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/blowback-dnsbl/blowback/dnsd"
	"github.com/blowback-dnsbl/blowback/zones"
)

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
