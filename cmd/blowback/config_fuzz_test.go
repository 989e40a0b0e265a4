package main

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
)

// FuzzParseConfig: parseConfig never panics on any TOML; a config it
// accepts validates, turns into every component's configuration without
// panicking, and survives a TOML round trip unchanged in meaning.
func FuzzParseConfig(f *testing.F) {
	for _, s := range []string{
		"",
		"zone = \"bl.example\"\ntrap_domains = [\"trap.example\"]\n",
		"[trap]\nmax_connections = 10\nread_timeout = \"3s\"\nproxy_trusted = [\"10.0.0.0/8\", \"192.0.2.1\"]\n",
		"[dns_server]\nudp_size = 4096\nallow = [\"127.0.0.0/8\"]\n[dns_server.rrl]\nrate = 5\nslip = 0\n",
		"[policy]\nhalf_life = \"14d\"\nlist_threshold = 2.5\n[policy.weights]\nbounce = 1\n",
		"[store]\nretention = \"2w\"\nmemtable_mb = 1\nlow_memory = true\n",
		"[export]\nallow_transfer = [\"192.0.2.0/24\"]\n[[export.tsig]]\nname = \"k\"\nsecret = \"c2VjcmV0\"\n",
		"[web]\ndelist_per_requester_per_hour = 0\n",
		"[forward]\nurl = \"https://central.example/\"\ntoken = \"t\"\n",
		"unknown = 1\n",
		"[trap\n",
	} {
		f.Add(s)
	}
	for _, p := range []string{"../../deploy/blowback.toml"} {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(string(b))
		}
	}
	f.Fuzz(func(t *testing.T, s string) {
		// Files named in a config are read at validation: keep the fuzzer
		// off devices and kernel files.
		if strings.Contains(s, "/dev") || strings.Contains(s, "/proc") || strings.Contains(s, "/sys") {
			return
		}
		c, err := parseConfig([]byte(s))
		if err != nil {
			return
		}
		if err := c.validate(); err != nil {
			t.Fatalf("accepted config does not validate: %v", err)
		}
		if _, err := c.policy(); err != nil {
			t.Logf("policy: %v", err)
		}
		_ = c.dnsConfig()
		_ = c.storeOptions()
		_ = c.webConfig(nil)
		var b strings.Builder
		if err := toml.NewEncoder(&b).Encode(c); err != nil {
			return // e.g. NaN weights encode but the encoder may refuse some values
		}
		c2, err := parseConfig([]byte(b.String()))
		if err != nil {
			t.Fatalf("re-encoded config refused: %v\n%s", err, b.String())
		}
		if c2.Zone != c.Zone || c2.Data != c.Data || len(c2.TrapDomains) != len(c.TrapDomains) || c2.Trap.MaxConnections != c.Trap.MaxConnections {
			t.Fatalf("round trip changed the config:\n%+v\n%+v", c, c2)
		}
	})
}

// FuzzParseDuration: what parseDuration accepts is never negative ("NaNd"
// and "1e30d" once came back as large negative durations).
func FuzzParseDuration(f *testing.F) {
	for _, s := range []string{"90s", "12h", "28d", "2w", "1.5d", "-1d", "1e400d", "NaNd", "1e30d", " 3m ", "d", "1h30m"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := parseDuration(s)
		if err == nil && d < 0 {
			t.Fatalf("parseDuration(%q) = %v", s, time.Duration(d))
		}
	})
}
