package selftest

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/blowback-dnsbl/blowback/internal/metric"
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
	r := metric.New(reg)
	var kinds []string
	for _, k := range store.Kinds() {
		kinds = append(kinds, k.String())
	}
	return &metrics{
		// result: started, rejected (bad input), rate_limited, busy, disabled.
		requests: r.CounterVec("blowback_selftest_requests_total", "Self-test requests, by result.",
			[]string{"result"}, "started", "rejected", "rate_limited", "busy", "disabled"),
		// verdict: pass, fail, inconclusive, error.
		tests: r.CounterVec("blowback_selftest_tests_total", "Finished self-tests, by verdict.",
			[]string{"verdict"}, Pass, Fail, Inconclusive, Error),
		// result: rejected_rcpt, rejected_data, accepted, temp_failure, unreachable.
		probes: r.CounterVec("blowback_selftest_probes_total", "Self-test probes sent, by what the server did with them.",
			[]string{"result"}, ProbeRejectedRcpt, ProbeRejectedData, ProbeAccepted, ProbeTempFailure, ProbeUnreachable),
		// kind: the evidence kinds (other, bounce, autoreply, challenge, mdn, callout, report, spam).
		replies: r.CounterVec("blowback_selftest_replies_total",
			"Mail and callouts that came back to self-test sender addresses, by kind (not counted as evidence).",
			[]string{"kind"}, kinds...),
		running: r.Gauge("blowback_selftest_running", "Self-tests running now."),
		delists: r.Counter("blowback_selftest_delists_total", "Listings removed by a passed self-test."),
		panics:  r.Counter("blowback_selftest_panics_total", "Panics recovered in self-tests."),
	}
}
