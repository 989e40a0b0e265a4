package testenv

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/blowback-dnsbl/blowback/internal/metric"
)

// MetricValue is the counter or gauge name in g with the given label
// pairs; a missing one fails the test.
func MetricValue(t testing.TB, g prometheus.Gatherer, name string, labelPairs ...string) float64 {
	t.Helper()
	v, err := metric.Value(g, name, labelPairs...)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
