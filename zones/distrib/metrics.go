package distrib

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/blowback-dnsbl/blowback/internal/metric"
)

// metrics; the format label is rbldnsd, bind, plain or baseline (the
// guard's baseline file).
type metrics struct {
	held        prometheus.Gauge
	heldTotal   prometheus.Counter
	lastSuccess prometheus.Gauge
	serial      prometheus.Gauge
	bytes       *prometheus.GaugeVec
	errors      *prometheus.CounterVec
	duration    *prometheus.HistogramVec
	panics      prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	r := metric.New(reg)
	return &metrics{
		held: r.Gauge("blowback_export_held_back",
			"1 while the sanity guard holds back a new zone from the exports and secondaries, else 0."),
		heldTotal: r.Counter("blowback_export_held_back_total", "Zone versions the sanity guard held back."),
		lastSuccess: r.Gauge("blowback_export_last_success_timestamp_seconds",
			"Unix time of the last zone version published to the mirrors (files written, journal updated)."),
		serial: r.Gauge("blowback_export_serial", "SOA serial of the last zone version published to the mirrors."),
		bytes:  r.GaugeVec("blowback_export_size_bytes", "Size of the last export file written, by format.", []string{"format"}),
		errors: r.CounterVec("blowback_export_errors_total",
			"Export files that could not be written, by format (rbldnsd, bind, plain, baseline).", []string{"format"}),
		duration: r.HistogramVec("blowback_export_duration_seconds",
			"Time to write an export file (and sign it, with export.sign_key), by format.",
			prometheus.ExponentialBuckets(0.001, 4, 9), []string{"format"}),
		panics: r.Counter("blowback_export_panics_total", "Panics recovered while exporting."),
	}
}
