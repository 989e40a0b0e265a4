package trap

import "github.com/prometheus/client_golang/prometheus"

// metrics of the trap. Labels are bounded; their values are listed at each.
type metrics struct {
	connections   prometheus.Counter
	active        prometheus.Gauge
	limitHits     *prometheus.CounterVec
	sessions      prometheus.Counter
	starttls      prometheus.Counter
	messages      *prometheus.CounterVec
	classified    *prometheus.CounterVec
	mta           *prometheus.CounterVec
	relayDenied   prometheus.Counter
	abandoned     prometheus.Counter
	commitSeconds prometheus.Histogram
	panics        *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		connections: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "blowback_trap_connections_total",
			Help: "TCP connections accepted, before any limit.",
		}),
		active: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "blowback_trap_connections_active",
			Help: "Open trap connections (each holds a MaxConns slot).",
		}),
		// limit: conns, conns_per_ip, conns_per_24, conns_per_48,
		// conn_rate_per_ip, proxy_header, proxy_untrusted, session_time,
		// idle_timeout, data_rate, commands, errors, message_size,
		// line_length, recipients, callouts (listener.go allLimits).
		limitHits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "blowback_trap_limit_hits_total",
			Help: "Connections, sessions or commands refused or closed by a limit, by limit.",
		}, []string{"limit"}),
		sessions: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "blowback_trap_sessions_total",
			Help: "SMTP sessions that reached HELO/EHLO.",
		}),
		starttls: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "blowback_trap_starttls_sessions_total",
			Help: "SMTP sessions that completed STARTTLS and said EHLO again.",
		}),
		// result: accepted, too_big, line_too_long, aborted, error.
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "blowback_trap_messages_total",
			Help: "Messages received after DATA, by result.",
		}, []string{"result"}),
		// kind: other, bounce, autoreply, challenge, mdn, callout, report, spam.
		classified: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "blowback_trap_evidence_total",
			Help: "Evidence recorded by the trap, by kind.",
		}, []string{"kind"}),
		mta: newMTACounter(),
		relayDenied: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "blowback_trap_relay_denied_total",
			Help: "RCPT commands refused because the address is not at a trap domain.",
		}),
		abandoned: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "blowback_trap_abandoned_transactions_total",
			Help: "Transactions with trap recipients that ended without DATA and did not look like a callout.",
		}),
		commitSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "blowback_trap_commit_duration_seconds",
			Help:    "Time from end of DATA to durable commit of the evidence.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2.5, 10),
		}),
		// source: trap (our session and goroutines, answered 451), go-smtp
		// (recovered inside go-smtp, answered 421 and closed),
		// go-smtp-bdat-hangup (go-smtp's known panic when a client hangs up
		// mid-BDAT; not paged for), classify (the classifier recovered a
		// panic: the message is stored as "other" and quarantined).
		panics: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "blowback_trap_panics_total",
			Help: "Panics recovered in SMTP sessions and trap goroutines, by where they were recovered.",
		}, []string{"source"}),
	}
	m.panics.WithLabelValues("trap")
	m.panics.WithLabelValues("go-smtp")
	m.panics.WithLabelValues("go-smtp-bdat-hangup")
	m.panics.WithLabelValues(panicClassify)
	for _, l := range allLimits {
		m.limitHits.WithLabelValues(l)
	}
	if reg != nil {
		reg.MustRegister(m.connections, m.active, m.limitHits, m.sessions, m.starttls, m.messages, m.classified, m.mta,
			m.relayDenied, m.abandoned, m.commitSeconds, m.panics)
	}
	return m
}
