package main

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/blowback-dnsbl/blowback/internal/netx"
)

// Duration is a time.Duration that reads "90s", "12h", "28d" or "2w" in TOML.
type Duration time.Duration

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := parseDuration(string(b))
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

func parseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	for suffix, unit := range map[string]time.Duration{"d": 24 * time.Hour, "w": 7 * 24 * time.Hour} {
		if n, ok := strings.CutSuffix(s, suffix); ok {
			f, err := strconv.ParseFloat(n, 64)
			if err != nil || math.IsNaN(f) || f < 0 || f*float64(unit) >= math.MaxInt64 {
				return 0, fmt.Errorf("bad duration %q", s)
			}
			return time.Duration(f * float64(unit)), nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("bad duration %q", s)
	}
	return d, nil
}

// Config is the TOML configuration of `blowback run` (and `trap`). Every
// field has a default (defaultConfig); the flags of CONTRACT.md override.
type Config struct {
	Data        string   `toml:"data"`
	SMTP        string   `toml:"smtp"`
	DNS         string   `toml:"dns"`
	HTTP        string   `toml:"http"`
	Zone        string   `toml:"zone"`
	TrapDomains []string `toml:"trap_domains"`
	ExportDir   string   `toml:"export_dir"`
	PublicURL   string   `toml:"public_url"`
	TXT         string   `toml:"txt"`
	LogLevel    string   `toml:"log_level"`
	LogFormat   string   `toml:"log_format"` // "text" or "json"
	// AdminTokens; when empty, run generates one into <data>/admin.token.
	AdminTokens []string `toml:"admin_tokens"`
	// NodeTokens: trap node id -> token, for POST /api/v1/evidence.
	NodeTokens map[string]string `toml:"node_tokens"`

	// Tables; each is defined, defaulted and validated in its config_*.go file.
	Trap    TrapConfig    `toml:"trap"`       // config_trap.go
	DNSCfg  DNSConfig     `toml:"dns_server"` // config_dns.go
	Policy  PolicyConfig  `toml:"policy"`     // config_policy.go
	Store   StoreConfig   `toml:"store"`      // config_policy.go
	Export  ExportConfig  `toml:"export"`     // config_zones.go
	Web     WebConfig     `toml:"web"`        // config_web.go
	Forward ForwardConfig `toml:"forward"`    // config_forward.go
	// The list's card and the operator self-test (config_operator.go).
	Card     CardConfig     `toml:"card"`
	SelfTest SelfTestConfig `toml:"selftest"`
	Cluster  ClusterConfig  `toml:"cluster"` // cmd_cluster.go
}

func defaultConfig() Config {
	return Config{
		Data:        "./blowback-data",
		SMTP:        "127.0.0.1:2525",
		DNS:         "127.0.0.1:5353",
		HTTP:        "127.0.0.1:8080",
		Zone:        "bl.blowback.test",
		TrapDomains: []string{"trap.blowback.test"},
		LogLevel:    "info",
		LogFormat:   "text",
		Trap:        defaultTrapConfig(),
		DNSCfg:      defaultDNSConfig(),
		Policy:      defaultPolicyConfig(),
		Store:       defaultStoreConfig(),
		Export:      defaultExportConfig(),
		Web:         defaultWebConfig(),
		Forward:     defaultForwardConfig(),
	}
}

// loadConfig reads a TOML file over the defaults; unknown keys are an error.
func loadConfig(path string) (Config, error) {
	c := defaultConfig()
	if path == "" {
		return c, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return c, err
	}
	return parseConfig(b)
}

func parseConfig(b []byte) (Config, error) {
	c := defaultConfig()
	md, err := toml.Decode(string(b), &c)
	if err != nil {
		return c, fmt.Errorf("config: %w", err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		return c, fmt.Errorf("config: unknown key %q", und[0].String())
	}
	return c, c.validate()
}

func (c *Config) validate() error {
	var errs []error
	if c.Zone == "" {
		errs = append(errs, errors.New("zone must not be empty"))
	}
	if len(c.TrapDomains) == 0 {
		errs = append(errs, errors.New("at least one trap domain is needed"))
	}
	errs = append(errs, c.Trap.validate(), c.DNSCfg.validate(), c.Policy.validate(), c.Store.validate(),
		c.Export.validate(), c.Web.validate(), c.Forward.validate(), c.SelfTest.validate(), c.Cluster.validate())
	switch c.LogFormat {
	case "text", "json":
	default:
		errs = append(errs, fmt.Errorf("log_format %q: want text or json", c.LogFormat))
	}
	return errors.Join(errs...)
}

// prefixes parses ss with netx.ParsePrefix; an error names field, the
// setting they come from.
func prefixes(field string, ss []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range ss {
		p, err := netx.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", field, err)
		}
		out = append(out, p)
	}
	return out, nil
}

func (c *Config) txt() string {
	if c.TXT != "" {
		return c.TXT
	}
	return "Backscatter from $ hit blowback traps; see " + c.publicURL() + "/lookup?ip=$"
}

func (c *Config) publicURL() string {
	if c.PublicURL != "" {
		return strings.TrimSuffix(c.PublicURL, "/")
	}
	if c.Forward.TLSCert != "" {
		return "https://" + c.HTTP
	}
	return "http://" + c.HTTP
}
