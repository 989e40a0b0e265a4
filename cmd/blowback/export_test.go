package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"

	"github.com/blowback-dnsbl/blowback/dnsd"
	"github.com/blowback-dnsbl/blowback/store"
	"github.com/blowback-dnsbl/blowback/zones"
)

func exportZone(serial uint32, n int) *zones.Snapshot {
	var es []zones.Entry
	for i := range n {
		es = append(es, zones.Entry{Prefix: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), 32), Codes: zones.CodeBounce})
	}
	return zones.Build(zones.Info{Zone: "bl.blowback.test", Serial: serial, TXT: "listed $"}, es)
}

func gaugeValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			m := mf.GetMetric()[0]
			if m.GetGauge() != nil {
				return m.GetGauge().GetValue()
			}
			return m.GetCounter().GetValue()
		}
	}
	return -1
}

// waitFor polls cond (bounded): the distributor publishes asynchronously.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func headerOf(t *testing.T, path string) zones.Header {
	t.Helper()
	h, err := zones.ReadHeaderFile(path)
	if err != nil {
		return zones.Header{}
	}
	return h
}

func TestDistributorGuard(t *testing.T) {
	dir := t.TempDir()
	cfg := defaultConfig()
	cfg.ExportDir = dir
	cfg.Export.Interval = Duration(10 * time.Millisecond)
	cfg.Export.Plain = true
	start := func(cfg Config) (*distributor, *prometheus.Registry) {
		reg := prometheus.NewRegistry()
		d, err := newDistributor(cfg, slog.New(slog.DiscardHandler), reg, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.stop(t.Context()) })
		return d, reg
	}
	rbl := filepath.Join(dir, "bl.blowback.test.rbldnsd")
	bind := filepath.Join(dir, "bl.blowback.test.zone")
	d, reg := start(cfg)
	d.update(exportZone(10, 100))
	waitFor(t, "first export", func() bool {
		return headerOf(t, rbl).Serial == 10 && headerOf(t, bind).Serial == 10 && gaugeValue(t, reg, "blowback_export_serial") == 10
	})
	if _, err := os.Stat(filepath.Join(dir, "bl.blowback.test.txt")); err != nil {
		t.Errorf("plain export: %v", err)
	}
	waitFor(t, "freshness metric", func() bool { return gaugeValue(t, reg, "blowback_export_last_success_timestamp_seconds") > 0 })
	if v := gaugeValue(t, reg, "blowback_export_serial"); v != 10 {
		t.Errorf("serial metric %v", v)
	}
	d.update(exportZone(11, 60)) // shrinks by 40%: fine
	waitFor(t, "second export", func() bool { return headerOf(t, rbl).Serial == 11 })
	d.update(exportZone(12, 0)) // empties: held back
	waitFor(t, "held back", func() bool { return gaugeValue(t, reg, "blowback_export_held_back") == 1 })
	if h := headerOf(t, rbl); h.Serial != 11 || h.Entries != 60 {
		t.Errorf("held-back zone reached the file: %+v", h)
	}
	d.update(exportZone(13, 59)) // back to normal
	waitFor(t, "published again", func() bool {
		return headerOf(t, rbl).Serial == 13 && gaugeValue(t, reg, "blowback_export_serial") == 13
	})
	if v := gaugeValue(t, reg, "blowback_export_held_back"); v != 0 {
		t.Errorf("held_back still %v", v)
	}
	if v := gaugeValue(t, reg, "blowback_export_held_back_total"); v != 1 {
		t.Errorf("held_back_total %v", v)
	}
	d.stop(t.Context())

	// After a restart the baseline is the export on disk: a wiped store
	// (empty zone) does not overwrite a good export.
	d2, reg2 := start(cfg)
	d2.update(exportZone(14, 0))
	waitFor(t, "held back after restart", func() bool { return gaugeValue(t, reg2, "blowback_export_held_back") == 1 })
	if h := headerOf(t, rbl); h.Serial != 13 {
		t.Errorf("restart: the empty zone replaced the export: %+v", h)
	}
	d2.stop(t.Context())

	// Forced, it goes out.
	cfg.Export.Force = true
	d3, _ := start(cfg)
	d3.update(exportZone(15, 0))
	waitFor(t, "forced export", func() bool { return headerOf(t, rbl).Serial == 15 })

	// "list the world" is held back whatever the counts.
	cfg.Export.Force = false
	d4, reg4 := start(cfg)
	world := zones.Build(zones.Info{Zone: "bl.blowback.test", Serial: 16}, []zones.Entry{{Prefix: netip.MustParsePrefix("0.0.0.0/0"), Codes: zones.CodeBounce}})
	d4.update(world)
	waitFor(t, "world held back", func() bool { return gaugeValue(t, reg4, "blowback_export_held_back") == 1 })
	if h := headerOf(t, rbl); h.Serial != 15 {
		t.Errorf("0.0.0.0/0 reached the export: %+v", h)
	}
}

