package listing

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/blowback-dnsbl/blowback/internal/metric"
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
	r := metric.New(reg)
	return &metrics{
		// kind: other, bounce, autoreply, challenge, mdn, callout, report, spam.
		events:      r.CounterVec("blowback_listing_events_total", "Evidence events committed to the store, by kind.", []string{"kind"}),
		duplicates:  r.Counter("blowback_listing_duplicate_events_total", "Evidence events received again with an id already stored (ignored)."),
		refused:     r.Counter("blowback_listing_refused_events_total", "Evidence events refused at intake because their address can never be listed (scoring.Listable)."),
		entries:     r.Gauge("blowback_zone_entries", "Entries in the published zone snapshot."),
		serial:      r.Gauge("blowback_zone_serial", "SOA serial of the published zone snapshot."),
		publishedAt: r.Gauge("blowback_zone_published_timestamp_seconds", "Unix time the current zone snapshot was published."),
		publishSeconds: r.Histogram("blowback_zone_publish_duration_seconds", "Time to build and swap in a new zone snapshot.",
			prometheus.ExponentialBuckets(0.0001, 4, 9)),
		panics:         r.Counter("blowback_listing_panics_total", "Panics recovered in the publisher and sweeper."),
		rebuildSeconds: r.Gauge("blowback_listing_rebuild_duration_seconds", "Time the last full rebuild of the listing from the store took."),
	}
}

func (m *metrics) published(s *zones.Snapshot) {
	m.entries.Set(float64(s.Len()))
	m.serial.Set(float64(s.Serial))
	m.publishedAt.Set(float64(s.Built.Unix()))
}
