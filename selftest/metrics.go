package selftest

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/blowback-dnsbl/blowback/store"
)

type metrics struct {
	requests *prometheus.CounterVec
	tests    *prometheus.CounterVec
	probes   *prometheus.CounterVec
	replies  *prometheus.CounterVec
	running  prometheus.Gauge
	delists  prometheus.Counter
	panics   prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		// result: started, rejected (bad input), rate_limited, busy, disabled.
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "blowback_selftest_requests_total",
			Help: "Self-test requests, by result.",
		}, []string{"result"}),
		// verdict: pass, fail, inconclusive, error.
		tests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "blowback_selftest_tests_total",
			Help: "Finished self-tests, by verdict.",
		}, []string{"verdict"}),
		// result: rejected_rcpt, rejected_data, accepted, temp_failure, unreachable.
		probes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "blowback_selftest_probes_total",
			Help: "Self-test probes sent, by what the server did with them.",
		}, []string{"result"}),
		// kind: the evidence kinds (other, bounce, autoreply, challenge, mdn, callout, report, spam).
		replies: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "blowback_selftest_replies_total",
			Help: "Mail and callouts that came back to self-test sender addresses, by kind (not counted as evidence).",
		}, []string{"kind"}),
		running: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "blowback_selftest_running",
			Help: "Self-tests running now.",
		}),
		delists: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "blowback_selftest_delists_total",
			Help: "Listings removed by a passed self-test.",
		}),
		panics: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "blowback_selftest_panics_total",
			Help: "Panics recovered in self-tests.",
		}),
	}
	for _, r := range []string{"started", "rejected", "rate_limited", "busy", "disabled"} {
		m.requests.WithLabelValues(r)
	}
	for _, v := range []string{Pass, Fail, Inconclusive, Error} {
		m.tests.WithLabelValues(v)
	}
	for _, r := range []string{ProbeRejectedRcpt, ProbeRejectedData, ProbeAccepted, ProbeTempFailure, ProbeUnreachable} {
		m.probes.WithLabelValues(r)
	}
	for _, k := range store.Kinds() {
		m.replies.WithLabelValues(k.String())
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.tests, m.probes, m.replies, m.running, m.delists, m.panics)
	}
	return m
}
