package trap

import (
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/blowback-dnsbl/blowback/internal/testenv"
	"github.com/blowback-dnsbl/blowback/store"
)

// FuzzSession feeds arbitrary command streams to a trap over a loopback
// connection: the server never panics and never records a recipient outside
// the trap domains.
func FuzzSession(f *testing.F) {
	for _, seed := range []string{
		"EHLO a\r\nMAIL FROM:<>\r\nRCPT TO:<x@trap.blowback.test>\r\nDATA\r\n" + testDSN + ".\r\nQUIT\r\n",
		"EHLO a\r\nMAIL FROM:<>\r\nRCPT TO:<x@trap.blowback.test>\r\nRSET\r\nRSET\r\nQUIT\r\n",
		"HELO a\r\nMAIL FROM:<u@x>\r\nRCPT TO:<h-1712345678-testing@trap.blowback.test>\r\nRCPT TO:<v@example.com>\r\n",
		"EHLO a\r\nMAIL FROM:<> SIZE=10\r\nRCPT TO:<x@trap.blowback.test> NOTIFY=NEVER\r\nBDAT 5 LAST\r\nhello",
		"EHLO a\r\nMAIL FROM:<>\r\nRCPT TO:<x@trap.blowback.test>\r\nBDAT 3\r\nabcBDAT 0 LAST\r\nQUIT\r\n",
		"EHLO a\r\nSTARTTLS\r\n\x16\x03\x01\x00\x05hello",
		"EHLO a\r\nAUTH PLAIN AGFhAGI=\r\nVRFY x\r\nEXPN x\r\nHELP\r\nNOOP\r\n",
		"PROXY TCP4 192.0.2.1 192.0.2.2 1 2\r\nEHLO a\r\n",
		"EHLO a\r\nMAIL FROM:<>\r\nRCPT TO:<x@trap.blowback.test@evil.example>\r\nRCPT TO:<@trap.blowback.test:v@evil.example>\r\nDATA\r\n.\r\n",
		"\x00\xff\r\n\r\n\r\n\r\n",
	} {
		f.Add([]byte(seed))
	}
	sink := &FakeSink{}
	logs := &testenv.Output{}
	s := startTrapLog(f, Config{TLS: selfSignedConfig(f), ReadTimeout: time.Second, DataTimeout: time.Second,
		SessionTimeout: 3 * time.Second, ConnRatePerIP: -1, MaxConnsPerIP: 1000, MaxMessageBytes: 1 << 16, MaxLineLength: 1000}, sink,
		slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelError})))
	addr := s.Addr().String()
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) > 1<<16 {
			return
		}
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		go func() {
			_, _ = c.Write(in)
			_ = c.(*net.TCPConn).CloseWrite()
		}()
		_, _ = io.Copy(io.Discard, c) // until the trap closes
		if n := panics(s, "trap"); n != 0 {
			t.Fatalf("%v panics recovered: %s", n, logs)
		}
		// go-smtp's one known panic (a hang-up mid-BDAT, counted apart in
		// server.go smtpLog) is tolerated; any other fails.
		if n := panics(s, "go-smtp"); n != 0 {
			t.Fatalf("%v go-smtp panics: %s", n, logs)
		}
		for _, ev := range sink.Snapshot() {
			checkEvent(t, s, ev)
		}
	})
}

func checkEvent(t *testing.T, s *Server, ev *store.Event) {
	t.Helper()
	if len(ev.Rcpts) == 0 {
		t.Fatalf("event without recipients: %+v", ev)
	}
	for _, r := range ev.Rcpts {
		if _, ok := s.trapDomain(r); !ok {
			t.Fatalf("non-trap recipient %q accepted", r)
		}
	}
	if err := ev.Validate(); err != nil {
		t.Fatal(err)
	}
}
