package dnsd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"runtime/debug"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/blowback-dnsbl/blowback/internal/metric"
	"github.com/blowback-dnsbl/blowback/zones"
)

// ErrZoneFile wraps failures to load a zone file.
var ErrZoneFile = errors.New("dnsd: zone file")

// ZoneFile keeps a zones.Current loaded from an rbldnsd-format file (what
// `blowback dnsd --zone-file` serves): each change of the file is parsed
// aside and swapped in atomically; a file that does not parse leaves the
// old snapshot in place, logged and counted.
type ZoneFile struct {
	path string
	zone string
	opts zones.RbldnsdOptions
	cur  *zones.Current
	log  *slog.Logger
	// Poll is how often the file's size, mtime and inode are checked
	// (inotify, where there is one, makes most reloads immediate); default 2s.
	Poll time.Duration
	// Check, when set, vets the open file before it is parsed (a signature,
	// its serial); an error refuses the file like a parse error does.
	Check func(f *os.File) error

	mu       sync.Mutex
	last     fileStamp
	reloads  *prometheus.CounterVec
	loadSecs prometheus.Gauge
	lastOK   prometheus.Gauge
	skipped  prometheus.Gauge
}

type fileStamp struct {
	size  int64
	mtime time.Time
	ino   uint64
}

// NewZoneFile returns a loader of path for zone. reg may be nil.
func NewZoneFile(path, zone string, opts zones.RbldnsdOptions, cur *zones.Current, log *slog.Logger, reg prometheus.Registerer) *ZoneFile {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := metric.New(reg)
	return &ZoneFile{path: path, zone: zone, opts: opts, cur: cur, log: log.With("pkg", "dnsd", "zone_file", path), Poll: 2 * time.Second,
		// result: ok, error
		reloads: r.CounterVec("blowback_dns_zone_reloads_total",
			"Loads of the zone file, by result (ok, error: the old zone stays in service).", []string{"result"}),
		loadSecs: r.Gauge("blowback_dns_zone_load_duration_seconds",
			"Time the last successful load of the zone file took (parse and build)."),
		lastOK: r.Gauge("blowback_dns_zone_last_reload_timestamp_seconds",
			"When the zone file was last loaded successfully (Unix time)."),
		skipped: r.Gauge("blowback_dns_zone_skipped_lines",
			"Lines or sections of the current zone file that were skipped (bad lines in lenient mode, subzones, other dataset types)."),
	}
}

func stampOf(fi os.FileInfo) fileStamp {
	return fileStamp{size: fi.Size(), mtime: fi.ModTime(), ino: inode(fi)}
}

// Load parses the file and swaps it in. On error the current snapshot stays.
func (z *ZoneFile) Load() error {
	z.mu.Lock()
	defer z.mu.Unlock()
	err := z.load()
	if err != nil {
		z.reloads.WithLabelValues("error").Inc()
		z.log.Error("zone file not loaded; still serving the previous zone", "err", err)
		return err
	}
	z.reloads.WithLabelValues("ok").Inc()
	return nil
}

func (z *ZoneFile) load() error {
	start := time.Now()
	// Parse on a P of its own: with GOMAXPROCS=1 (one CPU, or a pinned
	// server) the parse would otherwise take turns with the socket readers
	// in 10 ms slices; as a separate thread the kernel wakes a reader as
	// soon as datagrams arrive.
	procs := runtime.GOMAXPROCS(0)
	runtime.GOMAXPROCS(procs + 1)
	defer runtime.GOMAXPROCS(procs)
	f, err := os.Open(z.path)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrZoneFile, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("%w: %v", ErrZoneFile, err)
	}
	if z.Check != nil {
		if err := z.Check(f); err != nil {
			return fmt.Errorf("%w: %s: %w", ErrZoneFile, z.path, err)
		}
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return fmt.Errorf("%w: %v", ErrZoneFile, err)
		}
	}
	opts := z.opts
	opts.ModTime = fi.ModTime()
	opts.SizeHint = fi.Size()
	var (
		snap *zones.Snapshot
		st   zones.RbldnsdStats
	)
	// Not at a lower CPU priority: a niced parse thread that the kernel
	// leaves waiting while it holds a runtime lock, or while a GC stop-the-
	// world waits for it, stalls the socket readers (measured: 0.3-1.5 s
	// stalls with a busy loop on the same CPU, against 30 ms at nice 0).
	snap, _, st, err = zones.ParseRbldnsd(f, z.zone, opts)
	if err != nil {
		return fmt.Errorf("%w: %s: %w", ErrZoneFile, z.path, err)
	}
	// A writer that rewrites the file in place (not temp file + rename) may
	// have changed it while we read: then read it again once it is quiet.
	if fi2, err := os.Stat(z.path); err != nil || stampOf(fi2) != stampOf(fi) {
		return fmt.Errorf("%w: %s changed while being read", ErrZoneFile, z.path)
	}
	z.last = stampOf(fi)
	z.cur.Store(snap)
	took := time.Since(start)
	z.loadSecs.Set(took.Seconds())
	z.lastOK.Set(float64(time.Now().Unix()))
	z.skipped.Set(float64(st.Skipped))
	for _, w := range st.Warnings {
		z.log.Warn("zone file line skipped", "reason", w)
	}
	z.log.Info("zone loaded", "zone", snap.Zone, "serial", snap.Serial, "entries", snap.Len(), "lines", st.Lines,
		"skipped", st.Skipped, "values", snap.Values(), "took", took.Round(time.Millisecond))
	// Hand the parse's garbage and the old zone back to the OS now rather
	// than over the next GC cycles: a mirror's RSS stays near one zone.
	debug.FreeOSMemory()
	return nil
}

// changed reports whether the file differs from what was last loaded.
func (z *ZoneFile) changed() bool {
	fi, err := os.Stat(z.path)
	if err != nil {
		return false
	}
	z.mu.Lock()
	defer z.mu.Unlock()
	return stampOf(fi) != z.last
}

// Run reloads the file whenever it changes (inotify on its directory where
// available, and a poll of size, mtime and inode), and on a value from
// reload (SIGHUP), until ctx ends.
func (z *ZoneFile) Run(ctx context.Context, reload <-chan struct{}) {
	events := watchDir(ctx, z.path, z.log)
	t := time.NewTicker(z.Poll)
	defer t.Stop()
	retry := false
	for {
		force := false
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-events:
			// Let a burst of events (write, close, rename) settle.
			select {
			case <-time.After(100 * time.Millisecond):
			case <-ctx.Done():
				return
			}
		case <-reload:
			force = true
		}
		if force || retry || z.changed() {
			retry = z.Load() != nil && z.changed()
		}
	}
}
