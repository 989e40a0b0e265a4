package trap

import (
	"bufio"
	"net"
	"strings"
	"testing"
	"time"
)

// TestSlowlorisPartialLineIsNotACommand: a command line trickled slower
// than ReadTimeout must end the session with 421 4.4.2, and no fragment of
// it may be answered as a command.
//
// Found by bench/reliability: when the read deadline fires mid-line, the
// line reader under go-smtp (bufio.Reader.ReadLine) drops the error that
// comes after a partial line, so the fragment was answered as a command
// and a fresh deadline set: a client sending a byte every few seconds held
// the connection until SessionTimeout. trapConn.Read now ends such a
// session itself.
func TestSlowlorisPartialLineIsNotACommand(t *testing.T) {
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
