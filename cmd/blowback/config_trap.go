package main

import (
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"time"

	"github.com/blowback-dnsbl/blowback/trap"
)

// TrapConfig is the [trap] table. Every limit is on and must be positive,
// except connection_rate_per_ip, where 0 turns the rate limit off.
type TrapConfig struct {
	Hostname string `toml:"hostname"`
	Node     string `toml:"node"`

	MaxMessageBytes int64 `toml:"max_message_bytes"` // 552 5.3.4 past it
	KeepBytes       int64 `toml:"keep_bytes"`        // kept for classification and the store
	MaxRecipients   int   `toml:"max_recipients"`    // per transaction, 452 4.5.3 past it
	MaxLineLength   int   `toml:"max_line_length"`   // 500 past it, and the connection closes

	ReadTimeout Duration `toml:"read_timeout"` // per command
	// StressReadTimeout replaces read_timeout while 3/4 of max_connections
	// are open (idle floods drain fast).
	StressReadTimeout Duration `toml:"stress_read_timeout"`
	WriteTimeout      Duration `toml:"write_timeout"`   // per reply
	DataTimeout       Duration `toml:"data_timeout"`    // the whole DATA transfer
	SessionTimeout    Duration `toml:"session_timeout"` // the whole connection
	// DataMinRate: slowest message transfer kept open, bytes per second
	// over each data_rate_window from data_rate_grace on (Postfix
	// smtpd_min_data_rate); 0 turns it off.
	DataMinRate    int      `toml:"data_min_rate"`
	DataRateWindow Duration `toml:"data_rate_window"`
	DataRateGrace  Duration `toml:"data_rate_grace"`

	MaxConnections       int `toml:"max_connections"`             // overall, 421 4.7.0 past it
	MaxConnectionsPerIP  int `toml:"max_connections_per_ip"`      // per IPv4 address or IPv6 /64
	MaxConnectionsPer24  int `toml:"max_connections_per_24"`      // per IPv4 /24; 0: 5 x max_connections_per_ip
	MaxConnectionsPer48  int `toml:"max_connections_per_48"`      // per IPv6 /48; 0: 5 x max_connections_per_ip
	ConnectionRatePerIP  int `toml:"connection_rate_per_ip"`      // new connections per minute; 0 = off
	ConnectionBurstPerIP int `toml:"connection_burst_per_ip"`     // bucket size of that rate
	MaxCommands          int `toml:"max_commands"`                // per connection
	MaxErrors            int `toml:"max_errors"`                  // 4xx/5xx replies per connection
	MaxCalloutsPerConn   int `toml:"max_callouts_per_connection"` // callout events recorded per connection

	RejectAfterData bool `toml:"reject_after_data"` // 550 instead of 250 after DATA (evidence kept)

	// STARTTLS: on by default with a self-signed certificate made at start;
	// tls_cert_file and tls_key_file (PEM) give a real one.
	StartTLS    bool   `toml:"starttls"`
	TLSCertFile string `toml:"tls_cert_file"`
	TLSKeyFile  string `toml:"tls_key_file"`

	// ProxyTrusted: addresses or CIDRs of load balancers that send a PROXY
	// protocol v1/v2 header (they must). Anyone else sending one is refused.
	ProxyTrusted       []string `toml:"proxy_trusted"`
	ProxyHeaderTimeout Duration `toml:"proxy_header_timeout"`
}

func defaultTrapConfig() TrapConfig {
	return TrapConfig{
		Hostname:             "blowback-trap",
		MaxMessageBytes:      10 << 20,
		KeepBytes:            1 << 20,
		MaxRecipients:        50,
		MaxLineLength:        2000,
		ReadTimeout:          Duration(60 * time.Second),
		StressReadTimeout:    Duration(10 * time.Second),
		WriteTimeout:         Duration(60 * time.Second),
		DataTimeout:          Duration(5 * time.Minute),
		SessionTimeout:       Duration(10 * time.Minute),
		DataMinRate:          500,
		DataRateWindow:       Duration(10 * time.Second),
		DataRateGrace:        Duration(10 * time.Second),
		MaxConnections:       1000,
		MaxConnectionsPerIP:  20,
		ConnectionRatePerIP:  300,
		ConnectionBurstPerIP: 60,
		MaxCommands:          1000,
		MaxErrors:            20,
		MaxCalloutsPerConn:   1,
		StartTLS:             true,
		ProxyHeaderTimeout:   Duration(5 * time.Second),
	}
}

