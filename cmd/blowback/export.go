package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/blowback-dnsbl/blowback/dnsd"
	"github.com/blowback-dnsbl/blowback/listing"
	"github.com/blowback-dnsbl/blowback/scoring"
	"github.com/blowback-dnsbl/blowback/zones"
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
	var out []netip.Prefix
	for _, s := range e.AllowTransfer {
		p, err := parsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("export.allow_transfer: %v", err)
		}
		out = append(out, p)
	}
	return out, nil
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

func (c *Config) listingConfig(pol scoring.Policy) listing.Config {
	return listing.Config{Zone: c.Zone, TXT: c.txt(), TTL: time.Duration(c.DNSCfg.TTL), Policy: pol}
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
// and stopped before it: the exports to --export-dir and zone transfer.
func (n *node) zoneComponents() []component {
	ec := n.cfg.Export
	if n.cfg.ExportDir == "" && len(ec.AllowTransfer) == 0 && len(ec.Notify) == 0 {
		return nil
	}
	var d *distributor
	return []component{{Name: "zones", Start: func(ctx context.Context) error {
		var err error
		if d, err = newDistributor(n.cfg, n.log, n.reg, n.dns); err != nil {
			return err
		}
		n.eng.Subscribe(d.update)
		if s := n.cur.Load(); s != nil {
			d.update(s)
		}
		return nil
	}, Stop: func(ctx context.Context) error { return d.stop(ctx) }}}
}

// exportMetrics; format is rbldnsd, bind or plain.
type exportMetrics struct {
	held        prometheus.Gauge
	heldTotal   prometheus.Counter
	lastSuccess prometheus.Gauge
	serial      prometheus.Gauge
	bytes       *prometheus.GaugeVec
	errors      *prometheus.CounterVec
	duration    *prometheus.HistogramVec
	panics      prometheus.Counter
}

func newExportMetrics(reg prometheus.Registerer) *exportMetrics {
	m := &exportMetrics{
		held: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "blowback_export_held_back",
			Help: "1 while the sanity guard holds back a new zone from the exports and secondaries, else 0.",
		}),
		heldTotal: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "blowback_export_held_back_total",
			Help: "Zone versions the sanity guard held back.",
		}),
		lastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "blowback_export_last_success_timestamp_seconds",
			Help: "Unix time of the last zone version published to the mirrors (files written, journal updated).",
		}),
		serial: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "blowback_export_serial",
			Help: "SOA serial of the last zone version published to the mirrors.",
		}),
		bytes: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "blowback_export_size_bytes",
			Help: "Size of the last export file written, by format.",
		}, []string{"format"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "blowback_export_errors_total",
			Help: "Export files that could not be written, by format.",
		}, []string{"format"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "blowback_export_duration_seconds",
			Help:    "Time to write an export file, by format.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 9),
		}, []string{"format"}),
		panics: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "blowback_export_panics_total",
			Help: "Panics recovered while exporting.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.held, m.heldTotal, m.lastSuccess, m.serial, m.bytes, m.errors, m.duration, m.panics)
	}
	return m
}

// distributor publishes zone versions to the mirrors: at most once per
// interval it takes the newest snapshot, checks it with the guard, writes
// the export files (temp + fsync + rename), records it in the IXFR journal
// and has the DNS server NOTIFY the secondaries.
type distributor struct {
	cfg     Config
	log     *slog.Logger
	m       *exportMetrics
	guard   zones.Guard
	soa     zones.SOA
	dns     *dnsd.Server
	journal *zones.Journal
	every   time.Duration

	mu      sync.Mutex
	next    *zones.Snapshot
	last    time.Time
	tmr     *time.Timer
	busy    sync.WaitGroup
	stopped bool
	prev    int    // entries of the last version published; -1: none known
	held    string // why the current version is held back ("" if not)
}

func newDistributor(cfg Config, log *slog.Logger, reg prometheus.Registerer, srv *dnsd.Server) (*distributor, error) {
	ec := cfg.Export
	d := &distributor{cfg: cfg, log: log.With("pkg", "export"), m: newExportMetrics(reg), guard: ec.guard(), soa: cfg.soa(),
		dns: srv, every: time.Duration(ec.Interval), prev: -1}
	if d.every <= 0 {
		d.every = time.Second
	}
	if cfg.ExportDir != "" {
		if err := zones.CheckTXT(cfg.txt()); err != nil {
			return nil, fmt.Errorf("export: %w", err)
		}
		if err := os.MkdirAll(cfg.ExportDir, 0o755); err != nil {
			return nil, fmt.Errorf("export: %w", err)
		}
		// The guard's baseline survives restarts: the export on disk.
		if h, err := zones.ReadHeaderFile(d.path(zones.FormatRbldnsd)); err == nil && h.Zone == zones.CanonicalZone(cfg.Zone) {
			d.prev = h.Entries
		}
	}
	if len(ec.AllowTransfer) > 0 || len(ec.Notify) > 0 {
		allow, err := ec.allow()
		if err != nil {
			return nil, err
		}
		d.journal = zones.NewJournal(ec.JournalChanges)
		tc := dnsd.TransferConfig{Journal: d.journal, Allow: allow, RequireTSIG: ec.RequireTSIG, Glue: d.soa.Glue,
			Notify: ec.Notify, NotifyKey: ec.NotifyKey, NotifyInterval: time.Duration(ec.NotifyInterval)}
		for _, k := range ec.TSIG {
			tc.Keys = append(tc.Keys, dnsd.TSIGKey{Name: k.Name, Algorithm: k.Algorithm, Secret: k.Secret})
		}
		if err := srv.SetTransfer(tc, reg); err != nil {
			return nil, err
		}
	}
	return d, nil
}

