// Package distrib publishes zone versions to the mirrors: the export files
// that rsync serves, the IXFR journal that zone transfers read, and the
// NOTIFY that tells secondaries. Every version passes the sanity guard
// first (zones.Guard), against a baseline that is kept on disk, so that a
// node that lost its store does not publish an empty zone with a newer
// serial after a restart, whichever way the zone leaves the node.
//
// It imports zones only; the DNS server's transfer side is handed in as a
// journal and a callback, so that cmd/ wires them.
package distrib

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/blowback-dnsbl/blowback/internal/lifecycle"
	"github.com/blowback-dnsbl/blowback/zones"
	"github.com/blowback-dnsbl/blowback/zones/signing"
)

// Options say where and how a Distributor publishes.
type Options struct {
	// Zone is the zone's name (the exports are named after it).
	Zone string
	// Dir is the export directory; "" writes no files.
	Dir string
	// Plain also writes <zone>.txt.
	Plain bool
	// Signer, when set, signs every export file (FILE.minisig, written
	// after FILE; see zones/signing).
	Signer *signing.Signer
	// TXT is the zone's TXT template, checked once for the exports.
	TXT string
	// SOA is what the exports write at the apex.
	SOA zones.SOA
	// Guard holds back zones that look like an accident; Force publishes
	// them anyway (with a warning).
	Guard zones.Guard
	Force bool
	// Interval is the least time between two publications (default 1s).
	Interval time.Duration
	// Journal, when set, records every published version for AXFR/IXFR;
	// ZoneChanged (optional) is called after each (the DNS server's
	// NOTIFY).
	Journal     *zones.Journal
	ZoneChanged func()
	// Baseline is the file that keeps the guard's baseline (zone, serial,
	// entries of the last version published) across restarts; "" keeps
	// none (the export on disk, if any, is the baseline then). Keep it
	// outside the store's directory: it must outlive the store.
	Baseline string
}

// Distributor publishes the newest snapshot at most once per interval: it
// checks it with the guard, writes the export files (temp + fsync +
// rename), records it in the journal and calls ZoneChanged.
type Distributor struct {
	o   Options
	log *slog.Logger
	m   *metrics

	// pub makes runs take turns: a run whose timer fires while the one
	// before still writes waits, then publishes the newest snapshot. Two
	// at once would let an older publish finish last (its files over the
	// newer ones, its "not held back" over a newer hold).
	pub sync.Mutex
	ran *zones.Snapshot // the snapshot the last run looked at; pub held

	mu      sync.Mutex
	next    *zones.Snapshot
	last    time.Time
	tmr     *time.Timer
	busy    sync.WaitGroup
	stopped bool
	prev    int    // entries of the last version published; -1: none known
	held    string // why the current version is held back ("" if not)
}

// New returns a Distributor; it creates the export directory and reads the
// guard's baseline (the baseline file, else the export on disk).
func New(o Options, log *slog.Logger, reg prometheus.Registerer) (*Distributor, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if o.Interval <= 0 {
		o.Interval = time.Second
	}
	d := &Distributor{o: o, log: log.With("pkg", "export"), m: newMetrics(reg), prev: -1}
	zone := zones.CanonicalZone(o.Zone)
	var bl Baseline
	if o.Baseline != "" {
		b, err := ReadBaseline(o.Baseline)
		switch {
		case err == nil && b.Zone == zone:
			bl = b
		case err == nil:
			d.log.Warn("guard baseline is for another zone: ignored", "file", o.Baseline, "zone", b.Zone)
		case !os.IsNotExist(err):
			// A damaged baseline must not open the gate: the guard holds
			// back until an operator looks (or forces).
			return nil, fmt.Errorf("export: guard baseline: %w", err)
		}
	}
	if o.Dir != "" {
		if err := zones.CheckTXT(o.TXT); err != nil {
			return nil, fmt.Errorf("export: %w", err)
		}
		if err := os.MkdirAll(o.Dir, 0o755); err != nil {
			return nil, fmt.Errorf("export: %w", err)
		}
		if h, err := zones.ReadHeaderFile(d.Path(zones.FormatRbldnsd)); err == nil && h.Zone == zone &&
			(bl.Zone == "" || zones.SerialLess(bl.Serial, h.Serial)) {
			bl = Baseline{Zone: zone, Serial: h.Serial, Entries: h.Entries}
		}
	}
	if bl.Zone != "" {
		d.prev = bl.Entries
		d.log.Info("guard baseline", "serial", bl.Serial, "entries", bl.Entries)
	}
	return d, nil
}

// Path is the file an export format is written to.
func (d *Distributor) Path(f zones.Format) string {
	return FilePath(d.o.Dir, d.o.Zone, f)
}

