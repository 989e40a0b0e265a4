package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/blowback-dnsbl/blowback/internal/testenv"
)

// bounceFor is a DSN from client ip to a trap address, as the trap
// operator's MX delivered it to a mailbox.
func bounceFor(ip, rcpt string, n int, at time.Time) string {
	return fmt.Sprintf("From MAILER-DAEMON %s\n", at.UTC().Format("Mon Jan _2 15:04:05 2006")) +
		"Return-Path: <>\n" +
		"Delivered-To: " + rcpt + "\n" +
		fmt.Sprintf("Received: from mx.sender.example (mx.sender.example [%s])\n\tby mx.trap.example (Postfix) with ESMTP id X%d;\n\t%s\n", ip, n, at.UTC().Format(time.RFC1123Z)) +
		strings.Replace(strings.ReplaceAll(testDSN, "\r\n", "\n"), "<dsn1@mx.example.net>", fmt.Sprintf("<dsn%d@mx.example.net>", n), 1) + "\n"
}

func TestImportOffline(t *testing.T) {
	dir := newDataDir(t)
	now := time.Now().UTC().Truncate(time.Second)
	var mb strings.Builder
	mb.WriteString(bounceFor("192.0.2.77", "a@trap.blowback.test", 1, now.Add(-2*time.Hour)))
	mb.WriteString(bounceFor("192.0.2.77", "b@trap.blowback.test", 2, now.Add(-time.Hour)))
	mb.WriteString(bounceFor("192.0.2.78", "c@other.example", 3, now.Add(-time.Hour)))    // not a trap domain
	mb.WriteString(bounceFor("10.0.0.1", "d@trap.blowback.test", 4, now.Add(-time.Hour))) // private client
	mb.WriteString("From someone@example.org Tue Jun  3 10:11:12 2025\nDelivered-To: e@trap.blowback.test\n" +
		"Received: from x (x [192.0.2.79]) by mx.trap.example; " + now.Format(time.RFC1123Z) + "\nSubject: hello\n\nplain mail\n\n")
	mb.WriteString("From someone Tue Jun  3 10:11:12 2025\nSubject: no received\nDelivered-To: f@trap.blowback.test\n\nx\n")
	path := filepath.Join(t.TempDir(), "backscatter.mbox")
	writeFile(t, path, mb.String(), 0o644)
	code, out, errs := runCLI(t, "import", "--mbox", path, "--data", dir, "--json", "--progress", "always")
	if code != 0 {
		t.Fatalf("import: exit %d\n%s%s", code, out, errs)
	}
	var st importStats
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if st.Read != 6 || st.Imported != 2 || st.Duplicates != 0 || st.Kinds["bounce"] != 2 ||
		st.Skipped["not_trap_domain"] != 1 || st.Skipped["private_client_ip"] != 1 || st.Skipped["no_client_ip"] != 1 ||
		st.Skipped["not_backscatter_other"] != 1 {
		t.Errorf("first import: %+v", st)
	}
	if !strings.Contains(errs, "importing [") || !strings.Contains(errs, "100%") {
		t.Errorf("no progress bar with --progress always: %q", errs)
	}
	// Again: all duplicates, nothing new.
	code, out, _ = runCLI(t, "import", "--mbox", path, "--data", dir)
	if code != 0 || !strings.Contains(out, "imported:   0") || !strings.Contains(out, "duplicates: 2") ||
		!strings.Contains(out, "skipped:    4 (") {
		t.Errorf("second import: exit %d\n%s", code, out)
	}
	// The evidence lists the address, at the time the MX received it.
	code, out, errs = runCLI(t, "explain", "192.0.2.77", "--data", dir, "--json")
	var x struct {
		Listed    bool       `json:"listed"`
		LastSeen  *time.Time `json:"last_seen"`
		FirstSeen *time.Time `json:"first_seen"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &x) != nil || !x.Listed || x.LastSeen == nil || !x.LastSeen.Equal(now.Add(-time.Hour)) ||
		!x.FirstSeen.Equal(now.Add(-2*time.Hour)) {
		t.Errorf("explain after import: exit %d %s %s", code, out, errs)
	}
	// --any-recipient takes the other domain too; --dry-run stores nothing.
	code, out, _ = runCLI(t, "import", "--mbox", path, "--data", dir, "--any-recipient", "--dry-run")
	if code != 0 || !strings.Contains(out, "would import: 3") {
		t.Errorf("dry run: %d %s", code, out)
	}
	code, out, _ = runCLI(t, "explain", "192.0.2.78", "--data", dir, "--json")
	if code != 0 || !strings.Contains(out, `"listed": false`) {
		t.Errorf("dry run stored evidence: %s", out)
	}
}

func TestImportOnline(t *testing.T) {
	dir := t.TempDir()
	n := startNode(t, dir)
	defer n.Stop()
	now := time.Now().UTC()
	var mb strings.Builder
	for i := range 5 {
		mb.WriteString(bounceFor(fmt.Sprintf("192.0.2.%d", 100+i), "t@trap.blowback.test", i, now.Add(-time.Duration(i)*time.Minute)))
	}
	path := filepath.Join(t.TempDir(), "in.mbox")
	writeFile(t, path, mb.String(), 0o644)
	// The node holds the store: import goes through the API with the admin token.
	code, out, errs := runCLI(t, "import", "--mbox", path, "--data", dir, "--server", "http://"+n.web.Addr().String(), "--batch", "2")
	if code != 0 || !strings.Contains(out, "accepted by the node (new or already stored): 5 (bounce=5)") {
		t.Fatalf("online import: exit %d\n%s%s", code, out, errs)
	}
	for i := range 5 {
		ip := fmt.Sprintf("192.0.2.%d", 100+i)
		eventually(t, "listing of "+ip, func() bool { return check(t, n.dns.Addr().String(), ip).Listed })
	}
	if n.cur.Load().Lookup(netip.MustParseAddr("192.0.2.105")) != 0 {
		t.Error("an address never imported is listed")
	}
	// A wrong token is refused with a one-line error and exit 1.
	code, _, errs = runCLI(t, "import", "--mbox", path, "--data", dir, "--server", "http://"+n.web.Addr().String(), "--token", "wrong")
	if code != 1 || strings.Count(strings.TrimSpace(errs), "\n") != 0 || !strings.Contains(errs, "401") {
		t.Errorf("wrong token: exit %d %q", code, errs)
	}
}

// TestImportCorpus imports every bounce of the shared corpus as one mbox:
// each message is read, imported or skipped with a reason, and a second
// import finds only duplicates.
func TestImportCorpus(t *testing.T) {
	corpus := testenv.Shared(t, "corpus/sisimai/bounces")
	files, _ := filepath.Glob(filepath.Join(corpus, "*.eml"))
	if len(files) == 0 {
		t.Fatal("empty corpus")
	}
	var mb bytes.Buffer
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		mb.WriteString("From MAILER-DAEMON Thu Jan  1 00:00:00 2025\n")
		for _, line := range strings.Split(strings.ReplaceAll(string(b), "\r\n", "\n"), "\n") {
			if strings.HasPrefix(strings.TrimLeft(line, ">"), "From ") {
				line = ">" + line // mboxrd quoting
			}
			mb.WriteString(line + "\n")
		}
		mb.WriteString("\n")
	}
	path := filepath.Join(t.TempDir(), "corpus.mbox")
	os.WriteFile(path, mb.Bytes(), 0o644)
	dir := newDataDir(t)
	args := []string{"import", "--mbox", path, "--data", dir, "--any-recipient", "--json"}
	code, out, errs := runCLI(t, args...)
	var st importStats
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil {
		t.Fatalf("exit %d %s %s", code, out, errs)
	}
	skipped := 0
	for _, v := range st.Skipped {
		skipped += v
	}
	t.Logf("corpus: %+v", st)
	if st.Read != len(files) || st.Imported+st.Duplicates+skipped != st.Read || st.Imported == 0 {
		t.Errorf("read %d of %d files; imported %d + duplicates %d + skipped %d", st.Read, len(files), st.Imported, st.Duplicates, skipped)
	}
	code, out, _ = runCLI(t, args...)
	var again importStats
	if code != 0 || json.Unmarshal([]byte(out), &again) != nil || again.Imported != 0 || again.Duplicates != st.Imported+st.Duplicates {
		t.Errorf("re-import: %+v, want %d duplicates", again, st.Imported+st.Duplicates)
	}
}
