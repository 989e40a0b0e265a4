package intake

import "github.com/prometheus/client_golang/prometheus"

// The intake's metrics keep the names they had when the web server owned
// the evidence endpoint (blowback_http_evidence_*): dashboards and alerts
// name them.
type metrics struct {
	events   *prometheus.CounterVec
	batches  *prometheus.CounterVec
	lastSeen *prometheus.GaugeVec
	delay    prometheus.Histogram
	revoked  prometheus.GaugeFunc
}

func newMetrics(reg prometheus.Registerer, revoked func() float64) *metrics {
	m := &metrics{
		// node: the ids of configured trap nodes (bounded by configuration), and "admin".
		// result: accepted, rejected.
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "blowback_http_evidence_events_total",
			Help: "Events posted by trap nodes, by node and result (accepted includes duplicates).",
		}, []string{"node", "result"}),
		// result: ok, unauthorized, forbidden, busy, bad_request, error.
		batches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "blowback_http_evidence_batches_total",
			Help: "POST /api/v1/evidence requests, by result.",
		}, []string{"result"}),
		// node: as for blowback_http_evidence_events_total.
		lastSeen: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "blowback_http_evidence_last_batch_timestamp_seconds",
			Help: "Unix time of the last batch accepted from each trap node.",
		}, []string{"node"}),
		delay: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "blowback_http_evidence_delay_seconds",
			Help:    "Time from a trap seeing an event to the central node committing it.",
			Buckets: prometheus.ExponentialBuckets(0.01, 4, 10),
		}),
		revoked: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "blowback_http_evidence_revoked_tokens",
			Help: "Node tokens revoked through the admin API.",
		}, revoked),
	}
	for _, r := range []string{"ok", "unauthorized", "forbidden", "busy", "bad_request", "error"} {
		m.batches.WithLabelValues(r)
	}
	if reg != nil {
		reg.MustRegister(m.events, m.batches, m.lastSeen, m.delay, m.revoked)
	}
	return m
}

func (m *metrics) batch(result string) { m.batches.WithLabelValues(result).Inc() }
