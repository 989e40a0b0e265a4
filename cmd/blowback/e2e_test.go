package main

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/blowback-dnsbl/blowback/dnsd"
)

func TestEndToEnd(t *testing.T) {
	dir := t.TempDir()
	n := startNode(t, dir)
	smtpAddr, dnsAddr, httpAddr := n.trap.Addr().String(), n.dns.Addr().String(), n.web.Addr().String()

	if r := check(t, dnsAddr, "127.0.0.9"); r.Listed {
		t.Fatalf("127.0.0.9 listed before any evidence: %+v", r)
	}
	// A non-trap recipient is refused: the trap never relays.
	if err := sendFrom(t, smtpAddr, "127.0.0.9", "", "victim@example.org", testDSN); err == nil || !strings.Contains(err.Error(), "550") {
		t.Fatalf("relay attempt: %v, want 550", err)
	}
	start := time.Now()
	if err := sendFrom(t, smtpAddr, "127.0.0.9", "", "x@trap.blowback.test", testDSN); err != nil {
		t.Fatal(err)
	}
	eventually(t, "listing of 127.0.0.9", func() bool { return check(t, dnsAddr, "127.0.0.9").Listed })
	t.Logf("trap 250 -> DNS listed in %v", time.Since(start))
	r := check(t, dnsAddr, "127.0.0.9")
	if len(r.Codes) != 1 || r.Codes[0] != netip.MustParseAddr("127.0.0.2") {
		t.Fatalf("codes = %v, want [127.0.0.2]", r.Codes)
	}
	if len(r.TXT) != 1 || !strings.Contains(r.TXT[0], "127.0.0.9") {
		t.Fatalf("TXT = %q, want the address substituted", r.TXT)
	}
	if r := check(t, dnsAddr, "127.0.0.1"); r.Listed || r.Rcode != "NXDOMAIN" {
		t.Fatalf("127.0.0.1: %+v, want NXDOMAIN", r)
	}
	ctx := context.Background()
	if _, err := dnsd.Check(ctx, dnsAddr, "example.org", netip.MustParseAddr("127.0.0.9")); err == nil || !strings.Contains(err.Error(), "REFUSED") {
		t.Fatalf("out of zone: %v, want REFUSED", err)
	}
	var l struct {
		Listed   bool     `json:"listed"`
		Codes    []string `json:"codes"`
		Evidence []struct {
			Kind string `json:"kind"`
			HELO string `json:"helo"`
		} `json:"evidence"`
	}
	getJSON(t, "http://"+httpAddr+"/api/v1/lookup/127.0.0.9", &l)
	if !l.Listed || len(l.Codes) != 1 || len(l.Evidence) != 1 || l.Evidence[0].Kind != "bounce" || l.Evidence[0].HELO != "mx.sender.example" {
		t.Fatalf("lookup = %+v", l)
	}

	// Self-service delist takes effect at once.
	if code, _ := httpDo(t, nil, "POST", "http://"+httpAddr+"/api/v1/delist", "", `{"ip":"127.0.0.9","reason":"fixed our bounces"}`); code != 200 {
		t.Fatalf("delist status %d", code)
	}
	eventually(t, "delisting", func() bool { return !check(t, dnsAddr, "127.0.0.9").Listed })

	// A new hit relists; a restart keeps the listing.
	if err := sendFrom(t, smtpAddr, "127.0.0.9", "", "y@trap.blowback.test", testDSN); err != nil {
		t.Fatal(err)
	}
	eventually(t, "relisting", func() bool { return check(t, dnsAddr, "127.0.0.9").Listed })
	if err := n.Stop(); err != nil {
		t.Fatal(err)
	}
	n = startNode(t, dir)
	defer n.Stop()
	if r := check(t, n.dns.Addr().String(), "127.0.0.9"); !r.Listed {
		t.Fatalf("after restart: %+v, want listed", r)
	}
}
