package cluster

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/blowback-dnsbl/blowback/forward"
	"github.com/blowback-dnsbl/blowback/internal/testenv"
)

// TestMetricsLint runs promlint over the sender's and the replica's metrics.
func TestMetricsLint(t *testing.T) {
	reg := prometheus.NewRegistry()
	sp, err := forward.OpenSpool("", forward.SpoolOptions{InMemory: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	newSenderMetrics(reg, sp)
	newReplicaMetrics(reg, &Replica{})
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if len(mfs) < 16 {
		t.Errorf("%d metric families gathered, want 16", len(mfs))
	}
	testenv.PromlintGathered(t, reg, "")
}
