package store

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/blowback-dnsbl/blowback/internal/metric"
)

// RegisterMetrics registers the store's counters with reg: what the
// per-unit and per-network caps (unitcap.go) summarised or stored without
// a raw message, by the cap that decided.
func (s *Store) RegisterMetrics(reg prometheus.Registerer) {
	if reg == nil {
		return
	}
	r := metric.New(reg)
	// cap: unit (the unit's caps, UnitMax*), network (its network's, NetMax*).
	for _, by := range []CapBy{CapUnit, CapNet} {
		labels := prometheus.Labels{"cap": by.String()}
		r.Register(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "blowback_store_summarised_events_total",
			Help:        "Evidence events past a unit's or its network's per-window cap, counted in their summaries instead of stored, by cap.",
			ConstLabels: labels},
			func() float64 { n, _ := s.CapStatsBy(by); return float64(n) }))
		r.Register(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "blowback_store_raw_dropped_total",
			Help:        "Evidence events stored without their raw message because of a unit's or its network's per-window caps, by cap.",
			ConstLabels: labels},
			func() float64 { _, n := s.CapStatsBy(by); return float64(n) }))
	}
}
