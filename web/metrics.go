package web

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	delists      *prometheus.CounterVec
	authFailures prometheus.Counter
	panics       prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		// result: ok, rate_limited, error.
		delists: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "blowback_http_public_delists_total",
			Help: "Public self-service delist requests, by result.",
		}, []string{"result"}),
		authFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "blowback_http_auth_failures_total",
			Help: "Requests to authenticated endpoints without a valid token.",
		}),
		panics: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "blowback_http_panics_total",
			Help: "Panics recovered while serving HTTP requests.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.delists, m.authFailures, m.panics)
	}
	return m
}
