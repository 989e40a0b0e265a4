package distrib

import (
	"context"
	"errors"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/blowback-dnsbl/blowback/internal/metric"
	"github.com/blowback-dnsbl/blowback/internal/testenv"
	"github.com/blowback-dnsbl/blowback/zones"
	"github.com/blowback-dnsbl/blowback/zones/signing"
)

const zone = "bl.blowback.test"

func snap(serial uint32, n int) *zones.Snapshot {
	var es []zones.Entry
	for i := range n {
		es = append(es, zones.Entry{Prefix: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), 32), Codes: zones.CodeBounce})
	}
	return zones.Build(zones.Info{Zone: zone, Serial: serial, TXT: "listed $"}, es)
}

// gaugeValue is the value of the metric name (without labels) in reg; -1
// when it is not there.
func gaugeValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	v, err := metric.Value(reg, name)
	if err != nil {
		return -1
	}
	return v
}

func headerOf(path string) zones.Header {
	h, err := zones.ReadHeaderFile(path)
	if err != nil {
		return zones.Header{}
	}
	return h
}

func start(t *testing.T, o Options) (*Distributor, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	d, err := New(o, nil, reg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Stop(context.Background()) })
	return d, reg
}

func TestGuard(t *testing.T) {
	dir := t.TempDir()
	o := Options{Zone: zone, Dir: dir, Plain: true, Interval: 10 * time.Millisecond, TXT: "listed $"}
	rbl := filepath.Join(dir, zone+".rbldnsd")
	bind := filepath.Join(dir, zone+".zone")
	d, reg := start(t, o)
	d.Update(snap(10, 100))
	testenv.Eventually(t, "first export", func() bool {
		return headerOf(rbl).Serial == 10 && headerOf(bind).Serial == 10 && gaugeValue(t, reg, "blowback_export_serial") == 10
	})
	if _, err := os.Stat(filepath.Join(dir, zone+".txt")); err != nil {
		t.Errorf("plain export: %v", err)
	}
	testenv.Eventually(t, "freshness metric", func() bool { return gaugeValue(t, reg, "blowback_export_last_success_timestamp_seconds") > 0 })
	d.Update(snap(11, 60)) // shrinks by 40%: fine
	testenv.Eventually(t, "second export", func() bool { return headerOf(rbl).Serial == 11 })
	d.Update(snap(12, 0)) // empties: held back
	testenv.Eventually(t, "held back", func() bool { return gaugeValue(t, reg, "blowback_export_held_back") == 1 })
	if h := headerOf(rbl); h.Serial != 11 || h.Entries != 60 {
		t.Errorf("held-back zone reached the file: %+v", h)
	}
	if d.Held() == "" {
		t.Errorf("Held() empty while held back")
	}
	d.Update(snap(13, 59)) // back to normal
	testenv.Eventually(t, "published again", func() bool {
		return headerOf(rbl).Serial == 13 && gaugeValue(t, reg, "blowback_export_serial") == 13
	})
	if v := gaugeValue(t, reg, "blowback_export_held_back"); v != 0 {
		t.Errorf("held_back still %v", v)
	}
	if v := gaugeValue(t, reg, "blowback_export_held_back_total"); v != 1 {
		t.Errorf("held_back_total %v", v)
	}
	d.Stop(t.Context())

	// After a restart the baseline is the export on disk: a wiped store
	// (empty zone) does not overwrite a good export.
	d2, reg2 := start(t, o)
	d2.Update(snap(14, 0))
	testenv.Eventually(t, "held back after restart", func() bool { return gaugeValue(t, reg2, "blowback_export_held_back") == 1 })
	if h := headerOf(rbl); h.Serial != 13 {
		t.Errorf("restart: the empty zone replaced the export: %+v", h)
	}
	d2.Stop(t.Context())

	// Forced, it goes out.
	o.Force = true
	d3, _ := start(t, o)
	d3.Update(snap(15, 0))
	testenv.Eventually(t, "forced export", func() bool { return headerOf(rbl).Serial == 15 })

	// "list the world" is held back whatever the counts.
	o.Force = false
	d4, reg4 := start(t, o)
	world := zones.Build(zones.Info{Zone: zone, Serial: 16}, []zones.Entry{{Prefix: netip.MustParsePrefix("0.0.0.0/0"), Codes: zones.CodeBounce}})
	d4.Update(world)
	testenv.Eventually(t, "world held back", func() bool { return gaugeValue(t, reg4, "blowback_export_held_back") == 1 })
	if h := headerOf(rbl); h.Serial != 15 {
		t.Errorf("0.0.0.0/0 reached the export: %+v", h)
	}
}

