//go:build linux

package main

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// server answers on 127.0.0.1 over UDP: NXDOMAIN for most names, nothing
// for names starting "drop", and an answer to another question for names
// starting "other".
func server(t *testing.T) int {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		name := r.Question[0].Name
		if strings.HasPrefix(name, "drop") {
			return
		}
		m := new(dns.Msg)
		m.SetRcode(r, dns.RcodeNameError)
		if strings.HasPrefix(name, "other") {
			m.Question[0].Name = "elsewhere.test."
		}
		_ = w.WriteMsg(m)
	})}
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	go func() { _ = srv.ActivateAndServe() }()
	<-started
	t.Cleanup(func() { _ = srv.Shutdown() })
	return pc.LocalAddr().(*net.UDPAddr).Port
}

func TestRun(t *testing.T) {
	port := server(t)
	path := filepath.Join(t.TempDir(), "queries.txt")
	// 10 queries a cycle: 7 answered, 2 dropped, 1 answered wrongly.
	lines := "a.test A\nb.test A\ndrop1.test A\nc.test A\nother.test A\nd.test TXT\ne.test A\ndrop2.test A\nf.test A\ng.test A\n"
	if err := os.WriteFile(path, []byte(lines), 0o644); err != nil {
		t.Fatal(err)
	}
	qs, err := readQueries(path)
	if err != nil {
		t.Fatal(err)
	}
	r, err := run(config{server: "127.0.0.1", port: port, queries: qs, rate: 2000, seconds: 1, warm: 0.2, sockets: 2, timeout: 2 * time.Second, tick: 100 * time.Microsecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Log(r.summary())
	if r.sent < 1990 || r.sent > 2000 {
		t.Errorf("sent %d queries in 1 s at 2000 QPS", r.sent)
	}
	cycles := r.sent / 10
	// Every query is the same share of the run; allow for a cut cycle.
	// A wrong answer leaves its query in flight: lost too.
	if r.lost < 3*cycles || r.lost > 3*cycles+3 {
		t.Errorf("lost %d, want 3 in every 10 of %d", r.lost, r.sent)
	}
	if r.wrong < cycles || r.wrong > cycles+1 {
		t.Errorf("wrong %d, want 1 in every 10 of %d", r.wrong, r.sent)
	}
	if r.answered+r.lost != r.sent {
		t.Errorf("answered %d + lost %d != sent %d", r.answered, r.lost, r.sent)
	}
	if r.rcodes[dns.RcodeNameError] != r.answered {
		t.Errorf("rcodes %v, want all %d NXDOMAIN", r.rcodes, r.answered)
	}
	if r.noKernelTS != 0 {
		t.Errorf("%d answers without a kernel timestamp", r.noKernelTS)
	}
	// Queries due in the first 0.2 s are the warm-up.
	if r.steadySent != r.sent*8/10 {
		t.Errorf("steady %d of %d sent, want 80%%", r.steadySent, r.sent)
	}
	if n := len(r.latencies); n < r.steadySent*7/10-2 || n > r.steadySent*7/10+2 {
		t.Errorf("%d steady latencies of %d steady sent, want 7 in 10", n, r.steadySent)
	}
	for _, l := range r.latencies {
		if l <= 0 || l > int64(2*time.Second) {
			t.Fatalf("latency %d ns", l)
		}
	}
}

func TestRunRefusesIDWrap(t *testing.T) {
	_, err := run(config{server: "127.0.0.1", port: 1, queries: [][]byte{make([]byte, 12)}, rate: 50000, seconds: 1, sockets: 1, timeout: 2 * time.Second})
	if err == nil || !strings.Contains(err.Error(), "-c 4") {
		t.Fatalf("err = %v, want the socket count to ask for", err)
	}
}

func TestReadQueries(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ text, err string }{
		{"a.test A\n# comment\n\nb.test txt\n", ""},
		{"a.test BOGUS\n", "unknown type"},
		{"", "no queries"},
	} {
		path := filepath.Join(dir, "q")
		if err := os.WriteFile(path, []byte(tc.text), 0o644); err != nil {
			t.Fatal(err)
		}
		qs, err := readQueries(path)
		if tc.err == "" {
			if err != nil || len(qs) != 2 {
				t.Errorf("%q: %d queries, %v", tc.text, len(qs), err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%q: err %v, want %q", tc.text, err, tc.err)
		}
	}
}
