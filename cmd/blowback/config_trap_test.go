package main

import (
	"net/netip"
	"testing"
	"time"
)

func TestTrapConfig(t *testing.T) {
	c := mustParse(t, "")
	tc, err := c.trapConfig()
	if err != nil {
		t.Fatal(err)
	}
	if tc.TLS == nil || len(tc.TLS.Certificates) != 1 {
		t.Error("STARTTLS is on by default with a self-signed certificate")
	}
	if tc.MaxConns != 1000 || tc.MaxConnsPerIP != 20 || tc.ConnRatePerIP != 300 || tc.SessionTimeout != 10*time.Minute ||
		tc.MaxMessageBytes != 10<<20 || tc.MaxCommands != 1000 || tc.MaxErrors != 20 || tc.RejectAfterData {
		t.Errorf("defaults %+v", tc)
	}
	// Issue 13: DATA rate and per-prefix caps (0: the trap's default, 5 x per address).
	if tc.DataMinRate != 500 || tc.DataRateWindow != 10*time.Second || tc.DataRateGrace != 10*time.Second ||
		tc.MaxConnsPer24 != 0 || tc.MaxConnsPer48 != 0 || tc.MaxCalloutsPerConn != 1 || tc.QuarantineDir == "" {
		t.Errorf("issue 13 defaults %+v", tc)
	}

	c = mustParse(t, `
[trap]
max_connections = 50
max_connections_per_ip = 2
connection_rate_per_ip = 0
session_timeout = "90s"
reject_after_data = true
starttls = false
proxy_trusted = ["10.0.0.0/8", "192.0.2.1"]
`)
	tc, err = c.trapConfig()
	if err != nil {
		t.Fatal(err)
	}
	want := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.0.2.1/32")}
	if tc.TLS != nil || tc.MaxConns != 50 || tc.MaxConnsPerIP != 2 || tc.ConnRatePerIP >= 0 || tc.SessionTimeout != 90*time.Second ||
		!tc.RejectAfterData || len(tc.ProxyTrusted) != 2 || tc.ProxyTrusted[0] != want[0] || tc.ProxyTrusted[1] != want[1] {
		t.Errorf("overrides %+v", tc)
	}

	var bad []string
	for _, setting := range []string{
		"max_connections = 0", "max_errors = -1", "connection_rate_per_ip = -5", "read_timeout = \"0s\"",
		"max_line_length = 100", "proxy_trusted = [\"not-an-ip\"]", "data_min_rate = -1", "max_connections_per_48 = -2",
		"data_rate_window = \"0s\"", "max_callouts_per_connection = 0", "tls_cert_file = \"/x.pem\"", "no_such_key = 1",
	} {
		bad = append(bad, "[trap]\n"+setting+"\n")
	}
	refusedConfigs(t, "trap", bad...)
}

// TestSpoolCapConfig: the spool's per-unit and per-network caps come from
// [forward] (the central store's defaults) with [store] unit_window.
func TestSpoolCapConfig(t *testing.T) {
	c := mustParse(t, "")
	o := c.spoolOptions(nil)
	if o.UnitMaxEvents != 500 || o.UnitMaxRawBytes != 16<<20 || o.NetMaxEvents != 8000 || o.NetMaxRawBytes != 256<<20 || o.UnitWindow != time.Hour {
		t.Errorf("defaults %+v", o)
	}
	c = mustParse(t, "[store]\nunit_window = \"10m\"\n[forward]\nspool_net_max_events = 0\nspool_net_max_raw_mb = 3\n")
	o = c.spoolOptions(nil)
	if o.NetMaxEvents != 0 || o.NetMaxRawBytes != 3<<20 || o.UnitMaxEvents != 500 || o.UnitWindow != 10*time.Minute {
		t.Errorf("overrides %+v", o)
	}
	refusedConfigs(t, "forward", "[forward]\nspool_net_max_events = -1\n", "[forward]\nspool_net_max_raw_mb = -1\n")
}
