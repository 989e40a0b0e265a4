package main

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/blowback-dnsbl/blowback/zones"
	"github.com/blowback-dnsbl/blowback/zones/distrib"
	"github.com/blowback-dnsbl/blowback/zones/signing"
)

// keypair makes a signing key pair with `blowback keygen`.
func keypair(t *testing.T) (secret, pub string) {
	t.Helper()
	secret = filepath.Join(t.TempDir(), "export.key")
	var out, errb bytes.Buffer
	if code := realMain([]string{"keygen", "--out", secret}, &out, &errb); code != 0 {
		t.Fatalf("keygen: %d %s", code, errb.String())
	}
	if code := realMain([]string{"keygen", "--out", secret}, &out, &errb); code != 1 {
		t.Errorf("keygen over an existing key: exit %d", code)
	}
	return secret, secret + ".pub"
}

// signedExport runs a distributor that exports to dir every 10 ms (any
// shrink allowed), signed with a new key pair (keypair), until the test
// ends.
func signedExport(t *testing.T, dir string) (d *distrib.Distributor, secret, pub string) {
	t.Helper()
	secret, pub = keypair(t)
	cfg := defaultConfig()
	cfg.ExportDir = dir
	cfg.Export.Interval = Duration(10 * time.Millisecond)
	cfg.Export.SignKey = secret
	cfg.Export.MaxShrink = 1
	d, err := newDistributor(cfg, slog.New(slog.DiscardHandler), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Stop(context.Background()) })
	return d, secret, pub
}

func TestVerifyCommand(t *testing.T) {
	dir := t.TempDir()
	d, secret, pub := signedExport(t, dir)
	d.Update(exportZone(31, 40))
	rbl := filepath.Join(dir, "bl.blowback.test.rbldnsd")
	bind := filepath.Join(dir, "bl.blowback.test.zone")
	eventually(t, "signed exports", func() bool {
		_, err1 := os.Stat(bind + signing.Suffix)
		return headerOf(t, bind).Serial == 31 && err1 == nil
	})
	run := func(args ...string) (int, string) {
		var out, errb bytes.Buffer
		code := realMain(append([]string{"verify"}, args...), &out, &errb)
		return code, out.String() + errb.String()
	}
	pk, _ := signing.LoadPublicKey(pub)
	for _, c := range []struct {
		args []string
		code int
		says string
	}{
		{[]string{rbl, "--key", pub}, 0, "zone bl.blowback.test serial 31"},
		{[]string{bind, "--key", pk.String()}, 0, "serial 31"},
		{[]string{rbl}, 2, "no --key"},
		{[]string{"--key", pub}, 2, "one FILE"},
		{[]string{filepath.Join(dir, "missing"), "--key", pub}, 2, "no such file"},
		{[]string{rbl, "--key", filepath.Join(dir, "nokey")}, 2, "bad key"},
		{[]string{rbl, "--nope"}, 2, ""},
	} {
		code, out := run(c.args...)
		if code != c.code || !strings.Contains(out, c.says) {
			t.Errorf("verify %v: exit %d, want %d with %q:\n%s", c.args, code, c.code, c.says, out)
		}
	}
	// The config's sign_key names the public key by default.
	conf := filepath.Join(dir, "b.toml")
	writeFile(t, conf, "[export]\nsign_key = "+strconv.Quote(secret)+"\n", 0o644)
	if code, out := run(rbl, "--config", conf); code != 0 {
		t.Errorf("verify with the config's key: %d %s", code, out)
	}
	// A changed file, an unsigned one: exit 1.
	d.Stop(context.Background())
	b, _ := os.ReadFile(rbl)
	os.WriteFile(rbl, append(b, "192.0.2.66\n"...), 0o644)
	if code, out := run(rbl, "--key", pub); code != 1 || !strings.Contains(out, "BAD") {
		t.Errorf("changed file: exit %d %s", code, out)
	}
	os.Remove(bind + signing.Suffix)
	if code, out := run(bind, "--key", pub); code != 1 || !strings.Contains(out, "no signature") {
		t.Errorf("unsigned file: exit %d %s", code, out)
	}
}

