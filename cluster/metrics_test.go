package cluster

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"

	"github.com/blowback-dnsbl/blowback/forward"
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
	problems, err := promlint.NewWithMetricFamilies(mfs).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
}
