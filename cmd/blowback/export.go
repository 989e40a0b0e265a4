package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/blowback-dnsbl/blowback/dnsd"
	"github.com/blowback-dnsbl/blowback/listing"
	"github.com/blowback-dnsbl/blowback/scoring"
	"github.com/blowback-dnsbl/blowback/zones"
	"github.com/blowback-dnsbl/blowback/zones/distrib"
	"github.com/blowback-dnsbl/blowback/zones/signing"
)

// ExportConfig is the [export] table: the files kept in --export-dir, the
// sanity guard in front of every mirror, zone transfer and NOTIFY.
type ExportConfig struct {
	// Interval is the least time between two exports (default 1s).
	Interval Duration `toml:"interval"`
	// Plain also writes <zone>.txt (one address or CIDR and its codes per line).
	Plain bool `toml:"plain"`
	// Glue: addresses of in-zone name servers ("ns1.<zone>" = ["192.0.2.53"]).
	// An in-zone NS without glue gets the DNS listen address when it is a
	// specific one.
	Glue map[string][]string `toml:"glue"`

	// MaxShrink is the largest fraction of entries one export may lose
	// (default 0.5; 1 turns the check off). MinPrefix4/MinPrefix6 are the
	// widest prefixes published (default 16 and 32). AllowEmpty lets a zone
	// that had entries go empty. Force publishes whatever the guard says.
	MaxShrink  float64 `toml:"max_shrink"`
	MinPrefix4 int     `toml:"min_prefix4"`
	MinPrefix6 int     `toml:"min_prefix6"`
	AllowEmpty bool    `toml:"allow_empty"`
	Force      bool    `toml:"force"`

	// AllowTransfer lists the CIDRs that may AXFR/IXFR the zone over TCP;
	// empty: transfers are refused.
	AllowTransfer []string `toml:"allow_transfer"`
	// TSIG keys; RequireTSIG refuses unsigned transfers.
	TSIG        []TSIGKeyConfig `toml:"tsig"`
	RequireTSIG bool            `toml:"require_tsig"`
	// Notify lists secondaries (host:port) told of every change (RFC 1996),
	// at most once per NotifyInterval (default 5s); NotifyKey signs them.
	Notify         []string `toml:"notify"`
	NotifyInterval Duration `toml:"notify_interval"`
	NotifyKey      string   `toml:"notify_key"`
	// JournalChanges bounds the changes kept for IXFR (default 100000).
	JournalChanges int `toml:"journal_changes"`
	// SignKey is a minisign secret key file (blowback keygen): every file
	// in --export-dir then gets a detached signature, FILE.minisig.
	SignKey string `toml:"sign_key"`
}

// TSIGKeyConfig is one [[export.tsig]] key.
type TSIGKeyConfig struct {
	Name      string `toml:"name"`
	Algorithm string `toml:"algorithm"` // default hmac-sha256
	Secret    string `toml:"secret"`    // base64
}

func defaultExportConfig() ExportConfig {
	return ExportConfig{Interval: Duration(time.Second), NotifyInterval: Duration(5 * time.Second)}
}

func (e *ExportConfig) validate() error {
	var errs []error
	if e.MaxShrink < 0 || e.MaxShrink > 1 {
		errs = append(errs, fmt.Errorf("export.max_shrink %v: want 0..1", e.MaxShrink))
	}
	if e.MinPrefix4 < 0 || e.MinPrefix4 > 32 || e.MinPrefix6 < 0 || e.MinPrefix6 > 64 {
		errs = append(errs, errors.New("export.min_prefix4 wants 0..32, export.min_prefix6 0..64"))
	}
	if _, err := e.allow(); err != nil {
		errs = append(errs, err)
	}
	if _, err := e.glue(); err != nil {
		errs = append(errs, err)
	}
	for _, n := range e.Notify {
		if _, _, err := net.SplitHostPort(n); err != nil {
			errs = append(errs, fmt.Errorf("export.notify %q: want host:port", n))
		}
	}
	for _, k := range e.TSIG {
		if k.Name == "" || k.Secret == "" {
			errs = append(errs, errors.New("export.tsig: every key needs a name and a secret"))
		}
	}
	if e.RequireTSIG && len(e.TSIG) == 0 {
		errs = append(errs, errors.New("export.require_tsig without an export.tsig key"))
	}
	return errors.Join(errs...)
}

func (e *ExportConfig) allow() ([]netip.Prefix, error) {
	return prefixes("export.allow_transfer", e.AllowTransfer)
}

func (e *ExportConfig) glue() (map[string][]netip.Addr, error) {
	out := map[string][]netip.Addr{}
	for n, as := range e.Glue {
		for _, s := range as {
			a, err := netip.ParseAddr(s)
			if err != nil {
				return nil, fmt.Errorf("export.glue %s: %q is not an address", n, s)
			}
			k := zones.CanonicalZone(n)
			out[k] = append(out[k], a)
		}
	}
	return out, nil
}

func (e *ExportConfig) guard() zones.Guard {
	return zones.Guard{MaxShrink: e.MaxShrink, MinBits4: e.MinPrefix4, MinBits6: e.MinPrefix6, AllowEmpty: e.AllowEmpty}
}

