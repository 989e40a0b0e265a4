package dnsd

import (
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	queries  *prometheus.CounterVec
	duration prometheus.Histogram
	panics   prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		// qtype: A, AAAA, TXT, ANY, SOA, NS, other; rcode: NOERROR, NXDOMAIN, REFUSED, FORMERR, NOTIMP, SERVFAIL, BADVERS, other.
		queries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "blowback_dns_queries_total",
			Help: "DNS queries answered, by query type and response code.",
		}, []string{"qtype", "rcode"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "blowback_dns_request_duration_seconds",
			Help:    "Time to answer a DNS query, from handler entry to write.",
			Buckets: []float64{0.00001, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.005, 0.025, 0.1},
		}),
		panics: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "blowback_dns_panics_total",
			Help: "Panics recovered while answering queries (each answered SERVFAIL).",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.queries, m.duration, m.panics)
	}
	return m
}

func qtypeLabel(t uint16) string {
	switch t {
	case dns.TypeA, dns.TypeAAAA, dns.TypeTXT, dns.TypeANY, dns.TypeSOA, dns.TypeNS:
		return dns.TypeToString[t]
	}
	return "other"
}

func rcodeLabel(r int) string {
	switch r {
	case dns.RcodeSuccess, dns.RcodeNameError, dns.RcodeRefused, dns.RcodeFormatError, dns.RcodeNotImplemented, dns.RcodeServerFailure, dns.RcodeBadVers:
		return dns.RcodeToString[r]
	}
	return "other"
}

func (m *metrics) observe(req, resp *dns.Msg, d time.Duration) {
	qt := "other"
	if len(req.Question) == 1 {
		qt = qtypeLabel(req.Question[0].Qtype)
	}
	m.queries.WithLabelValues(qt, rcodeLabel(resp.Rcode)).Inc()
	m.duration.Observe(d.Seconds())
}
