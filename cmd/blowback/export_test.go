package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/blowback-dnsbl/blowback/dnsd"
	"github.com/blowback-dnsbl/blowback/internal/metric"
	"github.com/blowback-dnsbl/blowback/internal/testenv"
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

func headerOf(t *testing.T, path string) zones.Header {
	t.Helper()
	h, err := zones.ReadHeaderFile(path)
	if err != nil {
		return zones.Header{}
	}
	return h
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
	dir := newDataDir(t)
	out := filepath.Join(dir, "bl.rbldnsd")
	// A good export of 100 entries is there; the store is empty.
	if err := zones.WriteFileAtomic(out, func(w io.Writer) error { return zones.WriteRbldnsd(w, exportZone(1, 100), zones.SOA{}) }); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	err := cmdExport([]string{"--data", dir, "--format", "rbldnsd", "--out", out}, &stdout, &stderr)
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
	cfg := testConfig(dir)
	cfg.ExportDir = filepath.Join(dir, "export")
	cfg.Export.AllowTransfer = []string{"127.0.0.1/32"}
	n := startNodeConfig(t, cfg)
	defer n.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ip := netip.MustParseAddr("192.0.2.99")
	if _, err := n.eng.Act(ctx, store.Action{Prefix: netip.PrefixFrom(ip, 32), Op: store.OpList, Who: "test", Reason: "export test"}); err != nil {
		t.Fatal(err)
	}
	serial := n.cur.Load().Serial
	rbl := filepath.Join(cfg.ExportDir, "bl.blowback.test.rbldnsd")
	bindPath := filepath.Join(cfg.ExportDir, "bl.blowback.test.zone")
	// The formats are written one after the other: wait for both.
	eventually(t, "export with the listing", func() bool {
		return headerOf(t, rbl).Serial == serial && headerOf(t, bindPath).Serial == serial
	})
	b, _ := os.ReadFile(rbl)
	if !strings.Contains(string(b), "\n192.0.2.99\n") {
		t.Errorf("listed address not in the rbldnsd export")
	}
	bind, _ := os.ReadFile(bindPath)
	if !strings.Contains(string(bind), "99.2.0.192 IN A 127.0.0.2") || !strings.Contains(string(bind), "ns1 IN A 127.0.0.1") {
		t.Errorf("BIND export lacks the listing or the glue:\n%.600s", bind)
	}
	var got []string
	eventually(t, "AXFR with the listing", func() bool {
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

// The transfer metrics pass promlint (zones/distrib lints the export ones).
func TestExportMetricsLint(t *testing.T) {
	reg := prometheus.NewRegistry()
	cfg := defaultConfig()
	cfg.DNS = "127.0.0.1:0"
	srv := dnsd.New(cfg.dnsConfig(), &zones.Current{}, nil, reg)
	if err := srv.SetTransfer(dnsd.TransferConfig{Journal: zones.NewJournal(0)}, reg); err != nil {
		t.Fatal(err)
	}
	testenv.PromlintGathered(t, reg, "blowback_xfr_")
}

// axfr transfers the zone from addr: its SOA serial and owner names, or an
// error (refused, SERVFAIL, no answer).
func axfr(addr string) (serial uint32, names []string, err error) {
	m := new(dns.Msg)
	m.SetAxfr("bl.blowback.test.")
	ch, err := (&dns.Transfer{}).In(m, addr)
	if err != nil {
		return 0, nil, err
	}
	for env := range ch {
		if env.Error != nil {
			return 0, nil, env.Error
		}
		for _, rr := range env.RR {
			if soa, ok := rr.(*dns.SOA); ok {
				serial = soa.Serial
			}
			names = append(names, rr.Header().Name)
		}
	}
	return serial, names, nil
}

// Issue 13: a node that feeds its secondaries only by zone transfer (no
// export dir) loses its store and restarts. The guard's baseline lives in
// the data dir beside the store, so the empty zone, with its newer serial,
// is held back from AXFR instead of wiping the secondaries; with the
// persisted snapshot (DATA/snapshot.bin) still there, AXFR keeps serving
// the last published zone.
func TestNodeGuardAfterLostStore(t *testing.T) {
	for _, lost := range [][]string{{"store"}, {"store", "snapshot.bin"}} {
		t.Run(strings.Join(lost, "+"), func(t *testing.T) {
			dir := t.TempDir()
			cfg := testConfig(dir)
			cfg.Export.AllowTransfer = []string{"127.0.0.1/32"}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			n := startNodeConfig(t, cfg)
			for i := range 4 {
				ip := netip.AddrFrom4([4]byte{192, 0, 2, byte(10 + i)})
				if _, err := n.eng.Act(ctx, store.Action{Prefix: netip.PrefixFrom(ip, 32), Op: store.OpList, Who: "test", Reason: "guard test"}); err != nil {
					t.Fatal(err)
				}
			}
			var before uint32
			eventually(t, "AXFR with the listings", func() bool {
				s, names, err := axfr(n.dns.Addr().String())
				before = s
				return err == nil && slices.Contains(names, "13.2.0.192.bl.blowback.test.")
			})
			if err := n.Stop(); err != nil {
				t.Fatal(err)
			}

			// The store is lost; the node restarts on an empty one.
			for _, p := range lost {
				if err := os.RemoveAll(filepath.Join(dir, p)); err != nil {
					t.Fatal(err)
				}
			}
			n2 := startNodeConfig(t, cfg)
			defer n2.Stop()
			eventually(t, "guard holds back the empty zone", func() bool { v, _ := metric.Value(n2.reg, "blowback_export_held_back"); return v == 1 })
			s, names, err := axfr(n2.dns.Addr().String())
			switch {
			case err != nil: // nothing published since the restart: secondaries keep theirs
			case s == before && slices.Contains(names, "13.2.0.192.bl.blowback.test."):
				// the persisted snapshot: what was published before
			default:
				t.Fatalf("AXFR after a lost store gave serial %d (had %d) with %d names: the secondaries would drop every listing", s, before, len(names))
			}
			if len(lost) == 2 && err == nil {
				t.Errorf("without store and snapshot, AXFR served serial %d", s)
			}
		})
	}
}
