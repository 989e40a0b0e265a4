package distrib

import "github.com/prometheus/client_golang/prometheus"

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
	m := &metrics{
		held: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "blowback_export_held_back",
			Help: "1 while the sanity guard holds back a new zone from the exports and secondaries, else 0.",
		}),
		heldTotal: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "blowback_export_held_back_total",
			Help: "Zone versions the sanity guard held back.",
		}),
		lastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "blowback_export_last_success_timestamp_seconds",
			Help: "Unix time of the last zone version published to the mirrors (files written, journal updated).",
		}),
		serial: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "blowback_export_serial",
			Help: "SOA serial of the last zone version published to the mirrors.",
		}),
		bytes: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "blowback_export_size_bytes",
			Help: "Size of the last export file written, by format.",
		}, []string{"format"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "blowback_export_errors_total",
			Help: "Export files that could not be written, by format (rbldnsd, bind, plain, baseline).",
		}, []string{"format"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "blowback_export_duration_seconds",
			Help:    "Time to write an export file (and sign it, with export.sign_key), by format.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 9),
		}, []string{"format"}),
		panics: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "blowback_export_panics_total",
			Help: "Panics recovered while exporting.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.held, m.heldTotal, m.lastSuccess, m.serial, m.bytes, m.errors, m.duration, m.panics)
	}
	return m
}
