package trap

import (
	"bufio"
	"net"
	"os"
	"strings"
	"testing"
	"time"
)

// TestSlowlorisPartialLineIsNotACommand: a command line trickled slower
// than ReadTimeout must end the session with 421 4.4.2, and no fragment of
// it may be answered as a command.
//
// Known issue (trap/listener.go, found by bench/reliability): when the
// read deadline fires mid-line, trapConn.Read returns the bytes read with
// the timeout error; bufio.Reader.ReadLine (under textproto, under go-smtp)
// drops an error that comes with a partial line, so go-smtp answers the
// fragment ("EHLO sl" → 250) and sets a fresh deadline: a client sending a
// byte every few seconds holds the connection until SessionTimeout. Fix:
// make the timeout sticky in trapConn.Read (on a timeout, end the session
// with c.abort(limitIdle, "421 4.4.2 Idle timeout, closing connection")
// and return the error, as the session-time case already does), so the
// next read fails and no fragment is served. Run it with
// BLOWBACK_KNOWN_ISSUES=1.
func TestSlowlorisPartialLineIsNotACommand(t *testing.T) {
	if os.Getenv("BLOWBACK_KNOWN_ISSUES") != "1" {
		t.Skip("known issue: a read timeout mid-line is served as a command (see the comment; BLOWBACK_KNOWN_ISSUES=1 runs it)")
	}
	s := startTrap(t, Config{ReadTimeout: 500 * time.Millisecond, SessionTimeout: 30 * time.Second}, nil)
	c, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	go func() {
		for _, b := range []byte("EHLO slow.example.net\r\n") {
			if _, err := c.Write([]byte{b}); err != nil {
				return
			}
			time.Sleep(200 * time.Millisecond)
		}
	}()
	r := bufio.NewReader(c)
	var replies []string
	for {
		l, err := r.ReadString('\n')
		if l = strings.TrimRight(l, "\r\n"); l != "" {
			replies = append(replies, l)
		}
		if err != nil {
			break
		}
	}
	// The greeting, then the timeout; nothing in between.
	if len(replies) != 2 || !strings.HasPrefix(replies[0], "220 ") || !strings.HasPrefix(replies[1], "421 4.4.2") {
		t.Fatalf("replies to a trickled line: %q, want the greeting and 421 4.4.2", replies)
	}
}
