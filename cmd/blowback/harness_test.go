package main

// The scaffolding most tests of the commands share: a node on loopback
// ports, a bounce sent to its trap from a chosen address, DNS checks
// against it, HTTP calls to its web server.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/blowback-dnsbl/blowback/dnsd"
	"github.com/blowback-dnsbl/blowback/internal/testenv"
	"github.com/blowback-dnsbl/blowback/store"
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

// deployFile is the path of deploy/<rel> (deploy/ holds the files an
// operator installs: example configs, units, consumer snippets).
func deployFile(t *testing.T, rel string) string {
	t.Helper()
	return filepath.Join(testenv.Root(t), "deploy", rel)
}

// readDeploy reads deploy/<rel>.
func readDeploy(t *testing.T, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(deployFile(t, rel))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// testConfig is the default configuration with its data in dir and every
// listener on a 127.0.0.1:0 port.
func testConfig(dir string) Config {
	cfg := defaultConfig()
	cfg.Data = dir
	cfg.SMTP, cfg.DNS, cfg.HTTP = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	return cfg
}

// mustParse is the configuration toml gives (parseConfig), which must
// be valid.
func mustParse(t *testing.T, toml string) Config {
	t.Helper()
	c, err := parseConfig([]byte(toml))
	if err != nil {
		t.Fatalf("%q: %v", toml, err)
	}
	return c
}

// refusedConfigs checks that parseConfig refuses each of tomls with an
// error that names section.
func refusedConfigs(t *testing.T, section string, tomls ...string) {
	t.Helper()
	for _, bad := range tomls {
		if _, err := parseConfig([]byte(bad)); err == nil || !strings.Contains(err.Error(), section) {
			t.Errorf("%q: err %v, want a %s error", bad, err, section)
		}
	}
}

// newDataDir is a data directory with an empty store, as `run` leaves it.
func newDataDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	c := defaultConfig()
	st, err := store.Open(filepath.Join(dir, "store"), c.storeOptions(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	return dir
}

// runCLI runs the command line args as main does and returns the exit
// code, stdout and stderr.
func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := realMain(args, &out, &errb)
	return code, out.String(), errb.String()
}

// startNode runs an all-in-one node on 127.0.0.1:0 ports in dir.
func startNode(t *testing.T, dir string) *node {
	t.Helper()
	return startNodeConfig(t, testConfig(dir))
}

// testLog is the log of what a test runs: on stderr with -v, else
// discarded.
func testLog() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// startNodeConfig runs a node with cfg (its log on stderr with -v, else
// discarded), retried when the DNS server's TCP listener finds the port
// its UDP listener got taken (dnsd binds UDP :0, then TCP on the same
// port; other tests on the machine may hold it).
func startNodeConfig(t *testing.T, cfg Config) *node {
	t.Helper()
	log := testLog()
	for i := 0; ; i++ {
		n := newNode(cfg, log)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		err := n.Start(ctx)
		cancel()
		if err == nil {
			return n
		}
		n.Stop()
		if i == 4 || !strings.Contains(err.Error(), "address already in use") {
			t.Fatal(err)
		}
	}
}

// needBind skips the test (fails it in CI) unless this host can bind the
// address ip (tests that stand for several clients need all of
// 127.0.0.0/8 on lo, as Linux has it).
func needBind(t *testing.T, ip string) {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		testenv.Missing(t, fmt.Sprintf("cannot bind %s (all of 127.0.0.0/8 on lo needed): %v", ip, err))
		return
	}
	l.Close()
}

// writeFile writes s to path with perm and returns path.
func writeFile(t testing.TB, path, s string, perm os.FileMode) string {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), perm); err != nil {
		t.Fatal(err)
	}
	return path
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

// startStopped starts s (a node) within a minute and stops it when the
// test ends.
func startStopped(t *testing.T, s startStopper) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.Start(ctx); err != nil {
		s.Stop()
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Stop() })
}

// httpDo sends method url with the bearer token tok and the JSON body
// (either left out when "") through c (http.DefaultClient when nil), and
// returns the status code and the body.
func httpDo(t *testing.T, c *http.Client, method, url, tok, body string) (int, []byte) {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, r)
	if err != nil {
		t.Fatal(err)
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json") // JSON POSTs require it (CONTRACT.md)
	}
	if c == nil {
		c = http.DefaultClient
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// httpGet GETs url and returns the status code and the body.
func httpGet(t *testing.T, url string) (int, []byte) {
	t.Helper()
	return httpDo(t, nil, "GET", url, "", "")
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

// scrapeMetric sums the samples of name in the Prometheus text at url
// (fetched through c, http.DefaultClient when nil) whose labels hold every
// one of labels (`k="v"`); ok is false when there is none.
func scrapeMetric(t testing.TB, c *http.Client, url, name string, labels ...string) (v float64, ok bool) {
	t.Helper()
	if c == nil {
		c = http.DefaultClient
	}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("scrape %s: %v", url, err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
next:
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+" ") && !strings.HasPrefix(line, name+"{") {
			continue
		}
		for _, l := range labels {
			if !strings.Contains(line, l) {
				continue next
			}
		}
		f := strings.Fields(line)
		x, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			t.Fatalf("metric line %q: %v", line, err)
		}
		v, ok = v+x, true
	}
	return v, ok
}
