package trap

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/blowback-dnsbl/blowback/classify"
	"github.com/blowback-dnsbl/blowback/internal/metric"
)

// newMTACounter counts backscatter by the software family that wrote it.
// mta: the values of classify.MTAFamilies, "other", "unknown".
func newMTACounter(r metric.Registry) *prometheus.CounterVec {
	return r.CounterVec("blowback_trap_backscatter_mta_total",
		"Backscatter messages recorded by the trap, by the software family that wrote them (classify fingerprint).",
		[]string{"mta"}, append(append([]string(nil), classify.MTAFamilies...), "other", "unknown")...)
}

// countMTA counts a classified message under its MTA family, if it is
// backscatter.
func (m *metrics) countMTA(res classify.Result) {
	if res.Kind.Backscatter() {
		m.mta.WithLabelValues(classify.MTALabel(res.MTA)).Inc()
	}
}
