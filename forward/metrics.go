package forward

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/blowback-dnsbl/blowback/internal/metric"
)

type metrics struct {
	spooled        prometheus.Counter
	spoolErrors    *prometheus.CounterVec
	sent           prometheus.Counter
	batches        prometheus.Counter
	failed         *prometheus.CounterVec
	deadLettered   prometheus.Counter
	requestSeconds *prometheus.HistogramVec
	lastSuccess    prometheus.Gauge
	panics         prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, sp *Spool) *metrics {
	r := metric.New(reg)
	r.GaugeFunc("blowback_forward_backlog_events", "Events spooled and not yet acknowledged by the central node.",
		func() float64 { return float64(sp.Len()) })
	r.GaugeFunc("blowback_forward_dead_letter_events", "Events held in the dead-letter queue.",
		func() float64 { return float64(sp.Dead()) })
	r.GaugeFunc("blowback_forward_oldest_event_age_seconds", "Age of the oldest event waiting to be forwarded (0 when none waits).",
		func() float64 { return sp.OldestAge().Seconds() })
	return &metrics{
		spooled: r.Counter("blowback_forward_spooled_events_total", "Events committed to the local spool."),
		// reason: full (the trap answered 451), error.
		spoolErrors: r.CounterVec("blowback_forward_spool_errors_total", "Events the spool could not take, by reason.",
			[]string{"reason"}, "full", "error"),
		sent:    r.Counter("blowback_forward_sent_events_total", "Events the central node acknowledged (and removed from the spool)."),
		batches: r.Counter("blowback_forward_sent_batches_total", "Batches the central node acknowledged."),
		failed: r.CounterVec("blowback_forward_failed_batches_total", "Delivery attempts that failed and will be retried, by reason.",
			[]string{"reason"}, "network", "unauthorized", "throttled", "server_error", "bad_response", "spool", "error"),
		deadLettered: r.Counter("blowback_forward_dead_lettered_events_total",
			"Events the central node rejected as invalid, moved to the dead-letter queue."),
		// outcome: ok, error.
		requestSeconds: r.HistogramVec("blowback_forward_request_duration_seconds",
			"Duration of POST /api/v1/evidence requests to the central node.", prometheus.ExponentialBuckets(0.001, 3, 11),
			[]string{"outcome"}),
		lastSuccess: r.Gauge("blowback_forward_last_success_timestamp_seconds", "Unix time of the last batch the central node acknowledged."),
		panics:      r.Counter("blowback_forward_panics_total", "Panics recovered in the forwarder."),
	}
}
