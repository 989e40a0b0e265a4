package listing

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/blowback-dnsbl/blowback/zones"
)

type metrics struct {
	events         *prometheus.CounterVec
	duplicates     prometheus.Counter
	refused        prometheus.Counter
	entries        prometheus.Gauge
	serial         prometheus.Gauge
	publishedAt    prometheus.Gauge
	publishSeconds prometheus.Histogram
	panics         prometheus.Counter
	rebuildSeconds prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		// kind: other, bounce, autoreply, challenge, mdn, callout, report, spam.
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "blowback_listing_events_total",
			Help: "Evidence events committed to the store, by kind.",
		}, []string{"kind"}),
		duplicates: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "blowback_listing_duplicate_events_total",
			Help: "Evidence events received again with an id already stored (ignored).",
		}),
		refused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "blowback_listing_refused_events_total",
			Help: "Evidence events refused at intake because their address can never be listed (scoring.Listable).",
		}),
		entries: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "blowback_zone_entries",
			Help: "Entries in the published zone snapshot.",
		}),
		serial: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "blowback_zone_serial",
			Help: "SOA serial of the published zone snapshot.",
		}),
		publishedAt: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "blowback_zone_published_timestamp_seconds",
			Help: "Unix time the current zone snapshot was published.",
		}),
		publishSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "blowback_zone_publish_duration_seconds",
			Help:    "Time to build and swap in a new zone snapshot.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 9),
		}),
		panics: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "blowback_listing_panics_total",
			Help: "Panics recovered in the publisher and sweeper.",
		}),
		rebuildSeconds: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "blowback_listing_rebuild_duration_seconds",
			Help: "Time the last full rebuild of the listing from the store took.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.events, m.duplicates, m.refused, m.entries, m.serial, m.publishedAt, m.publishSeconds, m.panics, m.rebuildSeconds)
	}
	return m
}

func (m *metrics) published(s *zones.Snapshot) {
	m.entries.Set(float64(s.Len()))
	m.serial.Set(float64(s.Serial))
	m.publishedAt.Set(float64(s.Built.Unix()))
}
