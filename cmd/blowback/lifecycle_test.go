package main

import (
	"fmt"
	"log/slog"
	"net/http"
	"testing"

	"github.com/blowback-dnsbl/blowback/internal/testenv"
)

// readyz is the status of GET url (0 when it cannot be fetched).
func readyz(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// waitReadyz waits until url answers want (a condition, not a sleep).
func waitReadyz(t *testing.T, url string, want int) {
	t.Helper()
	testenv.Eventually(t, fmt.Sprintf("%s to answer %d", url, want), func() bool { return readyz(t, url) == want })
}

// A node whose SMTP listener stops serving by itself turns /readyz red
// (the lifecycle records the dead component), and still stops.
func TestRunReadyzDeadComponent(t *testing.T) {
	n := startNode(t, newDataDir(t))
	url := "http://" + n.web.Addr().String() + "/readyz"
	waitReadyz(t, url, http.StatusOK)
	n.trap.l.Close() // the accept loop fails: not a Stop
	waitReadyz(t, url, http.StatusServiceUnavailable)
	if err := n.life.Err(); err == nil {
		t.Error("no dead component recorded")
	}
	n.Stop() // may say the listener was already closed
	if n.life.Ready() {
		t.Error("ready after stop")
	}
}

// startTrapNode starts a trap-only node on free ports (no forwarding).
func startTrapNode(t *testing.T) *trapNode {
	t.Helper()
	cfg := defaultConfig()
	cfg.Data = t.TempDir()
	cfg.SMTP, cfg.HTTP = "127.0.0.1:0", "127.0.0.1:0"
	n := newTrapNode(cfg, slog.New(slog.DiscardHandler))
	startStopped(t, n)
	return n
}

func TestTrapReadyzDeadComponent(t *testing.T) {
	n := startTrapNode(t)
	url := "http://" + n.httpL.Addr().String() + "/readyz"
	waitReadyz(t, url, http.StatusOK)
	n.trap.l.Close()
	waitReadyz(t, url, http.StatusServiceUnavailable)
	n.Stop()
	if n.life.Ready() {
		t.Error("ready after stop")
	}
}
