package trap

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/blowback-dnsbl/blowback/classify"
	"github.com/blowback-dnsbl/blowback/store"
)

// TestMTAMetric: backscatter is counted under its family (a family outside
// the list as "other", none as "unknown"); other kinds are not counted.
func TestMTAMetric(t *testing.T) {
	m := newMetrics(nil)
	for _, r := range []classify.Result{
		{Kind: store.KindBounce, MTA: "postfix"},
		{Kind: store.KindBounce, MTA: "postfix"},
		{Kind: store.KindAutoreply, MTA: "sieve"},
		{Kind: store.KindBounce, MTA: "made-up"},
		{Kind: store.KindChallenge},
		{Kind: store.KindSpam, MTA: "exim"},
		{Kind: store.KindReport},
	} {
		m.countMTA(r)
	}
	for label, want := range map[string]float64{"postfix": 2, "sieve": 1, "other": 1, "unknown": 1, "exim": 0} {
		if got := value(m.mta.WithLabelValues(label)); got != want {
			t.Errorf("mta=%s: %v, want %v", label, got, want)
		}
	}
	ch := make(chan prometheus.Metric, 200)
	m.mta.Collect(ch)
	close(ch)
	if n := len(ch); n != len(classify.MTAFamilies)+2 {
		t.Errorf("%d label values, want the %d families plus other and unknown", n, len(classify.MTAFamilies))
	}
}

// TestEventCarriesMTA: a real Exim bounce delivered to the trap is stored
// with its MTA family and counted under it.
func TestEventCarriesMTA(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "classify", "testdata", "exim-real-bounce.eml"))
	if err != nil {
		t.Fatal(err)
	}
	body := strings.ReplaceAll(strings.ReplaceAll(string(raw), "\r\n", "\n"), "\n", "\r\n")
	sink := &FakeSink{}
	s := startTrap(t, Config{}, sink)
	cl := dial(t, s)
	cl.want("EHLO mx1.sender.blowback.test", "250")
	if got := cl.message("", "trap-forged@trap.blowback.test", body); !strings.HasPrefix(got, "250") {
		t.Fatalf("after DATA: %q", got)
	}
	evs := waitEvents(t, sink, 1)
	if evs[0].Kind != store.KindBounce || evs[0].MTA != "exim" {
		t.Fatalf("event kind %s mta %q, want bounce exim", evs[0].Kind, evs[0].MTA)
	}
	if got := value(s.metrics.mta.WithLabelValues("exim")); got != 1 {
		t.Errorf("blowback_trap_backscatter_mta_total{mta=exim} = %v, want 1", got)
	}
}
