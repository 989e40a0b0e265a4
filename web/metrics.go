package web

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	requests     *prometheus.CounterVec
	duration     *prometheus.HistogramVec
	delists      *prometheus.CounterVec
	authFailures prometheus.Counter
	panics       prometheus.Counter
	connsRefused *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		// handler: api_lookup, api_explain, api_status, api_delist, api_evidence, api_admin,
		// page_index, page_lookup, page_delist, page_status, static, metrics, health, unmatched,
		// and the operator pages: page_zone, api_zone, api_history, page_selftest, api_selftest.
		// code: the HTTP status code (the few the server sends: 200, 303, 400, 401, 403, 404, 405, 413, 429, 500, 503).
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "blowback_http_requests_total",
			Help: "HTTP requests served, by handler and status code.",
		}, []string{"handler", "code"}),
		// handler: as for blowback_http_requests_total.
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "blowback_http_request_duration_seconds",
			Help:    "Time to serve an HTTP request, by handler.",
			Buckets: []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5},
		}, []string{"handler"}),
		// result: ok, rejected (bad input or a failed form check), not_listed (a test point,
		// never-listed, allowlisted or unlisted address: nothing charged or recorded), rate_limited, error.
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
		// reason: per_client (the client's /24 or /64 holds its cap, none idle), total (the overall cap, none idle).
		connsRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "blowback_http_connections_refused_total",
			Help: "HTTP connections refused at a connection cap, by reason.",
		}, []string{"reason"}),
	}
	for _, r := range []string{"per_client", "total"} {
		m.connsRefused.WithLabelValues(r)
	}
	for _, r := range []string{"ok", "rejected", "not_listed", "rate_limited", "error"} {
		m.delists.WithLabelValues(r)
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.duration, m.delists, m.authFailures, m.panics, m.connsRefused)
	}
	return m
}

func (m *metrics) observe(handler string, code int, d time.Duration) {
	m.requests.WithLabelValues(handler, strconv.Itoa(code)).Inc()
	m.duration.WithLabelValues(handler).Observe(d.Seconds())
}

// registerConns registers the open-connection gauges of l.
func (m *metrics) registerConns(reg prometheus.Registerer, l *connLimiter) {
	if reg == nil {
		return
	}
	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "blowback_http_connections",
			Help: "Open HTTP connections.",
		}, func() float64 { n, _ := l.open(); return float64(n) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "blowback_http_client_connections_max",
			Help: "Open HTTP connections of the client (IPv4 /24, IPv6 /64) holding the most.",
		}, func() float64 { _, n := l.open(); return float64(n) }),
	)
}