// `blowback dnsd --verify-key` serves only signed files and never goes
// back to an older serial; a refused file leaves the last good zone in
// service.
func TestDnsdVerifyKey(t *testing.T) {
	secret, pub := keypair(t)
	sg, err := signing.LoadSigner(secret)
	if err != nil {
		t.Fatal(err)
	}
	pk, _ := signing.LoadPublicKey(pub)
	dir := t.TempDir()
	file := filepath.Join(dir, "bl.mirror.test.rbldnsd")
	signed := func(serial uint32, ip string) {
		writeZone(t, file, serial, ip)
		if err := sg.SignFile(file, "bl.mirror.test", serial); err != nil {
			t.Fatal(err)
		}
	}
	opts := dnsdOptions{file: file, zone: "bl.mirror.test", dns: "127.0.0.1:0", metrics: "127.0.0.1:0", poll: 20 * time.Millisecond, verify: &pk}
	log := slog.New(slog.DiscardHandler)

	// An unsigned file at start: dnsd refuses to serve it.
	writeZone(t, file, 10, "192.0.2.1")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := serveDnsd(ctx, opts, defaultConfig(), log, nil, nil); !errors.Is(err, signing.ErrUnsigned) {
		t.Fatalf("unsigned file at start: %v", err)
	}

	signed(10, "192.0.2.1")
	a := startDnsd(t, opts)
	listed := func(ip string) bool { t.Helper(); return checkZone(t, a.dns.String(), "bl.mirror.test", ip).Listed }
	refusals := func() int {
		n, _ := scrapeMetric(t, nil, "http://"+a.metrics.String()+"/metrics", "blowback_dns_zone_reloads_total", `result="error"`)
		return int(n)
	}
	if !listed("192.0.2.1") {
		t.Fatal("signed zone not served")
	}
	// A newer but unsigned file: refused, the signed zone stays.
	writeZone(t, file, 11, "192.0.2.2")
	os.Remove(file + signing.Suffix)
	n := refusals()
	eventually(t, "unsigned file refused", func() bool { return refusals() > n })
	if !listed("192.0.2.1") || listed("192.0.2.2") {
		t.Error("an unsigned file replaced the zone")
	}
	// A signed file with an older serial (a replayed export): refused.
	signed(9, "192.0.2.3")
	n = refusals()
	eventually(t, "older file refused", func() bool { return refusals() > n })
	if !listed("192.0.2.1") || listed("192.0.2.3") {
		t.Error("an older signed file replaced the zone")
	}
	// A signed, newer file: served.
	signed(12, "192.0.2.4")
	eventually(t, "newer signed file served", func() bool { return listed("192.0.2.4") })
}

// The check behind --verify-key says why it refuses.
func TestSignedCheck(t *testing.T) {
	secret, pub := keypair(t)
	sg, _ := signing.LoadSigner(secret)
	pk, _ := signing.LoadPublicKey(pub)
	file := filepath.Join(t.TempDir(), "bl.mirror.test.rbldnsd")
	writeZone(t, file, 9, "192.0.2.1")
	sg.SignFile(file, "bl.mirror.test", 9)
	cur := &zones.Current{}
	check := func(zone string) error {
		f, err := os.Open(file)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		return signedCheck(pk, file, zone, cur)(f)
	}
	if err := check("bl.mirror.test"); err != nil {
		t.Errorf("first load: %v", err)
	}
	if err := check("bl.other.test"); !errors.Is(err, signing.ErrMismatch) {
		t.Errorf("other zone: %v", err)
	}
	cur.Store(zones.Build(zones.Info{Zone: "bl.mirror.test", Serial: 10}, nil))
	if err := check("bl.mirror.test"); !errors.Is(err, signing.ErrMismatch) || !strings.Contains(err.Error(), "older") {
		t.Errorf("older serial: %v", err)
	}
	cur.Store(zones.Build(zones.Info{Zone: "bl.mirror.test", Serial: 9}, nil))
	if err := check("bl.mirror.test"); err != nil {
		t.Errorf("same serial (a reload): %v", err)
	}
}
