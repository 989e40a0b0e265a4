package main

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/blowback-dnsbl/blowback/listing"
	"github.com/blowback-dnsbl/blowback/scoring"
	"github.com/blowback-dnsbl/blowback/zones"
)

// ExportConfig is the [export] table.
type ExportConfig struct{}

func defaultExportConfig() ExportConfig { return ExportConfig{} }

func (e *ExportConfig) validate() error { return nil }

func (c *Config) listingConfig(pol scoring.Policy) listing.Config {
	return listing.Config{Zone: c.Zone, TXT: c.txt(), TTL: time.Duration(c.DNSCfg.TTL), Policy: pol}
}

func (c *Config) soa() zones.SOA {
	return zones.SOA{NS: c.DNSCfg.NS, Hostmaster: c.DNSCfg.Hostmaster,
		TTL: uint32(time.Duration(c.DNSCfg.TTL) / time.Second), Minimum: uint32(time.Duration(c.DNSCfg.NegTTL) / time.Second)}
}

// subscribeZones registers what follows every new snapshot (exports).
func (n *node) subscribeZones() {
	if n.cfg.ExportDir != "" {
		n.eng.Subscribe(newExporter(n.cfg, n.log).update)
	}
}

// zoneComponents are the zone-distribution components started after DNS.
func (n *node) zoneComponents() []component { return nil }

// exporter keeps <zone>.rbldnsd and <zone>.zone current in the export dir,
// at most once a second.
type exporter struct {
	cfg  Config
	log  *slog.Logger
	mu   sync.Mutex
	last time.Time
	next *zones.Snapshot
	tmr  *time.Timer
}

func newExporter(cfg Config, log *slog.Logger) *exporter {
	return &exporter{cfg: cfg, log: log.With("pkg", "export")}
}

func (e *exporter) update(s *zones.Snapshot) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.next = s
	if e.tmr != nil {
		return // a write is scheduled; it will take the newest snapshot
	}
	wait := time.Until(e.last.Add(time.Second))
	if wait < 0 {
		wait = 0
	}
	e.tmr = time.AfterFunc(wait, e.write)
}

func (e *exporter) write() {
	e.mu.Lock()
	s := e.next
	e.tmr = nil
	e.last = time.Now()
	e.mu.Unlock()
	if err := os.MkdirAll(e.cfg.ExportDir, 0o755); err != nil {
		e.log.Error("export dir", "err", err)
		return
	}
	base := filepath.Join(e.cfg.ExportDir, zones.CanonicalZone(e.cfg.Zone))
	for _, f := range []struct {
		path string
		fmt  zones.Format
	}{{base + ".rbldnsd", zones.FormatRbldnsd}, {base + ".zone", zones.FormatBIND}} {
		if err := zones.WriteFileAtomic(f.path, func(w io.Writer) error { return zones.Write(w, f.fmt, s, e.cfg.soa()) }); err != nil {
			e.log.Error("export", "file", f.path, "err", err)
		}
	}
}
