package main

import (
	"time"

	"github.com/blowback-dnsbl/blowback/dnsd"
)

// DNSConfig is the [dns_server] table.
type DNSConfig struct {
	NS         []string `toml:"ns"`
	Hostmaster string   `toml:"hostmaster"`
	TTL        Duration `toml:"ttl"`
	NegTTL     Duration `toml:"negative_ttl"`
}

func defaultDNSConfig() DNSConfig {
	return DNSConfig{TTL: Duration(300 * time.Second), NegTTL: Duration(60 * time.Second)}
}

func (d *DNSConfig) validate() error { return nil }

// dnsConfig is the DNS server's configuration.
func (c *Config) dnsConfig() dnsd.Config {
	return dnsd.Config{NS: c.DNSCfg.NS, Hostmaster: c.DNSCfg.Hostmaster,
		TTL: time.Duration(c.DNSCfg.TTL), NegTTL: time.Duration(c.DNSCfg.NegTTL)}
}
