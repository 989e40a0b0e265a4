package dnsd

import (
	"runtime"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// TestReadersKeepP: with a P for each socket reader and one more, the
// readers keep theirs in recvmmsg (raw system calls the scheduler does not
// see). A stop-the-world must still get them: a GC while every reader
// waits on an idle socket completes, and so does one after GOMAXPROCS is
// lowered below what the readers need (they go back to the runtime's
// syscall path); the server answers in both modes and stops.
func TestReadersKeepP(t *testing.T) {
	if !blockingUDP {
		t.Skip("socket readers use the netpoller on this platform")
	}
	old := runtime.GOMAXPROCS(0)
	defer runtime.GOMAXPROCS(old)
	s, addr, _ := startServer(t, Config{UDPSockets: 2, RaiseGOMAXPROCS: true}, testSnapshot())
	if n := runtime.GOMAXPROCS(0); n < 3 {
		t.Fatalf("GOMAXPROCS %d, want >= 3", n)
	}
	for _, w := range s.udp {
		if !w.canOwnP {
			t.Fatal("no receive timeout on the socket: readers cannot keep their P")
		}
	}
	check := func(mode string) {
		t.Helper()
		r := exchange(t, addr, "udp", query(v4name("192.0.2.1"), dns.TypeA))
		if r.Rcode != dns.RcodeSuccess || len(r.Answer) == 0 {
			t.Fatalf("%s: listed address: %v", mode, r)
		}
		// Readers idle in recvmmsg; a GC must stop the world anyway.
		done := make(chan struct{})
		go func() {
			for range 3 {
				runtime.GC()
			}
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(time.Minute):
			t.Fatalf("%s: GC did not finish: a socket reader holds its P", mode)
		}
	}
	check("readers keep their P")
	// Not above the two readers any more: each sees it at its next wait.
	runtime.GOMAXPROCS(2)
	exchange(t, addr, "udp", query(v4name("192.0.2.1"), dns.TypeA))
	check("GOMAXPROCS lowered")
}
