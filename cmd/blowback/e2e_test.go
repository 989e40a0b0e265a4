package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/blowback-dnsbl/blowback/dnsd"
	"github.com/blowback-dnsbl/blowback/internal/testenv"
)

const testDSN = "From: Mail Delivery System <MAILER-DAEMON@mx.example.net>\r\n" +
	"To: x@trap.blowback.test\r\n" +
	"Subject: Undelivered Mail Returned to Sender\r\n" +
	"Message-ID: <dsn1@mx.example.net>\r\n" +
	"MIME-Version: 1.0\r\n" +
	"Content-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\r\n" +
	"\r\n--B\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n" +
	"\r\n--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.net\r\n\r\n" +
	"Final-Recipient: rfc822; nobody@example.net\r\nAction: failed\r\nStatus: 5.1.1\r\n" +
	"\r\n--B\r\nContent-Type: message/rfc822\r\n\r\nFrom: x@trap.blowback.test\r\nTo: nobody@example.net\r\n" +
	"Subject: hi\r\nMessage-ID: <orig@trap.blowback.test>\r\n\r\nspam\r\n--B--\r\n"

// startNode runs an all-in-one node on 127.0.0.1:0 ports in dir.
func startNode(t *testing.T, dir string) *node {
	t.Helper()
	cfg := defaultConfig()
	cfg.Data = dir
	cfg.SMTP, cfg.DNS, cfg.HTTP = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	n := newNode(cfg, log)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := n.Start(ctx); err != nil {
		t.Fatal(err)
	}
	return n
}

// sendFrom delivers msg over SMTP from the local address src.
func sendFrom(t *testing.T, server, src, from, to, msg string) error {
	t.Helper()
	conn, err := testenv.DialFrom(src, server, 5*time.Second)
	if err != nil {
		testenv.Missing(t, fmt.Sprintf("cannot bind %s (all of 127.0.0.0/8 on lo needed): %v", src, err))
	}
	return testenv.Deliver(smtp.NewClient(conn), "mx.sender.example", from, to, msg)
}

func check(t *testing.T, server string, ip string) dnsd.Result {
	t.Helper()
	return checkZone(t, server, "bl.blowback.test", ip)
}

// checkZone asks server whether ip is listed in zone.
func checkZone(t *testing.T, server, zone, ip string) dnsd.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, err := dnsd.Check(ctx, server, zone, netip.MustParseAddr(ip))
	if err != nil {
		t.Fatalf("check %s: %v", ip, err)
	}
	return r
}

// eventually waits for cond (listing is near real time; the bound is
// generous for busy machines, a pass takes milliseconds).
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	testenv.Eventually(t, what, cond)
}

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
	resp, err := http.Post("http://"+httpAddr+"/api/v1/delist", "application/json", strings.NewReader(`{"ip":"127.0.0.9","reason":"fixed our bounces"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("delist status %d", resp.StatusCode)
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

// httpGet GETs url and returns the status code and the body.
func httpGet(t *testing.T, url string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func getBody(t *testing.T, url string) string {
	t.Helper()
	_, b := httpGet(t, url)
	return string(b)
}

// getJSON GETs url, which must answer 200, into v.
func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	code, b := httpGet(t, url)
	if code != 200 {
		t.Fatalf("GET %s: %d %s", url, code, b)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}
