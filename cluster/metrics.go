package cluster

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/blowback-dnsbl/blowback/forward"
	"github.com/blowback-dnsbl/blowback/internal/metric"
)

type registerer = prometheus.Registerer

// senderMetrics are a trap node's (README lists them).
type senderMetrics struct {
	sent, dups, failed, spoolErrors, panics prometheus.Counter
	lastSuccess                             prometheus.Gauge
}

func newSenderMetrics(reg registerer, sp *forward.Spool) *senderMetrics {
	r := metric.New(reg)
	m := &senderMetrics{
		sent:        r.Counter("blowback_cluster_sent_events_total", "Events the stream acknowledged (new to it)."),
		dups:        r.Counter("blowback_cluster_sent_duplicate_events_total", "Events re-sent that the stream already had (dropped by Nats-Msg-Id)."),
		failed:      r.Counter("blowback_cluster_send_failures_total", "Batches that failed to reach the stream (retried)."),
		spoolErrors: r.Counter("blowback_cluster_spool_errors_total", "Events the spool refused (full or error): the trap answered 4xx."),
		panics:      r.Counter("blowback_cluster_sender_panics_total", "Panics recovered in the sender."),
		lastSuccess: r.Gauge("blowback_cluster_last_sent_timestamp_seconds", "When the stream last acknowledged a batch."),
	}
	r.GaugeFunc("blowback_cluster_backlog_events", "Events spooled on this trap, not yet acknowledged by the stream.",
		func() float64 { return float64(sp.Len()) })
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

func newReplicaMetrics(reg registerer, rp *Replica) *replicaMetrics {
	r := metric.New(reg)
	m := &replicaMetrics{
		applied: r.CounterVec("blowback_cluster_applied_events_total", "Evidence events applied from the log, by result (new, duplicate, rejected).",
			[]string{"result"}, "new", "duplicate", "rejected"),
		actions:  r.Counter("blowback_cluster_applied_actions_total", "Manual actions applied from the log."),
		ticks:    r.Counter("blowback_cluster_applied_ticks_total", "Clock ticks applied from the log."),
		failures: r.Counter("blowback_cluster_apply_failures_total", "Failed fetches or applies (retried)."),
		gaps:     r.Counter("blowback_cluster_missing_messages_total", "Stream messages gone before this replica applied them (retention shorter than its absence)."),
		panics:   r.Counter("blowback_cluster_apply_panics_total", "Panics recovered while applying."),
		batch: r.Histogram("blowback_cluster_apply_batch_duration_seconds", "Time to apply one batch (store commit, re-score, publish).",
			prometheus.ExponentialBuckets(0.001, 4, 8)),
	}
	r.GaugeFunc("blowback_cluster_applied_sequence", "Last stream sequence applied to this replica.",
		func() float64 { return float64(rp.Applied()) })
	r.GaugeFunc("blowback_cluster_clock_timestamp_seconds", "The replica's clock: the log's time applied so far.",
		func() float64 { return float64(rp.clock.Load()) })
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
