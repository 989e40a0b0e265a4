package main

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/blowback-dnsbl/blowback/internal/metric"
	"github.com/blowback-dnsbl/blowback/internal/testenv"
)

// TestTrapSpoolUnitCap: one source floods a trap-only node while its
// central node is away. Without per-unit caps the flood fills the spool
// (spool_max_events) and the trap answers 451 to everyone; with them the
// flooding unit gets spool_unit_max_events events spooled and the rest
// dropped (250 all the same), another source's events are still spooled,
// and once the central node is up both units are listed there.
func TestTrapSpoolUnitCap(t *testing.T) {
	const (
		flooder  = "127.0.0.9"
		other    = "127.0.0.10"
		offered  = 30
		spoolMax = 20
		unitMax  = 5
		token    = "trap-1-token-spoolcap-0123456789"
	)
	needBind(t, flooder)
	needBind(t, other)
	send := func(addr, src string, n int) (refused int, firstErr error) {
		t.Helper()
		for i := range n {
			to := fmt.Sprintf("t%d-%s@trap.blowback.test", i, strings.ReplaceAll(src, ".", "-"))
			if err := sendFrom(t, addr, src, "", to, testDSN); err != nil {
				if !strings.Contains(err.Error(), "451") {
					t.Fatalf("from %s: %v", src, err)
				}
				refused++
				if firstErr == nil {
					firstErr = err
				}
			}
		}
		return refused, firstErr
	}
	trapConfig := func(unitMax int) Config {
		cfg := defaultConfig()
		cfg.Data = t.TempDir()
		cfg.SMTP, cfg.HTTP = "127.0.0.1:0", "127.0.0.1:0"
		cfg.Forward.SpoolMaxEvents = spoolMax
		cfg.Forward.SpoolUnitMaxEvents = unitMax
		return cfg
	}

	// The hole, without the caps: the flood fills the spool, then everyone
	// gets 451.
	t.Run("uncapped", func(t *testing.T) {
		n := newTrapNode(trapConfig(0), testLog())
		startStopped(t, n)
		addr := n.trap.Addr().String()
		if refused, _ := send(addr, flooder, offered); refused != offered-spoolMax {
			t.Fatalf("flood: %d of %d refused, want %d", refused, offered, offered-spoolMax)
		}
		if refused, _ := send(addr, other, 1); refused != 1 {
			t.Fatal("the other source was not refused by a full spool: the flood did not fill it")
		}
	})

	// With the caps, forwarding to a central node that is not up yet.
	port := testenv.FreePort(t)
	cfg := trapConfig(unitMax)
	cfg.Trap.Node = "trap-1"
	cfg.Forward.URL = fmt.Sprintf("http://127.0.0.1:%d", port)
	cfg.Forward.Token = token
	cfg.Forward.BackoffMin, cfg.Forward.BackoffMax = Duration(10*time.Millisecond), Duration(100*time.Millisecond)
	tn := newTrapNode(cfg, testLog())
	startStopped(t, tn)
	addr := tn.trap.Addr().String()
	if refused, err := send(addr, flooder, offered); refused != 0 {
		t.Fatalf("flood with caps: %d of %d refused: %v", refused, offered, err)
	}
	if got := tn.spool.Len(); got != unitMax {
		t.Fatalf("flooding unit: %d events spooled of %d offered, want %d", got, offered, unitMax)
	}
	if refused, err := send(addr, other, 3); refused != 0 {
		t.Fatalf("other source refused after the flood: %v", err)
	}
	if got := tn.spool.Len(); got != unitMax+3 {
		t.Fatalf("backlog %d after the other source's 3, want %d", got, unitMax+3)
	}
	if v, err := metric.Value(tn.reg, "blowback_forward_spool_capped_total", "action", "dropped", "cap", "unit"); err != nil || v != offered-unitMax {
		t.Fatalf("blowback_forward_spool_capped_total{action=dropped} = %v (%v), want %d", v, err, offered-unitMax)
	}
	t.Logf("flooding unit: %d of %d events spooled, %d dropped (250); other source: 3 of 3 spooled", unitMax, offered, offered-unitMax)

	// The central node comes up; the spool drains into it and both units
	// are listed.
	ccfg := testConfig(t.TempDir())
	ccfg.HTTP = fmt.Sprintf("127.0.0.1:%d", port)
	ccfg.NodeTokens = map[string]string{"trap-1": token}
	central := startNodeConfig(t, ccfg)
	t.Cleanup(func() { central.Stop() })
	eventually(t, "the trap's spool drained", func() bool { return tn.spool.Len() == 0 })
	for ip, want := range map[string]int{flooder: unitMax, other: 3} {
		eventually(t, ip+" listed on the central node", func() bool { return check(t, central.dns.Addr().String(), ip).Listed })
		refs, err := central.st.Refs(netip.MustParsePrefix(ip + "/32"))
		if err != nil || len(refs) != want {
			t.Errorf("central store: %d events for %s (%v), want %d", len(refs), ip, err, want)
		}
	}
}
