package store

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/blowback-dnsbl/blowback/internal/metric"
)

// RegisterMetrics registers the store's counters with reg: what the
// per-unit caps (unitcap.go) summarised or stored without a raw message.
func (s *Store) RegisterMetrics(reg prometheus.Registerer) {
	if reg == nil {
		return
	}
	r := metric.New(reg)
	r.CounterFunc("blowback_store_summarised_events_total",
		"Evidence events past a unit's per-window cap, counted in its summary instead of stored.",
		func() float64 { n, _ := s.CapStats(); return float64(n) })
	r.CounterFunc("blowback_store_raw_dropped_total",
		"Evidence events stored without their raw message because of a unit's per-window caps.",
		func() float64 { _, n := s.CapStats(); return float64(n) })
}