func (d *distributor) path(f zones.Format) string {
	base := filepath.Join(d.cfg.ExportDir, zones.CanonicalZone(d.cfg.Zone))
	switch f {
	case zones.FormatBIND:
		return base + ".zone"
	case zones.FormatPlain:
		return base + ".txt"
	}
	return base + ".rbldnsd"
}

// update takes a new snapshot (from the listing's publisher).
func (d *distributor) update(s *zones.Snapshot) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.stopped || (d.next != nil && d.next.Serial == s.Serial) {
		return
	}
	d.next = s
	if d.tmr != nil {
		return // a run is scheduled; it takes the newest snapshot
	}
	d.busy.Add(1)
	d.tmr = time.AfterFunc(max(time.Until(d.last.Add(d.every)), 0), d.run)
}

func (d *distributor) run() {
	defer d.busy.Done()
	defer func() {
		if r := recover(); r != nil {
			d.m.panics.Inc()
			d.log.Error("panic exporting", "panic", r)
		}
	}()
	d.mu.Lock()
	s := d.next
	d.tmr = nil
	d.last = time.Now()
	prev := d.prev
	if d.stopped {
		d.mu.Unlock()
		return
	}
	d.mu.Unlock()
	d.publish(s, prev)
}

func (d *distributor) publish(s *zones.Snapshot, prev int) {
	if err := d.guard.Check(prev, s); err != nil {
		d.m.heldTotal.Inc()
		d.m.held.Set(1)
		if d.cfg.Export.Force {
			d.log.Warn("publishing what the guard would hold back (export.force)", "err", err, "serial", s.Serial)
		} else {
			d.mu.Lock()
			first := d.held != err.Error()
			d.held = err.Error()
			d.mu.Unlock()
			if first {
				d.log.Error("zone held back from the mirrors: check the listing, or publish with export.force / blowback export --force",
					"err", err, "serial", s.Serial, "entries", s.Len(), "published_entries", prev)
			}
			return
		}
	}
	ok := true
	if d.cfg.ExportDir != "" {
		formats := []zones.Format{zones.FormatRbldnsd, zones.FormatBIND}
		if d.cfg.Export.Plain {
			formats = append(formats, zones.FormatPlain)
		}
		for _, f := range formats {
			if err := d.writeFile(f, s); err != nil {
				ok = false
				d.m.errors.WithLabelValues(string(f)).Inc()
				d.log.Error("export", "file", d.path(f), "err", err)
			}
		}
	}
	if d.journal != nil {
		d.journal.Record(s)
		d.dns.ZoneChanged()
	}
	if !ok {
		return
	}
	d.mu.Lock()
	d.prev = s.Len()
	if d.held != "" {
		d.log.Info("zone published again", "serial", s.Serial, "entries", s.Len())
	}
	d.held = ""
	d.mu.Unlock()
	d.m.held.Set(0)
	d.m.serial.Set(float64(s.Serial))
	d.m.lastSuccess.SetToCurrentTime()
}

func (d *distributor) writeFile(f zones.Format, s *zones.Snapshot) error {
	start := time.Now()
	var n int64
	err := zones.WriteFileAtomic(d.path(f), func(w io.Writer) error {
		cw := &countWriter{w: w}
		err := zones.Write(cw, f, s, d.soa)
		n = cw.n
		return err
	})
	if err != nil {
		return err
	}
	d.m.duration.WithLabelValues(string(f)).Observe(time.Since(start).Seconds())
	d.m.bytes.WithLabelValues(string(f)).Set(float64(n))
	d.log.Debug("exported", "file", d.path(f), "serial", s.Serial, "bytes", n, "took", time.Since(start))
	return nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// stop cancels a scheduled run, waits for one under way, and turns zone
// transfer off.
func (d *distributor) stop(ctx context.Context) error {
	if d == nil {
		return nil
	}
	d.mu.Lock()
	d.stopped = true
	if d.tmr != nil && d.tmr.Stop() {
		d.tmr = nil
		d.busy.Done()
	}
	d.mu.Unlock()
	done := make(chan struct{})
	go func() { d.busy.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		return ctx.Err()
	}
	if d.journal != nil {
		d.dns.StopTransfer()
	}
	return nil
}

// checkExportGuard is the guard for `blowback export`: an export that
// would replace an existing one at out (rbldnsd or BIND, recognised by its
// header) with a zone the guard holds back is refused unless forced.
func checkExportGuard(cfg Config, out string, s *zones.Snapshot, force bool) error {
	h, err := zones.ReadHeaderFile(out)
	if err != nil || force {
		return nil // nothing of ours there, or forced
	}
	if err := cfg.Export.guard().Check(h.Entries, s); err != nil {
		return fmt.Errorf("%w (use --force to write it anyway)", err)
	}
	return nil
}