func (t *TrapConfig) validate() error {
	var errs []error
	for name, v := range map[string]int64{
		"max_message_bytes": t.MaxMessageBytes, "keep_bytes": t.KeepBytes, "max_recipients": int64(t.MaxRecipients),
		"max_line_length": int64(t.MaxLineLength), "max_connections": int64(t.MaxConnections),
		"max_connections_per_ip": int64(t.MaxConnectionsPerIP), "connection_burst_per_ip": int64(t.ConnectionBurstPerIP),
		"max_commands": int64(t.MaxCommands), "max_errors": int64(t.MaxErrors),
		"max_callouts_per_connection": int64(t.MaxCalloutsPerConn),
		"data_rate_window":            int64(t.DataRateWindow), "data_rate_grace": int64(t.DataRateGrace),
		"read_timeout": int64(t.ReadTimeout), "stress_read_timeout": int64(t.StressReadTimeout), "write_timeout": int64(t.WriteTimeout), "data_timeout": int64(t.DataTimeout),
		"session_timeout": int64(t.SessionTimeout), "proxy_header_timeout": int64(t.ProxyHeaderTimeout),
	} {
		if v <= 0 {
			errs = append(errs, fmt.Errorf("trap.%s must be positive", name))
		}
	}
	if t.MaxConnectionsPer24 < 0 || t.MaxConnectionsPer48 < 0 {
		errs = append(errs, errors.New("trap.max_connections_per_24 and _per_48 must be 0 (5 x max_connections_per_ip) or positive"))
	}
	if t.DataMinRate < 0 {
		errs = append(errs, errors.New("trap.data_min_rate must be 0 (off) or positive"))
	}
	if t.ConnectionRatePerIP < 0 {
		errs = append(errs, errors.New("trap.connection_rate_per_ip must be 0 (off) or positive"))
	}
	if t.MaxLineLength > 0 && t.MaxLineLength < 512 {
		errs = append(errs, errors.New("trap.max_line_length below 512 breaks RFC 5321 §4.5.3.1.4 commands"))
	}
	if (t.TLSCertFile == "") != (t.TLSKeyFile == "") {
		errs = append(errs, errors.New("trap.tls_cert_file and trap.tls_key_file go together"))
	}
	if _, err := t.proxyTrusted(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func (t *TrapConfig) proxyTrusted() ([]netip.Prefix, error) {
	return prefixes("trap.proxy_trusted", t.ProxyTrusted)
}

// trapConfig is the trap listener's configuration; it loads or makes the
// STARTTLS certificate.
func (c *Config) trapConfig() (trap.Config, error) {
	t := c.Trap
	proxies, err := t.proxyTrusted()
	if err != nil {
		return trap.Config{}, err
	}
	rate := t.ConnectionRatePerIP
	if rate == 0 {
		rate = -1 // trap.Config: negative is off, zero the default
	}
	dataRate := t.DataMinRate
	if dataRate == 0 {
		dataRate = -1 // trap.Config: negative is off
	}
	tc := trap.Config{Domains: c.TrapDomains, Hostname: t.Hostname, Node: t.Node,
		MaxMessageBytes: t.MaxMessageBytes, KeepBytes: t.KeepBytes, MaxRecipients: t.MaxRecipients, MaxLineLength: t.MaxLineLength,
		ReadTimeout: time.Duration(t.ReadTimeout), StressReadTimeout: time.Duration(t.StressReadTimeout), WriteTimeout: time.Duration(t.WriteTimeout),
		DataTimeout: time.Duration(t.DataTimeout), SessionTimeout: time.Duration(t.SessionTimeout),
		DataMinRate: dataRate, DataRateWindow: time.Duration(t.DataRateWindow), DataRateGrace: time.Duration(t.DataRateGrace),
		MaxConns: t.MaxConnections, MaxConnsPerIP: t.MaxConnectionsPerIP, ConnRatePerIP: rate, ConnBurst: t.ConnectionBurstPerIP,
		MaxConnsPer24: t.MaxConnectionsPer24, MaxConnsPer48: t.MaxConnectionsPer48,
		MaxCommands: t.MaxCommands, MaxErrors: t.MaxErrors, MaxCalloutsPerConn: t.MaxCalloutsPerConn,
		ProxyTrusted: proxies, ProxyHeaderTimeout: time.Duration(t.ProxyHeaderTimeout),
		RejectAfterData: t.RejectAfterData}
	if c.Data != "" {
		tc.QuarantineDir = filepath.Join(c.Data, "quarantine")
	}
	if t.StartTLS || t.TLSCertFile != "" {
		if tc.TLS, err = trap.TLSConfig(t.TLSCertFile, t.TLSKeyFile, t.Hostname); err != nil {
			return trap.Config{}, err
		}
	}
	return tc, nil
}