// listingConfig; the last published snapshot is kept in DATA/snapshot.bin
// so that a restart serves it at once while the listing is rebuilt.
func (c *Config) listingConfig(pol scoring.Policy) listing.Config {
	lc := listing.Config{Zone: c.Zone, TXT: c.txt(), TTL: time.Duration(c.DNSCfg.TTL), Policy: pol}
	if c.Data != "" {
		lc.SnapshotFile = filepath.Join(c.Data, "snapshot.bin")
	}
	return lc
}

// soa is what the exports write at the apex: the DNS server's SOA and NS,
// and glue for in-zone name servers (named-checkzone, NSD and Knot want it).
func (c *Config) soa() zones.SOA {
	s := zones.SOA{NS: c.DNSCfg.NS, Hostmaster: c.DNSCfg.Hostmaster,
		TTL: uint32(time.Duration(c.DNSCfg.TTL) / time.Second), Minimum: uint32(time.Duration(c.DNSCfg.NegTTL) / time.Second)}
	s.Glue, _ = c.Export.glue()
	s = s.WithDefaults(c.Zone)
	var listen netip.Addr
	if host, _, err := net.SplitHostPort(c.DNS); err == nil {
		if a, err := netip.ParseAddr(host); err == nil && !a.IsUnspecified() {
			listen = a
		}
	}
	for _, n := range s.NS {
		n = zones.CanonicalZone(n)
		if strings.HasSuffix(n, "."+zones.CanonicalZone(c.Zone)) && len(s.Glue[n]) == 0 && listen.IsValid() {
			s.Glue[n] = []netip.Addr{listen}
		}
	}
	return s
}

// subscribeZones is called before the listing starts. The zone
// distribution subscribes when it starts (zoneComponents), after DNS, and
// takes the snapshot published meanwhile from the current one.
func (n *node) subscribeZones() {}

// zoneComponents are the zone-distribution components started after DNS
// and stopped before it: the exports to --export-dir and zone transfer
// (zones/distrib). The guard's baseline lives in the data dir, beside the
// store and not in it, so that it outlives a lost store.
func (n *node) zoneComponents() []component {
	ec := n.cfg.Export
	if n.cfg.ExportDir == "" && len(ec.AllowTransfer) == 0 && len(ec.Notify) == 0 {
		return nil
	}
	var d *distrib.Distributor
	return []component{{Name: "zones", Start: func(ctx context.Context) error {
		var err error
		if d, err = newDistributor(n.cfg, n.log, n.reg, n.dns); err != nil {
			return err
		}
		n.eng.Subscribe(d.Update)
		if s := n.cur.Load(); s != nil {
			d.Update(s)
		}
		return nil
	}, Stop: func(ctx context.Context) error {
		err := d.Stop(ctx)
		if n.dns != nil && (len(ec.AllowTransfer) > 0 || len(ec.Notify) > 0) {
			n.dns.StopTransfer()
		}
		return err
	}}}
}

// baselineFile keeps the export guard's baseline (zones/distrib).
func (c *Config) baselineFile() string {
	if c.Data == "" {
		return ""
	}
	return filepath.Join(c.Data, "export-baseline.json")
}

// newDistributor wires zones/distrib from the config: the export dir, the
// guard, and the DNS server's zone transfer (journal, ACL, TSIG, NOTIFY).
// srv may be nil when there is no transfer.
func newDistributor(cfg Config, log *slog.Logger, reg prometheus.Registerer, srv *dnsd.Server) (*distrib.Distributor, error) {
	ec := cfg.Export
	o := distrib.Options{Zone: cfg.Zone, Dir: cfg.ExportDir, Plain: ec.Plain, TXT: cfg.txt(), SOA: cfg.soa(),
		Guard: ec.guard(), Force: ec.Force, Interval: time.Duration(ec.Interval), Baseline: cfg.baselineFile()}
	if ec.SignKey != "" {
		sg, err := signing.LoadSigner(ec.SignKey)
		if err != nil {
			return nil, fmt.Errorf("export.sign_key: %w", err)
		}
		o.Signer = sg
	}
	if len(ec.AllowTransfer) > 0 || len(ec.Notify) > 0 {
		allow, err := ec.allow()
		if err != nil {
			return nil, err
		}
		o.Journal = zones.NewJournal(ec.JournalChanges)
		tc := dnsd.TransferConfig{Journal: o.Journal, Allow: allow, RequireTSIG: ec.RequireTSIG, Glue: o.SOA.Glue,
			Notify: ec.Notify, NotifyKey: ec.NotifyKey, NotifyInterval: time.Duration(ec.NotifyInterval)}
		for _, k := range ec.TSIG {
			tc.Keys = append(tc.Keys, dnsd.TSIGKey{Name: k.Name, Algorithm: k.Algorithm, Secret: k.Secret})
		}
		if srv != nil {
			if err := srv.SetTransfer(tc, reg); err != nil {
				return nil, err
			}
			o.ZoneChanged = srv.ZoneChanged
		}
	}
	return distrib.New(o, log, reg)
}

// checkExportGuard is the guard for `blowback export` (distrib.CheckFile).
func checkExportGuard(cfg Config, out string, s *zones.Snapshot, force bool) error {
	return distrib.CheckFile(cfg.Export.guard(), out, s, force)
}
