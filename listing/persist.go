package listing

import (
	"errors"
	"os"
	"sync"
	"time"

	"github.com/blowback-dnsbl/blowback/internal/lifecycle"
	"github.com/blowback-dnsbl/blowback/zones"
)

// persistState is what the persister last wrote.
type persistState struct {
	mu     sync.Mutex
	serial uint32
	ok     bool
}

// loadPersisted returns the persisted snapshot when there is one for this
// zone, TXT and TTL (nil otherwise: Start rebuilds first).
func (e *Engine) loadPersisted() *zones.Snapshot {
	if e.cfg.SnapshotFile == "" {
		return nil
	}
	start := time.Now()
	s, err := zones.LoadSnapshotFile(e.cfg.SnapshotFile)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil
	case err != nil:
		e.log.Warn("persisted snapshot not used; rebuilding first", "file", e.cfg.SnapshotFile, "err", err)
		return nil
	case s.Zone != zones.CanonicalZone(e.cfg.Zone) || s.TXT != e.cfg.TXT || s.TTL != e.cfg.TTL:
		e.log.Info("persisted snapshot is of another zone, TXT or TTL; rebuilding first", "file", e.cfg.SnapshotFile)
		return nil
	}
	e.persist.mu.Lock()
	e.persist.serial, e.persist.ok = s.Serial, true
	e.persist.mu.Unlock()
	e.log.Info("serving the persisted snapshot while the listing is rebuilt", "serial", s.Serial, "entries", s.Len(),
		"built", s.Built, "took", time.Since(start).Round(time.Millisecond))
	return s
}

// rebuildBehind rebuilds the listing behind a persisted snapshot.
func (e *Engine) rebuildBehind() {
	defer e.wg.Done()
	defer lifecycle.Recover(e.log, e.metrics.panics, "panic rebuilding")
	if e.holdRebuild != nil {
		e.holdRebuild()
	}
	ctx, cancel := lifecycle.StopContext(e.stop)
	defer cancel()
	if err := e.Rebuild(ctx); err != nil && ctx.Err() != nil {
		e.log.Info("rebuild behind the persisted snapshot abandoned at stop")
	} else if err != nil {
		// The persisted snapshot stays in service; evidence is safe in the
		// store and the next start rebuilds again.
		e.log.Error("rebuild behind the persisted snapshot failed; still serving it", "err", err)
	}
}

// persister saves the current snapshot at most once per PersistEvery.
func (e *Engine) persister() {
	defer e.wg.Done()
	if e.cfg.SnapshotFile == "" {
		return
	}
	lifecycle.Every(e.stop, e.cfg.PersistEvery, e.savePersisted)
}

// savePersisted writes the current snapshot unless it is already on disk.
func (e *Engine) savePersisted() {
	if e.cfg.SnapshotFile == "" {
		return
	}
	s := e.cur.Load()
	if s == nil {
		return
	}
	e.persist.mu.Lock()
	defer e.persist.mu.Unlock()
	if e.persist.ok && e.persist.serial == s.Serial {
		return
	}
	start := time.Now()
	if err := zones.SaveSnapshotFile(e.cfg.SnapshotFile, s); err != nil {
		e.log.Error("persist snapshot", "file", e.cfg.SnapshotFile, "err", err)
		return
	}
	e.persist.serial, e.persist.ok = s.Serial, true
	e.log.Debug("snapshot persisted", "serial", s.Serial, "entries", s.Len(), "took", time.Since(start))
}