func TestCheckExportGuard(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "z.rbldnsd")
	cfg := defaultConfig()
	if err := checkExportGuard(cfg, out, exportZone(1, 0), false); err != nil {
		t.Errorf("no file yet: %v", err)
	}
	if err := zones.WriteFileAtomic(out, func(w io.Writer) error { return zones.WriteRbldnsd(w, exportZone(1, 100), zones.SOA{}) }); err != nil {
		t.Fatal(err)
	}
	err := checkExportGuard(cfg, out, exportZone(2, 10), false)
	if !errors.Is(err, zones.ErrHeldBack) || !strings.Contains(err.Error(), "--force") {
		t.Errorf("shrink to 10%%: %v", err)
	}
	if err := checkExportGuard(cfg, out, exportZone(2, 10), true); err != nil {
		t.Errorf("forced: %v", err)
	}
}

func TestExportConfig(t *testing.T) {
	for _, c := range []struct {
		toml string
		ok   bool
	}{
		{"[export]\nmax_shrink = 0.2\nallow_transfer = [\"127.0.0.1/32\", \"::1\"]\nnotify = [\"127.0.0.1:53\"]", true},
		{"[export]\nmax_shrink = 2", false},
		{"[export]\nallow_transfer = [\"nope\"]", false},
		{"[export]\nnotify = [\"127.0.0.1\"]", false},
		{"[export]\nrequire_tsig = true", false},
		{"[export]\nglue = { \"ns1.bl.blowback.test\" = [\"192.0.2.1\"] }", true},
		{"[export]\nglue = { \"ns1.bl.blowback.test\" = [\"x\"] }", false},
		{"[[export.tsig]]\nname = \"k.\"\nsecret = \"eA==\"\n[export]\nrequire_tsig = true", true},
	} {
		_, err := parseConfig([]byte(c.toml))
		if (err == nil) != c.ok {
			t.Errorf("%q: %v", c.toml, err)
		}
	}
	// The default config's in-zone NS gets the DNS address as glue, so
	// the BIND export loads (named-checkzone refuses an NS without one).
	dc := defaultConfig()
	soa := dc.soa()
	if g := soa.Glue["ns1.bl.blowback.test"]; len(g) != 1 || g[0].String() != "127.0.0.1" {
		t.Errorf("default glue %v", soa.Glue)
	}
}

func TestExportCommandGuard(t *testing.T) {
	dir := t.TempDir()
	st, err := store.Open(filepath.Join(dir, "store"), store.DefaultOptions(), nil)
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	out := filepath.Join(dir, "bl.rbldnsd")
	// A good export of 100 entries is there; the store is empty.
	if err := zones.WriteFileAtomic(out, func(w io.Writer) error { return zones.WriteRbldnsd(w, exportZone(1, 100), zones.SOA{}) }); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	err = cmdExport([]string{"--data", dir, "--format", "rbldnsd", "--out", out}, &stdout, &stderr)
	if !errors.Is(err, zones.ErrHeldBack) {
		t.Fatalf("export of an empty zone over a full one: %v", err)
	}
	if h := headerOf(t, out); h.Entries != 100 {
		t.Errorf("the export was replaced: %+v", h)
	}
	if err := cmdExport([]string{"--data", dir, "--format", "rbldnsd", "--out", out, "--force"}, &stdout, &stderr); err != nil {
		t.Fatalf("--force: %v", err)
	}
	if h := headerOf(t, out); h.Entries != 0 {
		t.Errorf("--force did not write: %+v", h)
	}
}

