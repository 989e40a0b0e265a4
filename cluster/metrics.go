package cluster

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/blowback-dnsbl/blowback/forward"
)

type registerer = prometheus.Registerer

// senderMetrics are a trap node's (README lists them).
type senderMetrics struct {
	sent, dups, failed, spoolErrors, panics prometheus.Counter
	lastSuccess                             prometheus.Gauge
}

func newSenderMetrics(reg registerer, sp *forward.Spool) *senderMetrics {
	m := &senderMetrics{
		sent: prometheus.NewCounter(prometheus.CounterOpts{Name: "blowback_cluster_sent_events_total",
			Help: "Events the stream acknowledged (new to it)."}),
		dups: prometheus.NewCounter(prometheus.CounterOpts{Name: "blowback_cluster_sent_duplicate_events_total",
			Help: "Events re-sent that the stream already had (dropped by Nats-Msg-Id)."}),
		failed: prometheus.NewCounter(prometheus.CounterOpts{Name: "blowback_cluster_send_failures_total",
			Help: "Batches that failed to reach the stream (retried)."}),
		spoolErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "blowback_cluster_spool_errors_total",
			Help: "Events the spool refused (full or error): the trap answered 4xx."}),
		panics: prometheus.NewCounter(prometheus.CounterOpts{Name: "blowback_cluster_sender_panics_total",
			Help: "Panics recovered in the sender."}),
		lastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{Name: "blowback_cluster_last_sent_timestamp_seconds",
			Help: "When the stream last acknowledged a batch."}),
	}
	if reg != nil {
		reg.MustRegister(m.sent, m.dups, m.failed, m.spoolErrors, m.panics, m.lastSuccess,
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "blowback_cluster_backlog_events",
				Help: "Events spooled on this trap, not yet acknowledged by the stream."},
				func() float64 { return float64(sp.Len()) }))
	}
	return m
}

// replicaMetrics are a central replica's (README lists them).
type replicaMetrics struct {
	applied  *prometheus.CounterVec // result: new, duplicate, rejected
	actions  prometheus.Counter
	ticks    prometheus.Counter
	failures prometheus.Counter
	gaps     prometheus.Counter
	panics   prometheus.Counter
	batch    prometheus.Histogram
}

func newReplicaMetrics(reg registerer, r *Replica) *replicaMetrics {
	m := &replicaMetrics{
		applied: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "blowback_cluster_applied_events_total",
			Help: "Evidence events applied from the log, by result (new, duplicate, rejected)."}, []string{"result"}),
		actions: prometheus.NewCounter(prometheus.CounterOpts{Name: "blowback_cluster_applied_actions_total",
			Help: "Manual actions applied from the log."}),
		ticks: prometheus.NewCounter(prometheus.CounterOpts{Name: "blowback_cluster_applied_ticks_total",
			Help: "Clock ticks applied from the log."}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{Name: "blowback_cluster_apply_failures_total",
			Help: "Failed fetches or applies (retried)."}),
		gaps: prometheus.NewCounter(prometheus.CounterOpts{Name: "blowback_cluster_missing_messages_total",
			Help: "Stream messages gone before this replica applied them (retention shorter than its absence)."}),
		panics: prometheus.NewCounter(prometheus.CounterOpts{Name: "blowback_cluster_apply_panics_total",
			Help: "Panics recovered while applying."}),
		batch: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "blowback_cluster_apply_batch_duration_seconds",
			Help: "Time to apply one batch (store commit, re-score, publish).", Buckets: prometheus.ExponentialBuckets(0.001, 4, 8)}),
	}
	for _, l := range []string{"new", "duplicate", "rejected"} {
		m.applied.WithLabelValues(l)
	}
	if reg != nil {
		reg.MustRegister(m.applied, m.actions, m.ticks, m.failures, m.gaps, m.panics, m.batch,
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "blowback_cluster_applied_sequence",
				Help: "Last stream sequence applied to this replica."}, func() float64 { return float64(r.Applied()) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "blowback_cluster_clock_timestamp_seconds",
				Help: "The replica's clock: the log's time applied so far."}, func() float64 { return float64(r.clock.Load()) }))
	}
	return m
}

func (m *replicaMetrics) observe(inserted, dups, actions, ticks, rejected int, took time.Duration) {
	m.applied.WithLabelValues("new").Add(float64(inserted))
	m.applied.WithLabelValues("duplicate").Add(float64(dups))
	m.applied.WithLabelValues("rejected").Add(float64(rejected))
	m.actions.Add(float64(actions))
	m.ticks.Add(float64(ticks))
	m.batch.Observe(took.Seconds())
}
