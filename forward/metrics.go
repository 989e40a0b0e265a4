package forward

import "github.com/prometheus/client_golang/prometheus"

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
	m := &metrics{
		spooled: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "blowback_forward_spooled_events_total",
			Help: "Events committed to the local spool.",
		}),
		// reason: full (the trap answered 451), error.
		spoolErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "blowback_forward_spool_errors_total",
			Help: "Events the spool could not take, by reason.",
		}, []string{"reason"}),
		sent: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "blowback_forward_sent_events_total",
			Help: "Events the central node acknowledged (and removed from the spool).",
		}),
		batches: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "blowback_forward_sent_batches_total",
			Help: "Batches the central node acknowledged.",
		}),
		// reason: network, unauthorized, throttled, server_error, bad_response, spool, error.
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "blowback_forward_failed_batches_total",
			Help: "Delivery attempts that failed and will be retried, by reason.",
		}, []string{"reason"}),
		deadLettered: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "blowback_forward_dead_lettered_events_total",
			Help: "Events the central node rejected as invalid, moved to the dead-letter queue.",
		}),
		// outcome: ok, error.
		requestSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "blowback_forward_request_duration_seconds",
			Help:    "Duration of POST /api/v1/evidence requests to the central node.",
			Buckets: prometheus.ExponentialBuckets(0.001, 3, 11),
		}, []string{"outcome"}),
		lastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "blowback_forward_last_success_timestamp_seconds",
			Help: "Unix time of the last batch the central node acknowledged.",
		}),
		panics: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "blowback_forward_panics_total",
			Help: "Panics recovered in the forwarder.",
		}),
	}
	backlog := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "blowback_forward_backlog_events",
		Help: "Events spooled and not yet acknowledged by the central node.",
	}, func() float64 { return float64(sp.Len()) })
	dead := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "blowback_forward_dead_letter_events",
		Help: "Events held in the dead-letter queue.",
	}, func() float64 { return float64(sp.Dead()) })
	oldest := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "blowback_forward_oldest_event_age_seconds",
		Help: "Age of the oldest event waiting to be forwarded (0 when none waits).",
	}, func() float64 { return sp.OldestAge().Seconds() })
	for _, l := range []string{"full", "error"} {
		m.spoolErrors.WithLabelValues(l)
	}
	for _, l := range []string{"network", "unauthorized", "throttled", "server_error", "bad_response", "spool", "error"} {
		m.failed.WithLabelValues(l)
	}
	if reg != nil {
		reg.MustRegister(m.spooled, m.spoolErrors, m.sent, m.batches, m.failed, m.deadLettered, m.requestSeconds,
			m.lastSuccess, m.panics, backlog, dead, oldest)
	}
	return m
}
