package trap

import (
	"github.com/blowback-dnsbl/blowback/classify"
	"github.com/prometheus/client_golang/prometheus"
)

// newMTACounter counts backscatter by the software family that wrote it.
// mta: the values of classify.MTAFamilies, "other", "unknown".
func newMTACounter() *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "blowback_trap_backscatter_mta_total",
		Help: "Backscatter messages recorded by the trap, by the software family that wrote them (classify fingerprint).",
	}, []string{"mta"})
	for _, f := range classify.MTAFamilies {
		c.WithLabelValues(f)
	}
	c.WithLabelValues("other")
	c.WithLabelValues("unknown")
	return c
}

// countMTA counts a classified message under its MTA family, if it is
// backscatter.
func (m *metrics) countMTA(res Result) {
	if res.Kind.Backscatter() {
		m.mta.WithLabelValues(classify.MTALabel(res.MTA)).Inc()
	}
}
