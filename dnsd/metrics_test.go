package dnsd

import (
	"strings"
	"testing"

	"github.com/miekg/dns"

	"github.com/blowback-dnsbl/blowback/internal/metric"
	"github.com/blowback-dnsbl/blowback/zones"
)

// The metrics lint clean, carry the blowback_dns_ prefix, and count what
// the per-socket counters saw.
func TestMetrics(t *testing.T) {
	s, addr, reg := startServer(t, Config{RRL: RRLConfig{Rate: 1000}}, testSnapshot())
	z := NewZoneFile("/nonexistent", zone, zones.RbldnsdOptions{}, &zones.Current{}, nil, reg)
	z.Load()
	exchange(t, addr, "udp", query(v4name("192.0.2.1"), dns.TypeA))
	exchange(t, addr, "udp", query(v4name("192.0.2.2"), dns.TypeTXT))
	exchange(t, addr, "tcp", query(v4name("192.0.2.2"), dns.TypeA))
	exchange(t, addr, "udp", query(zone+".", dns.TypeANY))
	if err := metric.Lint(reg); err != nil {
		t.Error(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		if !strings.HasPrefix(mf.GetName(), "blowback_dns_") {
			t.Errorf("metric %s outside blowback_dns_", mf.GetName())
		}
		for _, m := range mf.Metric {
			var ls []string
			for _, l := range m.Label {
				ls = append(ls, l.GetValue())
			}
			v := m.GetCounter().GetValue() + m.GetGauge().GetValue()
			got[mf.GetName()+"{"+strings.Join(ls, ",")+"}"] = v
		}
	}
	for k, want := range map[string]float64{
		"blowback_dns_queries_total{A,NOERROR}":    1,
		"blowback_dns_queries_total{TXT,NXDOMAIN}": 1,
		"blowback_dns_queries_total{A,NXDOMAIN}":   1, // TCP
		"blowback_dns_queries_total{ANY,NOERROR}":  1,
		"blowback_dns_fast_path_queries_total{}":   2,
		"blowback_dns_snapshot_serial{}":           float64(s.cur.Load().Serial),
		"blowback_dns_snapshot_entries{}":          float64(s.cur.Load().Len()),
		"blowback_dns_zone_reloads_total{error}":   1,
	} {
		if got[k] != want {
			t.Errorf("%s = %v, want %v", k, got[k], want)
		}
	}
}