// A running node keeps the export dir current and serves the zone by AXFR
// as the listing changes.
func TestNodeExportsAndTransfers(t *testing.T) {
	dir := t.TempDir()
	cfg := defaultConfig()
	cfg.Data = dir
	cfg.SMTP, cfg.DNS, cfg.HTTP = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	cfg.ExportDir = filepath.Join(dir, "export")
	cfg.Export.AllowTransfer = []string{"127.0.0.1/32"}
	n := newNode(cfg, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := n.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer n.Stop()
	ip := netip.MustParseAddr("192.0.2.99")
	if _, err := n.eng.Act(ctx, store.Action{Prefix: netip.PrefixFrom(ip, 32), Op: store.OpList, Who: "test", Reason: "export test"}); err != nil {
		t.Fatal(err)
	}
	serial := n.cur.Load().Serial
	rbl := filepath.Join(cfg.ExportDir, "bl.blowback.test.rbldnsd")
	waitFor(t, "export with the listing", func() bool {
		h := headerOf(t, rbl)
		return h.Serial == serial
	})
	b, _ := os.ReadFile(rbl)
	if !strings.Contains(string(b), "\n192.0.2.99\n") {
		t.Errorf("listed address not in the rbldnsd export")
	}
	// The BIND file is written after the rbldnsd one: wait for it too
	// (reading it at once failed on a busy machine).
	var bind []byte
	waitFor(t, "BIND export with the listing", func() bool {
		bind, _ = os.ReadFile(filepath.Join(cfg.ExportDir, "bl.blowback.test.zone"))
		return strings.Contains(string(bind), "99.2.0.192 IN A 127.0.0.2")
	})
	if !strings.Contains(string(bind), "99.2.0.192 IN A 127.0.0.2") || !strings.Contains(string(bind), "ns1 IN A 127.0.0.1") {
		t.Errorf("BIND export lacks the listing or the glue:\n%.600s", bind)
	}
	var got []string
	waitFor(t, "AXFR with the listing", func() bool {
		m := new(dns.Msg)
		m.SetAxfr("bl.blowback.test.")
		ch, err := (&dns.Transfer{}).In(m, n.dns.Addr().String())
		if err != nil {
			return false
		}
		got = got[:0]
		for env := range ch {
			if env.Error != nil {
				return false
			}
			for _, rr := range env.RR {
				got = append(got, rr.Header().Name)
			}
		}
		return slices.Contains(got, "99.2.0.192.bl.blowback.test.")
	})
}

// Serials only increase, also across restarts (store.NextSerial), which
// secondaries and the exports' guard baseline rely on.
func TestSerialsSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	st, err := store.Open(dir, store.DefaultOptions(), nil)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := st.NextSerial(1000)
	st.Close()
	st, err = store.Open(dir, store.DefaultOptions(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	b, _ := st.NextSerial(10) // a clock gone backwards
	if b <= a {
		t.Errorf("serial %d after restart, had %d", b, a)
	}
}

// The export and transfer metrics pass promlint.
func TestExportMetricsLint(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := newExportMetrics(reg)
	m.bytes.WithLabelValues("rbldnsd").Set(1)
	m.errors.WithLabelValues("rbldnsd").Inc()
	m.duration.WithLabelValues("rbldnsd").Observe(1)
	cfg := defaultConfig()
	cfg.DNS = "127.0.0.1:0"
	srv := dnsd.New(cfg.dnsConfig(), &zones.Current{}, nil, reg)
	if err := srv.SetTransfer(dnsd.TransferConfig{Journal: zones.NewJournal(0)}, reg); err != nil {
		t.Fatal(err)
	}
	problems, err := promlint.NewWithMetricFamilies(gatherAll(t, reg)).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		if strings.HasPrefix(p.Metric, "blowback_export_") || strings.HasPrefix(p.Metric, "blowback_xfr_") {
			t.Errorf("%s: %s", p.Metric, p.Text)
		}
	}
}

func gatherAll(t *testing.T, reg *prometheus.Registry) []*dto.MetricFamily {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	return mfs
}
