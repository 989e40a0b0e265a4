package trap

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	sessions      prometheus.Counter
	messages      *prometheus.CounterVec
	classified    *prometheus.CounterVec
	relayDenied   prometheus.Counter
	commitSeconds prometheus.Histogram
	panics        prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		sessions: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "blowback_trap_sessions_total",
			Help: "SMTP sessions that reached HELO/EHLO.",
		}),
		// result: accepted, too_big, error.
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "blowback_trap_messages_total",
			Help: "Messages received after DATA, by result.",
		}, []string{"result"}),
		// kind: other, bounce, autoreply, challenge, mdn, callout, report, spam.
		classified: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "blowback_trap_evidence_total",
			Help: "Evidence recorded by the trap, by kind.",
		}, []string{"kind"}),
		relayDenied: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "blowback_trap_relay_denied_total",
			Help: "RCPT commands refused because the address is not at a trap domain.",
		}),
		commitSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "blowback_trap_commit_duration_seconds",
			Help:    "Time from end of DATA to durable commit of the evidence.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2.5, 10),
		}),
		panics: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "blowback_trap_panics_total",
			Help: "Panics recovered in SMTP sessions (each answered 451).",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.sessions, m.messages, m.classified, m.relayDenied, m.commitSeconds, m.panics)
	}
	return m
}
