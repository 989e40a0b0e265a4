package dnsd

import (
	"sync"
	"sync/atomic"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/blowback-dnsbl/blowback/internal/metric"
	"github.com/blowback-dnsbl/blowback/zones"
)

// Label values (bounded):
//
//	qtype:  A, AAAA, TXT, ANY, SOA, NS, other
//	rcode:  NOERROR, NXDOMAIN, REFUSED, FORMERR, NOTIMP, SERVFAIL, BADVERS, other
//	action: drop, slip
//	reason: malformed, response, send_error
//	result: valid, new, malformed
//	reason (tcp_rejected): max_conns, per_client
//	reason (policy_refused): resolver, quota, key_missing, key_unknown, key_quota
var (
	qtypeLabels = [...]string{"A", "AAAA", "TXT", "ANY", "SOA", "NS", "other"}
	rcodeLabels = [...]string{"NOERROR", "NXDOMAIN", "REFUSED", "FORMERR", "NOTIMP", "SERVFAIL", "BADVERS", "other"}
)

type metrics struct {
	duration    prometheus.Histogram
	panics      prometheus.Counter
	rateLimited *prometheus.CounterVec
	dropped     *prometheus.CounterVec
	tcpRejected *prometheus.CounterVec
	refused     *prometheus.CounterVec
	cookies     *prometheus.CounterVec
	slow        *counters // TCP and Answer

	mu   sync.Mutex
	sets []*counters
}

// counters are one socket's query counts, summed on scrape: the hot path
// only adds to memory no other socket writes.
type counters struct {
	q    [len(qtypeLabels)][len(rcodeLabels)]atomic.Uint64
	fast atomic.Uint64
	wait delayHist // time in the socket buffer (udp_linux.go)
	_    [64]byte  // keep the next socket's counters off this cache line
}

// waitBuckets are the upper bounds (seconds) of
// blowback_dns_udp_queue_delay_seconds.
var waitBuckets = [...]float64{0.00001, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1}

// delayHist is a histogram of durations without locks or allocation.
type delayHist struct {
	b     [len(waitBuckets) + 1]atomic.Uint64
	sumNs atomic.Uint64
}

func (h *delayHist) observe(ns int64) {
	ns = max(ns, 0)
	s := float64(ns) / 1e9
	i := 0
	for i < len(waitBuckets) && s > waitBuckets[i] {
		i++
	}
	h.b[i].Add(1)
	h.sumNs.Add(uint64(ns))
}

func qtypeIndex(t uint16) int {
	switch t {
	case dns.TypeA:
		return 0
	case dns.TypeAAAA:
		return 1
	case dns.TypeTXT:
		return 2
	case dns.TypeANY:
		return 3
	case dns.TypeSOA:
		return 4
	case dns.TypeNS:
		return 5
	}
	return 6
}

func rcodeIndex(r int) int {
	switch r {
	case dns.RcodeSuccess:
		return 0
	case dns.RcodeNameError:
		return 1
	case dns.RcodeRefused:
		return 2
	case dns.RcodeFormatError:
		return 3
	case dns.RcodeNotImplemented:
		return 4
	case dns.RcodeServerFailure:
		return 5
	case dns.RcodeBadVers:
		return 6
	}
	return 7
}

func (c *counters) count(qtype uint16, rcode int) {
	c.q[qtypeIndex(qtype)][rcodeIndex(rcode)].Add(1)
}