// Issue 13: a node that feeds secondaries only by zone transfer (no
// export dir) keeps its guard across a restart: the baseline file, not
// the store, says what was published, and an empty zone with a newer
// serial never reaches the journal that AXFR/IXFR read.
func TestGuardHoldsAfterRestartWithoutExportDir(t *testing.T) {
	base := filepath.Join(t.TempDir(), "export-baseline.json")
	o := Options{Zone: zone, Interval: 10 * time.Millisecond, Baseline: base}
	o.Journal = zones.NewJournal(0)
	changed := make(chan uint32, 10)
	o.ZoneChanged = func() { changed <- o.Journal.Latest().Serial }
	d, _ := start(t, o)
	d.Update(snap(100, 50))
	if s := <-changed; s != 100 {
		t.Fatalf("NOTIFY for serial %d", s)
	}
	d.Stop(t.Context())
	if b, err := ReadBaseline(base); err != nil || b != (Baseline{Zone: zone, Serial: 100, Entries: 50}) {
		t.Fatalf("baseline %+v %v", b, err)
	}

	// Restart: a new journal (the process is new), the store is gone, the
	// listing publishes an empty zone with a newer serial.
	o.Journal = zones.NewJournal(0)
	d2, reg2 := start(t, o)
	d2.Update(snap(101, 0))
	testenv.Eventually(t, "held back after restart", func() bool { return gaugeValue(t, reg2, "blowback_export_held_back") == 1 })
	if l := o.Journal.Latest(); l != nil {
		t.Fatalf("the empty zone reached the transfer journal: serial %d, %d entries", l.Serial, l.Len())
	}
	// The listing recovers: published, NOTIFY sent, baseline moves on.
	d2.Update(snap(102, 40))
	if s := <-changed; s != 102 {
		t.Fatalf("NOTIFY for serial %d", s)
	}
	if b, _ := ReadBaseline(base); b.Serial != 102 || b.Entries != 40 {
		t.Errorf("baseline after recovery %+v", b)
	}
}

// A damaged baseline refuses to start rather than opening the gate.
func TestBaselineDamaged(t *testing.T) {
	base := filepath.Join(t.TempDir(), "b.json")
	for _, c := range []string{"{", `{"zone":"","entries":3}`, `{"zone":"x","entries":-1}`, strings.Repeat(" ", maxBaseline+1)} {
		if err := os.WriteFile(base, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := New(Options{Zone: zone, Baseline: base}, nil, nil); !errors.Is(err, ErrBaseline) {
			t.Errorf("%.20q: %v", c, err)
		}
	}
	// Another zone's baseline is ignored, not an error.
	if err := WriteBaseline(base, Baseline{Zone: "other.test", Serial: 1, Entries: 5}); err != nil {
		t.Fatal(err)
	}
	d, err := New(Options{Zone: zone, Baseline: base}, nil, nil)
	if err != nil || d.prev != -1 {
		t.Errorf("other zone's baseline: %v prev %d", err, d.prev)
	}
}

// The newer of the baseline file and the export on disk is the baseline.
func TestBaselineNewest(t *testing.T) {
	dir := t.TempDir()
	base := filepath.Join(dir, "b.json")
	rbl := FilePath(dir, zone, zones.FormatRbldnsd)
	if err := zones.WriteFileAtomic(rbl, func(w io.Writer) error { return zones.WriteRbldnsd(w, snap(20, 30), zones.SOA{}) }); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		serial uint32
		want   int
	}{{10, 30}, {30, 7}} {
		if err := WriteBaseline(base, Baseline{Zone: zone, Serial: c.serial, Entries: 7}); err != nil {
			t.Fatal(err)
		}
		d, err := New(Options{Zone: zone, Dir: dir, Baseline: base}, nil, nil)
		if err != nil || d.prev != c.want {
			t.Errorf("baseline serial %d: prev %d, want %d (%v)", c.serial, d.prev, c.want, err)
		}
	}
}

