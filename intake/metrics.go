package intake

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/blowback-dnsbl/blowback/internal/metric"
)

// The intake's metrics keep the names they had when the web server owned
// the evidence endpoint (blowback_http_evidence_*): dashboards and alerts
// name them.
type metrics struct {
	events   *prometheus.CounterVec
	batches  *prometheus.CounterVec
	lastSeen *prometheus.GaugeVec
	delay    prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer, revoked func() float64) *metrics {
	r := metric.New(reg)
	r.GaugeFunc("blowback_http_evidence_revoked_tokens", "Node tokens revoked through the admin API.", revoked)
	return &metrics{
		// node: the ids of configured trap nodes (bounded by configuration), and "admin".
		// result: accepted, rejected.
		events: r.CounterVec("blowback_http_evidence_events_total",
			"Events posted by trap nodes, by node and result (accepted includes duplicates).", []string{"node", "result"}),
		// result: ok, unauthorized, forbidden, busy, bad_request, error.
		batches: r.CounterVec("blowback_http_evidence_batches_total", "POST /api/v1/evidence requests, by result.",
			[]string{"result"}, "ok", "unauthorized", "forbidden", "busy", "bad_request", "error"),
		// node: as for blowback_http_evidence_events_total.
		lastSeen: r.GaugeVec("blowback_http_evidence_last_batch_timestamp_seconds",
			"Unix time of the last batch accepted from each trap node.", []string{"node"}),
		delay: r.Histogram("blowback_http_evidence_delay_seconds",
			"Time from a trap seeing an event to the central node committing it.", prometheus.ExponentialBuckets(0.01, 4, 10)),
	}
}

func (m *metrics) batch(result string) { m.batches.WithLabelValues(result).Inc() }
