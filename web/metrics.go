package web

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/blowback-dnsbl/blowback/internal/metric"
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
	r := metric.New(reg)
	return &metrics{
		// handler: api_lookup, api_explain, api_status, api_delist, api_evidence, api_admin,
		// page_index, page_lookup, page_delist, page_status, static, metrics, health, unmatched,
		// and the operator pages: page_zone, api_zone, api_history, page_selftest, api_selftest.
		// code: the HTTP status code (the few the server sends: 200, 303, 400, 401, 403, 404, 405, 413, 429, 500, 503).
		requests: r.CounterVec("blowback_http_requests_total", "HTTP requests served, by handler and status code.",
			[]string{"handler", "code"}),
		// handler: as for blowback_http_requests_total.
		duration: r.HistogramVec("blowback_http_request_duration_seconds", "Time to serve an HTTP request, by handler.",
			[]float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5}, []string{"handler"}),
		// result: ok, rejected (bad input or a failed form check), not_listed (a test point,
		// never-listed, allowlisted or unlisted address: nothing charged or recorded), rate_limited, error.
		delists: r.CounterVec("blowback_http_public_delists_total", "Public self-service delist requests, by result.",
			[]string{"result"}, "ok", "rejected", "not_listed", "rate_limited", "error"),
		authFailures: r.Counter("blowback_http_auth_failures_total", "Requests to authenticated endpoints without a valid token."),
		panics:       r.Counter("blowback_http_panics_total", "Panics recovered while serving HTTP requests."),
		// reason: per_client (the client's /24 or /64 holds its cap, none idle), total (the overall cap, none idle).
		connsRefused: r.CounterVec("blowback_http_connections_refused_total", "HTTP connections refused at a connection cap, by reason.",
			[]string{"reason"}, "per_client", "total"),
	}
}

func (m *metrics) observe(handler string, code int, d time.Duration) {
	m.requests.WithLabelValues(handler, strconv.Itoa(code)).Inc()
	m.duration.WithLabelValues(handler).Observe(d.Seconds())
}

// registerConns registers the open-connection gauges of l.
func (m *metrics) registerConns(reg prometheus.Registerer, l *connLimiter) {
	r := metric.New(reg)
	r.GaugeFunc("blowback_http_connections", "Open HTTP connections.",
		func() float64 { n, _ := l.open(); return float64(n) })
	r.GaugeFunc("blowback_http_client_connections_max", "Open HTTP connections of the client (IPv4 /24, IPv6 /64) holding the most.",
		func() float64 { _, n := l.open(); return float64(n) })
}