// FilePath is the file of format f for zone in dir.
func FilePath(dir, zone string, f zones.Format) string {
	base := filepath.Join(dir, zones.CanonicalZone(zone))
	switch f {
	case zones.FormatBIND:
		return base + ".zone"
	case zones.FormatPlain:
		return base + ".txt"
	}
	return base + ".rbldnsd"
}

// Update takes a new snapshot (from the listing's publisher); it is
// published at the next run, unless a newer one comes first.
func (d *Distributor) Update(s *zones.Snapshot) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.stopped || s == nil || (d.next != nil && d.next.Serial == s.Serial) {
		return
	}
	d.next = s
	if d.tmr != nil {
		return // a run is scheduled; it takes the newest snapshot
	}
	d.busy.Add(1)
	d.tmr = time.AfterFunc(max(time.Until(d.last.Add(d.o.Interval)), 0), d.run)
}

// Held reports why the newest version is held back ("" if it is not).
func (d *Distributor) Held() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.held
}

func (d *Distributor) run() {
	defer d.busy.Done()
	defer lifecycle.Recover(d.log, d.m.panics, "panic exporting")
	d.mu.Lock()
	d.tmr = nil // an Update from now on schedules another run
	d.mu.Unlock()
	d.pub.Lock()
	defer d.pub.Unlock()
	d.mu.Lock()
	s := d.next
	d.last = time.Now()
	prev := d.prev
	if d.stopped || s == d.ran {
		d.mu.Unlock()
		return // stopped, or a run that waited found nothing newer
	}
	d.mu.Unlock()
	d.ran = s
	d.publish(s, prev)
}

func (d *Distributor) publish(s *zones.Snapshot, prev int) {
	if err := d.o.Guard.Check(prev, s); err != nil {
		d.m.heldTotal.Inc()
		d.m.held.Set(1)
		if d.o.Force {
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
	if d.o.Dir != "" {
		formats := []zones.Format{zones.FormatRbldnsd, zones.FormatBIND}
		if d.o.Plain {
			formats = append(formats, zones.FormatPlain)
		}
		for _, f := range formats {
			if err := d.writeFile(f, s); err != nil {
				ok = false
				d.m.errors.WithLabelValues(string(f)).Inc()
				d.log.Error("export", "file", d.Path(f), "err", err)
			}
		}
	}
	// The baseline is written before the version leaves by transfer, so
	// that no secondary holds a version the guard does not know of.
	if d.o.Baseline != "" {
		b := Baseline{Zone: zones.CanonicalZone(s.Zone), Serial: s.Serial, Entries: s.Len()}
		if err := WriteBaseline(d.o.Baseline, b); err != nil {
			ok = false
			d.m.errors.WithLabelValues("baseline").Inc()
			d.log.Error("guard baseline", "file", d.o.Baseline, "err", err)
		}
	}
	if d.o.Journal != nil {
		d.o.Journal.Record(s)
		if d.o.ZoneChanged != nil {
			d.o.ZoneChanged()
		}
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

func (d *Distributor) writeFile(f zones.Format, s *zones.Snapshot) error {
	start := time.Now()
	var n int64
	err := zones.WriteFileAtomic(d.Path(f), func(w io.Writer) error {
		cw := &countWriter{w: w}
		err := zones.Write(cw, f, s, d.o.SOA)
		n = cw.n
		return err
	})
	if err != nil {
		return err
	}
	if d.o.Signer != nil {
		if err := d.o.Signer.SignFile(d.Path(f), s.Zone, s.Serial); err != nil {
			return fmt.Errorf("sign: %w", err)
		}
	}
	d.m.duration.WithLabelValues(string(f)).Observe(time.Since(start).Seconds())
	d.m.bytes.WithLabelValues(string(f)).Set(float64(n))
	d.log.Debug("exported", "file", d.Path(f), "serial", s.Serial, "bytes", n, "took", time.Since(start))
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

// Stop cancels a scheduled run and waits for one under way.
func (d *Distributor) Stop(ctx context.Context) error {
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
	return lifecycle.Wait(ctx, &d.busy)
}

// CheckFile is the guard for a one-off export (`blowback export`): an
// export that would replace an existing one at path (rbldnsd or BIND,
// recognised by its header) with a zone the guard holds back is refused
// unless forced.
func CheckFile(g zones.Guard, path string, s *zones.Snapshot, force bool) error {
	h, err := zones.ReadHeaderFile(path)
	if err != nil || force {
		return nil // nothing of ours there, or forced
	}
	if err := g.Check(h.Entries, s); err != nil {
		return fmt.Errorf("%w (use --force to write it anyway)", err)
	}
	return nil
}