func TestCheckFile(t *testing.T) {
	out := filepath.Join(t.TempDir(), "z.rbldnsd")
	if err := CheckFile(zones.Guard{}, out, snap(1, 0), false); err != nil {
		t.Errorf("no file yet: %v", err)
	}
	if err := zones.WriteFileAtomic(out, func(w io.Writer) error { return zones.WriteRbldnsd(w, snap(1, 100), zones.SOA{}) }); err != nil {
		t.Fatal(err)
	}
	err := CheckFile(zones.Guard{}, out, snap(2, 10), false)
	if !errors.Is(err, zones.ErrHeldBack) || !strings.Contains(err.Error(), "--force") {
		t.Errorf("shrink to 10%%: %v", err)
	}
	if err := CheckFile(zones.Guard{}, out, snap(2, 10), true); err != nil {
		t.Errorf("forced: %v", err)
	}
}

// The metrics pass promlint.
func TestMetricsLint(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := newMetrics(reg)
	m.bytes.WithLabelValues("rbldnsd").Set(1)
	m.errors.WithLabelValues("rbldnsd").Inc()
	m.duration.WithLabelValues("rbldnsd").Observe(1)
	if err := metric.Lint(reg); err != nil {
		t.Error(err)
	}
}

// With a signer every export file gets a signature that verifies and
// vouches for the version's serial.
func TestSignedExports(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(t.TempDir(), "k")
	pub, err := signing.GenerateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	sg, err := signing.LoadSigner(key)
	if err != nil {
		t.Fatal(err)
	}
	pk, err := signing.LoadPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	d, _ := start(t, Options{Zone: zone, Dir: dir, Plain: true, Interval: 10 * time.Millisecond, Signer: sg})
	for _, serial := range []uint32{5, 6} {
		d.Update(snap(serial, 20))
		for _, f := range []zones.Format{zones.FormatRbldnsd, zones.FormatBIND, zones.FormatPlain} {
			p := FilePath(dir, zone, f)
			testenv.Eventually(t, "signed "+string(f), func() bool {
				s, err := signing.VerifyFile(pk, p)
				return err == nil && s.Serial == serial
			})
		}
	}
}

// A snapshot held back while the previous one is still being written (its
// rbldnsd file is out, the BIND and plain ones not yet) stays held back:
// runs take turns, so the older publish cannot finish last and clear the
// hold (TestGuard failed that way under -race).
func TestGuardHoldDuringSlowPublish(t *testing.T) {
	dir := t.TempDir()
	o := Options{Zone: zone, Dir: dir, Plain: true, Interval: time.Millisecond, TXT: "listed $"}
	rbl := filepath.Join(dir, zone+".rbldnsd")
	d, reg := start(t, o)
	d.Update(snap(10, 60000))
	testenv.Eventually(t, "first rbldnsd file", func() bool { return headerOf(rbl).Serial == 10 })
	d.Update(snap(11, 0)) // empties: held back, whenever the run starts
	testenv.Eventually(t, "held back", func() bool {
		return d.Held() != "" && gaugeValue(t, reg, "blowback_export_serial") == 10
	})
	d.Stop(t.Context())
	if v := gaugeValue(t, reg, "blowback_export_held_back"); v != 1 {
		t.Errorf("held_back = %v after the older publish finished", v)
	}
	if d.Held() == "" {
		t.Error("Held() empty after the older publish finished")
	}
}
