package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/blowback-dnsbl/blowback/dnsd"
	"github.com/blowback-dnsbl/blowback/internal/testenv"
	"github.com/blowback-dnsbl/blowback/store"
)

// crashDSN is testDSN with its own outer (and returned) Message-ID.
func crashDSN(id string) string {
	return strings.NewReplacer("<dsn1@mx.example.net>", "<"+id+">", "<orig@trap.blowback.test>", "<orig-"+id+">").Replace(testDSN)
}

// proc is a running `blowback run` child and the addresses it bound.
type proc struct {
	*binProc
	smtp, dns, http string
}

// startBinary runs `bin run` on free loopback ports with data in dir and
// waits for its "blowback running" line, which names the bound addresses.
func startBinary(t *testing.T, bin, dir string) *proc {
	t.Helper()
	for try := 0; ; try++ {
		p := startProc(t, "blowback run", bin, "run", "--data", dir, "--smtp", "127.0.0.1:0", "--dns", "127.0.0.1:0", "--http", "127.0.0.1:0")
		kv, err := p.running()
		if err == nil {
			if kv["smtp"] == "" || kv["dns"] == "" {
				t.Fatalf("no addresses in the running line:\n%s", p.log.String())
			}
			return &proc{binProc: p, smtp: kv["smtp"], dns: kv["dns"], http: kv["http"]}
		}
		// dnsd binds UDP on a free port, then TCP on the same one, which
		// another process may hold: try again on new ports.
		if try < 5 && strings.Contains(err.Error(), "address already in use") {
			continue
		}
		t.Fatal(err)
	}
}

// sendOne delivers one bounce from src and reports whether the server
// acknowledged it with 250 at the end of DATA.
func sendOne(server, src, id string) bool {
	conn, err := testenv.DialFrom(src, server, 5*time.Second)
	if err != nil {
		return false
	}
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	c := smtp.NewClient(conn)
	defer c.Close()
	return testenv.Send(c, "mx.example.net", "", "x@trap.blowback.test", crashDSN(id)) == nil // nil: the server answered 250 to the final dot
}

// TestCrashKeepsAcknowledgedEvidence sends bounces from several sources
// concurrently, kills the node with SIGKILL at a random moment, restarts
// it, and checks that every message that got a 250 is in the store and
// that the listing was rebuilt (the sources answer listed over DNS).
func TestCrashKeepsAcknowledgedEvidence(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := buildBinary(t)
	dir := filepath.Join(t.TempDir(), "data")
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(uint64(seed), 1))

	p := startBinary(t, bin, dir)
	// Sources must be bindable (all of 127.0.0.0/8 is on lo on Linux).
	sources := []string{"127.0.0.21", "127.0.0.22", "127.0.0.23", "127.0.0.24"}
	needBind(t, sources[0])
	var mu sync.Mutex
	acked := map[string][]string{} // source -> Message-IDs acknowledged
	nAcked := 0
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for si, src := range sources {
		for w := 0; w < 4; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 150; i++ {
					select {
					case <-stop:
						return
					default:
					}
					id := fmt.Sprintf("crash-%d-%d-%d@mx.example.net", si, w, i)
					if sendOne(p.smtp, src, id) {
						mu.Lock()
						acked[src] = append(acked[src], id)
						nAcked++
						mu.Unlock()
					}
				}
			}()
		}
	}
	// Kill at a random moment once some mail was acknowledged.
	deadline := time.Now().Add(time.Minute)
	for {
		mu.Lock()
		n := nAcked
		mu.Unlock()
		if n >= 20 || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(time.Duration(rng.Int64N(int64(400 * time.Millisecond))))
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-p.done
	close(stop)
	wg.Wait()
	mu.Lock()
	total := nAcked
	mu.Unlock()
	if total == 0 {
		t.Fatalf("no message acknowledged before the kill:\n%s", p.log.String())
	}
	t.Logf("killed with %d messages acknowledged", total)

	// Restart: the listing is rebuilt from the store.
	p2 := startBinary(t, bin, dir)
	for src, ids := range acked {
		if len(ids) == 0 {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		r, err := dnsd.Check(ctx, p2.dns, "bl.blowback.test", netip.MustParseAddr(src))
		cancel()
		if err != nil || !r.Listed {
			t.Errorf("%s not listed after restart (%d acknowledged): %+v %v", src, len(ids), r, err)
		}
	}
	if err := p2.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	<-p2.done
	if st := p2.cmd.ProcessState; !st.Success() {
		t.Logf("exit after SIGTERM: %v", st)
	}

	// Every acknowledged message is in the store.
	st, err := store.Open(filepath.Join(dir, "store"), store.DefaultOptions(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	lost := 0
	for src, ids := range acked {
		evs, err := st.Events(netip.MustParsePrefix(src+"/32"), 0)
		if err != nil {
			t.Fatal(err)
		}
		have := map[string]bool{}
		for _, e := range evs {
			have[strings.Trim(e.MessageID, "<>")] = true
		}
		for _, id := range ids {
			if !have[id] {
				lost++
				if lost <= 5 {
					t.Errorf("%s: acknowledged message %s not in the store", src, id)
				}
			}
		}
	}
	if lost > 0 {
		t.Fatalf("%d of %d acknowledged messages lost", lost, total)
	}
	t.Logf("all %d acknowledged messages found after kill -9 and restart", total)
}
