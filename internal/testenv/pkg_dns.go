package testenv

// Helpers for the package tests that put a real DNS server (rbldnsd, Knot)
// next to blowback's and compare what they answer.

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// AskDNSBL returns server's A and TXT answers for name as a DNSBL client
// sees them: over UDP (tried three times), again over TCP when truncated.
func AskDNSBL(t testing.TB, server, name string) Answer {
	t.Helper()
	var rs []*dns.Msg
	c := &dns.Client{Timeout: 5 * time.Second}
	for _, qt := range []uint16{dns.TypeA, dns.TypeTXT} {
		m := new(dns.Msg)
		m.SetQuestion(name, qt)
		var r *dns.Msg
		var err error
		for range 3 {
			if r, _, err = c.Exchange(m, server); err == nil {
				break
			}
		}
		if err != nil {
			t.Fatalf("query %s %s at %s: %v", name, dns.TypeToString[qt], server, err)
		}
		if r.Truncated {
			r, _, err = (&dns.Client{Net: "tcp", Timeout: 5 * time.Second}).Exchange(m, server)
			if err != nil {
				t.Fatalf("query %s over TCP: %v", name, err)
			}
		}
		rs = append(rs, r)
	}
	return AnswerOf(rs...)
}

// WaitForSOA waits until server answers zone's SOA, with serial unless
// serial is 0, asking every 100 ms; it fails the test after a minute,
// saying what server answered last.
func WaitForSOA(t testing.TB, server, zone string, serial uint32) {
	t.Helper()
	c := &dns.Client{Timeout: 300 * time.Millisecond}
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(zone), dns.TypeSOA)
	var last string
	deadline := time.Now().Add(time.Minute)
	for {
		r, _, err := c.Exchange(m, server)
		switch {
		case err != nil:
			last = err.Error()
		case len(r.Answer) != 1:
			last = dns.RcodeToString[r.Rcode]
		default:
			if soa, ok := r.Answer[0].(*dns.SOA); ok && (serial == 0 || soa.Serial == serial) {
				return
			}
			last = r.Answer[0].String()
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never served %s serial %d (last: %s)", server, zone, serial, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// ServeRbldnsd serves file (rbldnsd's combined format, with a $SOA) as
// zone with a real rbldnsd on a free port of 127.0.0.1 and returns its
// address once it answers, and its output (logged if the test fails). As
// root, rbldnsd runs as nobody: file's directory and the one above are
// made readable.
func ServeRbldnsd(t testing.TB, zone, file string) (string, *Output) {
	t.Helper()
	bin := Tool(t, "rbldnsd")
	dir := filepath.Dir(file)
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	port := FreePort(t)
	var args []string
	if os.Getuid() == 0 {
		args = []string{"-u", "nobody"} // rbldnsd refuses to run as root
	}
	args = append(args, "-n", "-b", fmt.Sprintf("127.0.0.1/%d", port), "-w", dir, zone+":combined:"+filepath.Base(file))
	out := Daemon(t, bin, args...)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	WaitForSOA(t, addr, zone, 0)
	return addr, out
}

// KnotSecondary is a knotd secondary of one zone on 127.0.0.1, taking
// transfers and NOTIFY from a primary there.
type KnotSecondary struct {
	Dir     string // its run directory, zone storage and journal
	Port    int    // where it listens
	Primary int    // the primary's port
	Zone    string
	// TSIGKey and TSIGSecret, when set, are an hmac-sha256 key both
	// transfers and NOTIFY must carry.
	TSIGKey, TSIGSecret string
	// JournalAll keeps the zone in the journal (no zone file), so that
	// knotd restarts at the serial it had.
	JournalAll bool
}

// Config writes knot.conf in k.Dir and returns its path (knotd -c).
func (k KnotSecondary) Config(t testing.TB) string {
	t.Helper()
	var key, useKey string
	if k.TSIGKey != "" {
		key = fmt.Sprintf("key:\n  - id: %s\n    algorithm: hmac-sha256\n    secret: %s\n", k.TSIGKey, k.TSIGSecret)
		useKey = "    key: " + k.TSIGKey + "\n"
	}
	journal := "changes"
	if k.JournalAll {
		journal = "all"
	}
	conf := fmt.Sprintf(`server:
    rundir: "%[1]s"
    pidfile: "%[1]s/knot.pid"
    listen: 127.0.0.1@%[2]d
log:
  - target: stderr
    any: info
database:
    storage: "%[1]s"
%[4]sremote:
  - id: primary
    address: 127.0.0.1@%[3]d
%[5]sacl:
  - id: notify_from_primary
    address: 127.0.0.0/8
%[5]s    action: notify
template:
  - id: default
    storage: "%[1]s"
    file: "%%s.zone"
    zonefile-sync: -1
    zonefile-load: none
    journal-content: %[6]s
zone:
  - domain: %[7]s
    master: primary
    acl: notify_from_primary
`, k.Dir, k.Port, k.Primary, key, useKey, journal, k.Zone)
	path := filepath.Join(k.Dir, "knot.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}