func newMetrics(reg prometheus.Registerer, cur *zones.Current) *metrics {
	r := metric.New(reg)
	m := &metrics{
		duration: r.Histogram("blowback_dns_request_duration_seconds",
			"Time to answer DNS queries: per query on TCP, per receive batch on UDP (arrival in user space to send).",
			[]float64{0.00001, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.005, 0.025, 0.1}),
		panics: r.Counter("blowback_dns_panics_total", "Panics recovered while answering queries (each answered SERVFAIL)."),
		rateLimited: r.CounterVec("blowback_dns_rate_limited_total",
			"UDP responses held back by response-rate limiting, by action (drop, slip: sent truncated).", []string{"action"}),
		dropped: r.CounterVec("blowback_dns_dropped_total",
			"UDP datagrams not answered, by reason (malformed, response, send_error).", []string{"reason"}),
		tcpRejected: r.CounterVec("blowback_dns_tcp_rejected_total",
			"TCP connections closed at accept, by reason (max_conns: every slot open to the client taken; per_client: its network's share taken).",
			[]string{"reason"}),
		refused: r.CounterVec("blowback_dns_policy_refused_total",
			"Queries refused by the refused-query policy or keyed access, by reason (resolver, quota, key_missing, key_unknown, key_quota).",
			[]string{"reason"}),
		cookies: r.CounterVec("blowback_dns_cookies_total",
			"DNS cookies seen (RFC 7873), by result (valid server cookie, new: none or stale, malformed).", []string{"result"}),
	}
	m.slow = m.newCounters()
	r.Register(&queryCollector{m})
	r.GaugeFunc("blowback_dns_snapshot_entries", "Entries in the zone snapshot being served.", func() float64 {
		if s := cur.Load(); s != nil {
			return float64(s.Len())
		}
		return 0
	})
	r.GaugeFunc("blowback_dns_snapshot_serial", "SOA serial of the zone snapshot being served.", func() float64 {
		if s := cur.Load(); s != nil {
			return float64(s.Serial)
		}
		return 0
	})
	return m
}

func (m *metrics) newCounters() *counters {
	c := &counters{}
	m.mu.Lock()
	m.sets = append(m.sets, c)
	m.mu.Unlock()
	return c
}

var (
	waitDesc = prometheus.NewDesc("blowback_dns_udp_queue_delay_seconds",
		"Time UDP queries waited in the socket buffer, from the kernel's receive timestamp to the server's read (Linux): high values mean the server waits for CPU.", nil, nil)
	queriesDesc = prometheus.NewDesc("blowback_dns_queries_total", "DNS queries answered, by query type and response code.", []string{"qtype", "rcode"}, nil)
	fastDesc    = prometheus.NewDesc("blowback_dns_fast_path_queries_total", "UDP queries answered on the fast path (no miekg/dns parse).", nil, nil)
)

// queryCollector sums the per-socket counters on scrape.
type queryCollector struct{ m *metrics }

func (c *queryCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- queriesDesc
	ch <- fastDesc
	ch <- waitDesc
}

func (c *queryCollector) Collect(ch chan<- prometheus.Metric) {
	c.m.mu.Lock()
	sets := c.m.sets
	c.m.mu.Unlock()
	var sum [len(qtypeLabels)][len(rcodeLabels)]uint64
	var fast uint64
	var wait [len(waitBuckets) + 1]uint64
	var waitSum uint64
	for _, s := range sets {
		for i := range s.wait.b {
			wait[i] += s.wait.b[i].Load()
		}
		waitSum += s.wait.sumNs.Load()
		for i := range s.q {
			for j := range s.q[i] {
				sum[i][j] += s.q[i][j].Load()
			}
		}
		fast += s.fast.Load()
	}
	for i := range sum {
		for j := range sum[i] {
			if sum[i][j] > 0 {
				ch <- prometheus.MustNewConstMetric(queriesDesc, prometheus.CounterValue, float64(sum[i][j]), qtypeLabels[i], rcodeLabels[j])
			}
		}
	}
	ch <- prometheus.MustNewConstMetric(fastDesc, prometheus.CounterValue, float64(fast))
	buckets := make(map[float64]uint64, len(waitBuckets))
	var cum uint64
	for i, ub := range waitBuckets {
		cum += wait[i]
		buckets[ub] = cum
	}
	cum += wait[len(waitBuckets)]
	ch <- prometheus.MustNewConstHistogram(waitDesc, cum, float64(waitSum)/1e9, buckets)
}
