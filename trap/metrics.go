package trap

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/blowback-dnsbl/blowback/internal/metric"
)

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
	r := metric.New(reg)
	return &metrics{
		connections: r.Counter("blowback_trap_connections_total", "TCP connections accepted, before any limit."),
		active:      r.Gauge("blowback_trap_connections_active", "Open trap connections (each holds a MaxConns slot)."),
		// limit: conns, conns_per_ip, conns_per_24, conns_per_48,
		// conn_rate_per_ip, proxy_header, proxy_untrusted, session_time,
		// idle_timeout, data_rate, commands, errors, message_size,
		// line_length, recipients, callouts (listener.go allLimits).
		limitHits: r.CounterVec("blowback_trap_limit_hits_total",
			"Connections, sessions or commands refused or closed by a limit, by limit.", []string{"limit"}, allLimits...),
		sessions: r.Counter("blowback_trap_sessions_total", "SMTP sessions that reached HELO/EHLO."),
		starttls: r.Counter("blowback_trap_starttls_sessions_total", "SMTP sessions that completed STARTTLS and said EHLO again."),
		// result: accepted, too_big, line_too_long, aborted, error.
		messages: r.CounterVec("blowback_trap_messages_total", "Messages received after DATA, by result.", []string{"result"}),
		// kind: other, bounce, autoreply, challenge, mdn, callout, report, spam.
		classified: r.CounterVec("blowback_trap_evidence_total", "Evidence recorded by the trap, by kind.", []string{"kind"}),
		mta:        newMTACounter(r),
		relayDenied: r.Counter("blowback_trap_relay_denied_total",
			"RCPT commands refused because the address is not at a trap domain."),
		abandoned: r.Counter("blowback_trap_abandoned_transactions_total",
			"Transactions with trap recipients that ended without DATA and did not look like a callout."),
		commitSeconds: r.Histogram("blowback_trap_commit_duration_seconds",
			"Time from end of DATA to durable commit of the evidence.", prometheus.ExponentialBuckets(0.0005, 2.5, 10)),
		// source: trap (our session and goroutines, answered 451), go-smtp
		// (recovered inside go-smtp, answered 421 and closed),
		// go-smtp-bdat-hangup (go-smtp's known panic when a client hangs up
		// mid-BDAT; not paged for), classify (the classifier recovered a
		// panic: the message is stored as "other" and quarantined).
		panics: r.CounterVec("blowback_trap_panics_total",
			"Panics recovered in SMTP sessions and trap goroutines, by where they were recovered.",
			[]string{"source"}, "trap", "go-smtp", "go-smtp-bdat-hangup", panicClassify),
	}
}
