package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/blowback-dnsbl/blowback/zones"
)

// writeZone exports a zone of ips (bounce) as blowback does, atomically.
func writeZone(t *testing.T, path string, serial uint32, ips ...string) {
	t.Helper()
	var es []zones.Entry
	for _, ip := range ips {
		a := netip.MustParseAddr(ip)
		es = append(es, zones.Entry{Prefix: netip.PrefixFrom(a, min(a.BitLen(), 64)), Codes: zones.CodeBounce})
	}
	s := zones.Build(zones.Info{Zone: "bl.mirror.test", Serial: serial, TXT: "listed $"}, es)
	if err := zones.WriteFileAtomic(path, func(w io.Writer) error { return zones.WriteRbldnsd(w, s, zones.SOA{}) }); err != nil {
		t.Fatal(err)
	}
}

type dnsdAddrs struct{ dns, metrics net.Addr }

// startDnsd runs `blowback dnsd` with opts until the test ends, when it
// must stop without an error.
func startDnsd(t *testing.T, opts dnsdOptions) dnsdAddrs {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan dnsdAddrs, 1)
	done := make(chan error, 1)
	go func() {
		done <- serveDnsd(ctx, opts, defaultConfig(), slog.New(slog.DiscardHandler), nil,
			func(d, m net.Addr) { ready <- dnsdAddrs{d, m} })
	}()
	select {
	case a := <-ready:
		t.Cleanup(func() {
			cancel()
			if err := <-done; err != nil {
				t.Error(err)
			}
		})
		return a
	case err := <-done:
		cancel()
		t.Fatal(err)
	}
	return dnsdAddrs{}
}

func TestDnsdCommand(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "bl.rbldnsd")
	writeZone(t, file, 1, "192.0.2.1", "2001:db8:1:2::1")
	a := startDnsd(t, dnsdOptions{file: file, zone: "bl.mirror.test", dns: "127.0.0.1:0", metrics: "127.0.0.1:0", poll: 50 * time.Millisecond})
	listed := func(ip string) bool {
		t.Helper()
		r := checkZone(t, a.dns.String(), "bl.mirror.test", ip)
		if r.Listed && (len(r.TXT) != 1 || r.TXT[0] != "listed "+ip) {
			t.Errorf("%s: TXT %q", ip, r.TXT)
		}
		return r.Listed
	}
	metric := func(name string, labels ...string) (float64, bool) {
		return scrapeMetric(t, nil, "http://"+a.metrics.String()+"/metrics", name, labels...)
	}
	if !listed("192.0.2.1") || !listed("2001:db8:1:2::77") || listed("192.0.2.2") || !listed("127.0.0.2") {
		t.Fatal("first zone not served")
	}
	// A new file is picked up and swapped in.
	writeZone(t, file, 2, "192.0.2.2")
	eventually(t, "new zone served", func() bool { return listed("192.0.2.2") && !listed("192.0.2.1") })
	if got, ok := metric("blowback_dns_snapshot_serial"); !ok || got != 2 {
		t.Errorf("serial metric %v (present: %v)", got, ok)
	}
	// A file that does not parse leaves the old zone in service, counted.
	writeFile(t, file+".tmp", "$DATASET ip4set @\n192.0.2.3\n300.1.1.1\n", 0o644)
	os.Rename(file+".tmp", file)
	eventually(t, "reload error counted", func() bool { _, ok := metric("blowback_dns_zone_reloads_total", `result="error"`); return ok })
	if !listed("192.0.2.2") || listed("192.0.2.3") {
		t.Error("broken file replaced the zone")
	}
	// Fixed again: served again.
	writeZone(t, file, 3, "192.0.2.4")
	eventually(t, "fixed zone served", func() bool { return listed("192.0.2.4") })
}

func TestDnsdFlags(t *testing.T) {
	for _, c := range []struct {
		args []string
		code int
	}{
		{[]string{"dnsd", "-h"}, 0},
		{[]string{"dnsd"}, 2},
		{[]string{"dnsd", "--zone", "x"}, 2},
		{[]string{"dnsd", "--zone-file", "f", "--zone", "x", "--type", "dnset"}, 2},
		{[]string{"dnsd", "--bogus"}, 2},
		{[]string{"dnsd", "--zone-file", filepath.Join(t.TempDir(), "missing"), "--zone", "x", "--dns", "127.0.0.1:0"}, 1},
	} {
		var out, errb bytes.Buffer
		if got := realMain(c.args, &out, &errb); got != c.code {
			t.Errorf("%v: exit %d, want %d (%s)", c.args, got, c.code, errb.String())
		}
	}
}

func TestDNSServerConfig(t *testing.T) {
	good := func(toml string, check func(c Config) bool) {
		t.Helper()
		c, err := parseConfig([]byte(toml))
		if err != nil {
			t.Errorf("%q: %v", toml, err)
			return
		}
		if !check(c) {
			t.Errorf("%q: %+v", toml, c.dnsConfig())
		}
	}
	bad := func(toml string) {
		t.Helper()
		if _, err := parseConfig([]byte(toml)); err == nil {
			t.Errorf("%q accepted", toml)
		}
	}
	good("", func(c Config) bool {
		d := c.dnsConfig()
		return d.RRL.Rate == 20000 && len(d.RRL.Exempt) == 2 && !d.Cookies && d.ACL.Empty()
	})
	good("[dns_server]\ncookies = true\ncookie_secret = \"000102030405060708090a0b0c0d0e0f\"\nallow = [\"192.0.2.0/24\"]\ndeny = [\"192.0.2.7\"]\n[dns_server.rrl]\nrate = 0\n",
		func(c Config) bool {
			d := c.dnsConfig()
			return d.Cookies && len(d.CookieSecret) == 16 && len(d.ACL.Allow) == 1 && len(d.ACL.Deny) == 1 && d.RRL.Rate == 0
		})
	good("[dns_server.rrl]\nrate = 500\nslip = 0\nexempt = []\n", func(c Config) bool {
		d := c.dnsConfig()
		return d.RRL.Rate == 500 && d.RRL.Slip == 0 && d.RRL.SlipSet && len(d.RRL.Exempt) == 0
	})
	bad("[dns_server]\ncookie_secret = \"abc\"\n")
	bad("[dns_server]\nallow = [\"not-a-net\"]\n")
	bad("[dns_server]\nudp_size = 100\n")
	bad("[dns_server.rrl]\nipv6_prefix = 80\n")
	bad("[dns_server.rrl]\nbogus = 1\n")
}
