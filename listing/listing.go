// Package listing keeps the live listing: it commits evidence to the store,
// re-scores the address it concerns, and publishes a new zone snapshot for
// the DNS server and the exporters. A periodic sweep ages everything else.
//
// Flow: Ingest -> store.Put (durable) -> rescore(unit) -> pending change ->
// publisher (coalesces for a few ms) -> zones.Snapshot.With -> Current.Store
// -> subscribers (exports, NOTIFY).
//
// Without new evidence a decision changes only at its Review time (a
// listing lapses or a kind ages out, scoring.Decision.Review), kept per
// listed unit in an 8-byte slot; the sweep re-scores the units whose time
// has come. Rebuild re-scores everything from a key-only scan of the store.
// With Policy.Escalate, wider prefixes are listed as range entries and a
// change of them rebuilds the snapshot (see escalate.go).
package listing

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"math"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/blowback-dnsbl/blowback/internal/lifecycle"
	"github.com/blowback-dnsbl/blowback/scoring"
	"github.com/blowback-dnsbl/blowback/store"
	"github.com/blowback-dnsbl/blowback/zones"
)

// Config configures an Engine.
type Config struct {
	Zone   string        // zone name
	TXT    string        // TXT template ("$" is the address)
	TTL    time.Duration // answer TTL (for exports)
	Policy scoring.Policy
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Coalesce is how long the publisher gathers changes before building a
	// snapshot; default 5ms.
	Coalesce time.Duration
	// SweepEvery is how often listings are checked for expiry; default 1 minute.
	SweepEvery time.Duration
	// Serial, when set, gives every snapshot's SOA serial (a cluster
	// replica derives it from the log, see cluster.go).
	Serial func() uint32
	// SnapshotFile, when set, keeps the last published snapshot on disk
	// (zones.SaveSnapshotFile, at most once per PersistEvery, default 10s,
	// and at Stop). Start then serves it at once and rebuilds from the
	// store behind it (see Start).
	SnapshotFile string
	PersistEvery time.Duration
	// MaxRefs is how many pieces of evidence of one unit, the newest, a
	// decision considers; default DefaultMaxRefs. It bounds the time and
	// memory of every decision (lookup, explain, re-score, rebuild)
	// whatever one unit has stored.
	MaxRefs int
	// Divert, when set, takes events that are not evidence before they are
	// stored (the operator self-test's replies to its own probe, selftest
	// package); Ingest then returns nil. It sees the trap's and forwarded
	// events alike.
	Divert func(ev *store.Event) bool
}

// DefaultMaxRefs is the default Config.MaxRefs: far above what lists an
// address (a few hits), small enough to decide in milliseconds.
const DefaultMaxRefs = 4096

const stripes = 64

// Engine is the live listing.
type Engine struct {
	cfg     Config
	st      *store.Store
	cur     *zones.Current
	log     *slog.Logger
	metrics *metrics
	seed    maphash.Seed

	locks [stripes]sync.Mutex // serialise re-scoring per unit

	serialMu sync.Mutex
	serial   uint32 // last serial handed out
	reserved uint32 // serials up to this are reserved in the store

	allowMu sync.Mutex // admin allowlist changes (allow.go)

	mu      sync.Mutex
	listed  *listedSet
	pending map[netip.Prefix]zones.Codes
	// Escalation (Policy.Escalate): listed units per wider prefix, the
	// prefixes published as a whole, and whether they changed since the
	// last publication (which then rebuilds the snapshot).
	wide      map[netip.Prefix]int
	escalated map[netip.Prefix]Escalated
	escDirty  bool
	delisted  map[netip.Prefix]bool // units manually delisted (only with escalation): excluded from ranges
	subs      []func(*zones.Snapshot)
	kick      chan struct{}
	taken     uint64        // batches taken by the publisher
	pubGen    uint64        // batches published
	pubCh     chan struct{} // closed and replaced at each publication
	started   bool
	// behind: a rebuild runs behind a persisted snapshot (Start); units
	// re-scored meanwhile (touched) are re-scored again after it.
	behind  bool
	touched map[netip.Prefix]struct{}
	persist persistState
	// holdRebuild, when set (tests), is called before the rebuild behind a
	// persisted snapshot starts.
	holdRebuild func()

	// Units with new evidence waiting to be re-scored (Ingest returns after
	// the commit; a flood from one address is re-scored once per batch).
	dirtyMu     sync.Mutex
	dirty       map[netip.Prefix]struct{}
	dirtyKick   chan struct{}
	stopRescore chan struct{}
	rescoreWG   sync.WaitGroup

	stop     chan struct{}
	stopOnce sync.Once
	wg       sync.WaitGroup

	wlog Log // cluster replica: writes go through the replicated log (cluster.go)
}

// rescorers is the number of goroutines re-scoring units after Ingest.
const rescorers = 2

// New returns an engine over st that publishes into cur. Call Start.
func New(cfg Config, st *store.Store, cur *zones.Current, log *slog.Logger, reg prometheus.Registerer) *Engine {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Coalesce == 0 {
		cfg.Coalesce = 5 * time.Millisecond
	}
	if cfg.SweepEvery == 0 {
		cfg.SweepEvery = time.Minute
	}
	if cfg.PersistEvery == 0 {
		cfg.PersistEvery = 10 * time.Second
	}
	if cfg.MaxRefs <= 0 {
		cfg.MaxRefs = DefaultMaxRefs
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.Policy.Dynamic == nil {
		cfg.Policy.Dynamic = &scoring.AllowSet{} // admin allowlist changes (allow.go)
	}
	return &Engine{
		cfg: cfg, st: st, cur: cur, log: log.With("pkg", "listing"), metrics: newMetrics(reg),
		seed: maphash.MakeSeed(), listed: newListedSet(0, 0), pending: map[netip.Prefix]zones.Codes{},
		wide: map[netip.Prefix]int{}, escalated: map[netip.Prefix]Escalated{}, delisted: map[netip.Prefix]bool{},
		kick: make(chan struct{}, 1), stop: make(chan struct{}), pubCh: make(chan struct{}),
		dirty: map[netip.Prefix]struct{}{}, dirtyKick: make(chan struct{}, 1), stopRescore: make(chan struct{}),
	}
}

// Subscribe registers fn to be called (from the publisher goroutine) with every
// new snapshot. Register before Start.
func (e *Engine) Subscribe(fn func(*zones.Snapshot)) {
	e.mu.Lock()
	e.subs = append(e.subs, fn)
	e.mu.Unlock()
}

// Start rebuilds the listing from the store, publishes the first snapshot
// and starts the publisher and sweeper. With a persisted snapshot of this
// zone (Config.SnapshotFile) it publishes that one at once and rebuilds in
// the background: the DNS server answers as it did before the restart
// within a second, and the rebuilt listing replaces it when done (with a
// newer serial); evidence that arrives meanwhile is re-scored against it.
func (e *Engine) Start(ctx context.Context) error {
	snap := e.loadPersisted()
	if snap == nil {
		if err := e.Rebuild(ctx); err != nil {
			return err
		}
	} else {
		e.serialMu.Lock()
		e.serial = max(e.serial, snap.Serial)
		e.serialMu.Unlock()
		e.mu.Lock()
		e.behind = true
		e.cur.Store(snap)
		subs := e.subs
		e.mu.Unlock()
		e.metrics.published(snap)
		for _, fn := range subs {
			fn(snap)
		}
	}
	e.mu.Lock()
	e.started = true
	e.mu.Unlock()
	e.wg.Add(3)
	go e.publisher()
	go e.sweeper()
	go e.persister()
	e.rescoreWG.Add(rescorers)
	for range rescorers {
		go e.rescorer()
	}
	if snap != nil {
		e.wg.Add(1)
		go e.rebuildBehind()
	}
	return nil
}

// Stop stops the background work; a pending change is published first.
func (e *Engine) Stop(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		// Re-score what is waiting, then let the publisher publish it.
		e.stopOnce.Do(func() {
			close(e.stopRescore)
			e.rescoreWG.Wait()
			close(e.stop)
		})
		e.wg.Wait()
		e.savePersisted()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (e *Engine) info(serial uint32) zones.Info {
	return zones.Info{Zone: e.cfg.Zone, Serial: serial, TXT: e.cfg.TXT, TTL: e.cfg.TTL, Built: e.cfg.Now().UTC()}
}

// serialReserve is how many serials are reserved in the store at once, so
// that a publication needs no synced write of its own.
const serialReserve = 1000

// nextSerial returns the next SOA serial: the time in seconds, or one more
// than the last serial if that is larger, so serials only increase. Serials
// are handed out from a block reserved durably in the store (one synced
// write per serialReserve publications); after a restart the store hands
// out serials above the whole block.
func (e *Engine) nextSerial() uint32 {
	if e.cfg.Serial != nil {
		return e.cfg.Serial()
	}
	e.serialMu.Lock()
	defer e.serialMu.Unlock()
	next := max(e.serial+1, uint32(e.cfg.Now().Unix()))
	if next > e.reserved || e.reserved == 0 {
		// base is above every serial reserved before (also by an earlier run).
		base, err := e.st.NextSerial(next)
		var r uint32
		if err == nil {
			r, err = e.st.NextSerial(base + serialReserve)
		}
		if err != nil {
			e.log.Error("serial", "err", err)
			e.serial = next
			return next
		}
		next, e.reserved = base, r
	}
	e.serial = next
	return next
}

// Rebuild re-scores every address from the store and publishes the result.
// It reads keys only (store.ScanRefs) and decides unit after unit with one
// reused scoring.Decider, so memory stays at the listed set plus the zone.
func (e *Engine) Rebuild(ctx context.Context) error {
	start := time.Now()
	if err := e.loadAllow(); err != nil {
		return fmt.Errorf("listing: rebuild: %w", err)
	}
	e.mu.Lock()
	e.touched = map[netip.Prefix]struct{}{}
	e.mu.Unlock()
	defer func() {
		e.mu.Lock()
		e.touched = nil
		e.mu.Unlock()
	}()
	now := e.cfg.Now()
	actions := map[netip.Prefix][]store.Action{}
	if err := e.st.AllActions(ctx, func(a store.Action) error {
		u := scoring.Unit(a.Prefix.Addr())
		actions[u] = append(actions[u], a)
		return nil
	}); err != nil {
		return fmt.Errorf("listing: rebuild: %w", err)
	}
	dec := scoring.NewDecider(&e.cfg.Policy)
	dec.Lazy = true // no reason texts: nobody reads them here
	listed := newListedSet(0, 0)
	delisted := map[netip.Prefix]bool{}
	units := 0
	var unit netip.Prefix
	var refs []store.Ref
	flush := func() {
		if !unit.IsValid() {
			return
		}
		units++
		d := dec.Decide(unit, newestRefs(refs, e.cfg.MaxRefs), actions[unit], now)
		delete(actions, unit)
		if d.Listed {
			if c := zones.CodesOf(d.Kinds); c != 0 {
				listed.set(unit, slot{codes: c, exp: expUnix(d.Review)})
			}
		} else if d.Manual == store.OpDelist && e.cfg.Policy.Escalate.Enabled {
			delisted[unit] = true
		}
	}
	err := e.st.ScanRefs(ctx, func(r store.Ref) error {
		u := scoring.Unit(r.Addr)
		if u != unit {
			flush()
			unit, refs = u, refs[:0]
		}
		refs = append(refs, r)
		return nil
	})
	if err != nil {
		return fmt.Errorf("listing: rebuild: %w", err)
	}
	flush()
	// Units with manual actions but no evidence.
	for u := range actions {
		unit, refs = u, nil
		flush()
	}
	info := e.info(e.nextSerial())
	e.mu.Lock()
	e.listed, e.delisted = listed, delisted
	e.pending = map[netip.Prefix]zones.Codes{}
	e.wide, e.escalated = e.countWide(), map[netip.Prefix]Escalated{}
	e.updateEscalations()
	e.escDirty = false
	snap := e.buildLocked(info)
	subs := e.subs
	// Stored under e.mu: a subscriber that registers now either is in subs
	// or finds this snapshot current.
	e.cur.Store(snap)
	touched := e.touched
	e.touched = nil
	e.behind = false
	running := e.started
	e.mu.Unlock()
	e.metrics.published(snap)
	for _, fn := range subs {
		fn(snap)
	}
	// Units re-scored while the store was scanned: the scan may have read
	// them before their last change.
	for u := range touched {
		if running {
			e.markDirty(u)
		} else if _, err := e.Rescore(ctx, u); err != nil {
			e.log.Error("rescore after rebuild", "unit", u, "err", err)
		}
	}
	e.metrics.rebuildSeconds.Set(time.Since(start).Seconds())
	e.log.Info("listing rebuilt", "units", units, "listed", listed.len(), "escalated", len(e.escalated),
		"took", time.Since(start).Round(time.Millisecond), "serial", snap.Serial)
	return nil
}

// buildLocked makes a full snapshot of the listed set and the escalated
// prefixes. e.mu is held.
func (e *Engine) buildLocked(info zones.Info) *zones.Snapshot {
	b := zones.NewBuilder(info)
	b.Grow(len(e.listed.v4))
	for k, s := range e.listed.v4 {
		b.Add4(k, s.codes, 0)
	}
	for k, s := range e.listed.v6 {
		b.Add(zones.Entry{Prefix: unit6(k), Codes: s.codes})
	}
	for _, x := range e.escalated {
		b.Add(x.entry(e.cfg.TXT))
	}
	for u := range e.delisted {
		if w, ok := e.cfg.Policy.EscalationPrefix(u); ok {
			if _, on := e.escalated[w]; on {
				b.Add(zones.Entry{Prefix: u, Exclude: true}) // a delist is immediate, also inside a range
			}
		}
	}
	return b.Snapshot()
}

// expUnix rounds an expiry up to whole seconds (0: none).
func expUnix(t time.Time) uint32 {
	if t.IsZero() {
		return 0
	}
	s := t.Unix()
	if t.Nanosecond() > 0 {
		s++
	}
	if s <= 0 {
		return 1
	}
	if s > math.MaxUint32 {
		return math.MaxUint32
	}
	return uint32(s)
}

// Ingest commits ev durably and queues its address for re-scoring (done
// at once when the engine is not started). It returns after the commit: the
// caller may acknowledge the message; the DNS answer follows within
// milliseconds. A duplicate event id
// is not an error (forwarding is at-least-once). Evidence for an address
// that can never be listed (scoring.Listable: the RFC 5782 test point
// 127.0.0.1, loopback ::1, link-local, multicast, reserved) is counted and
// dropped, not stored; that is not an error either (the sender gets no
// reason to retry).
func (e *Engine) Ingest(ctx context.Context, ev *store.Event, raw []byte) error {
	if e.cfg.Divert != nil && e.cfg.Divert(ev) {
		return nil
	}
	if !scoring.Listable(ev.ClientIP) {
		e.metrics.refused.Inc()
		e.log.Debug("evidence for a never-listed address dropped", "client", ev.ClientIP.String(), "kind", ev.Kind.String())
		return nil
	}
	if e.wlog != nil {
		return e.wlog.AppendEvent(ctx, ev, raw)
	}
	err := e.st.Put(ctx, ev, raw)
	if errors.Is(err, store.ErrDuplicate) {
		e.metrics.duplicates.Inc()
		return nil
	}
	if err != nil {
		return err
	}
	e.metrics.events.WithLabelValues(ev.Kind.String()).Inc()
	unit := scoring.Unit(ev.ClientIP)
	if e.running() {
		e.markDirty(unit)
		return nil
	}
	if _, err := e.Rescore(ctx, unit); err != nil {
		// The evidence is safe; the next rebuild picks the address up again.
		e.log.Error("rescore after ingest", "err", err)
	}
	return nil
}

// markDirty queues unit for re-scoring by the rescorers.
func (e *Engine) markDirty(unit netip.Prefix) {
	e.dirtyMu.Lock()
	e.dirty[unit] = struct{}{}
	e.dirtyMu.Unlock()
	select {
	case e.dirtyKick <- struct{}{}:
	default:
	}
}

// takeDirty removes and returns up to max queued units.
func (e *Engine) takeDirty(max int) []netip.Prefix {
	e.dirtyMu.Lock()
	defer e.dirtyMu.Unlock()
	out := make([]netip.Prefix, 0, min(max, len(e.dirty)))
	for u := range e.dirty {
		if len(out) == max {
			break
		}
		delete(e.dirty, u)
		out = append(out, u)
	}
	return out
}

// rescorer re-scores units with new evidence until Stop, then drains the queue.
func (e *Engine) rescorer() {
	defer e.rescoreWG.Done()
	work := func() {
		defer lifecycle.Recover(e.log, e.metrics.panics, "panic re-scoring")
		for {
			units := e.takeDirty(256)
			if len(units) == 0 {
				return
			}
			for _, u := range units {
				if _, err := e.Rescore(context.Background(), u); err != nil {
					// The evidence is safe; the next rebuild picks it up again.
					e.log.Error("rescore after ingest", "unit", u, "err", err)
				}
			}
			select {
			case e.dirtyKick <- struct{}{}: // wake the other rescorer for the rest
			default:
			}
		}
	}
	for {
		select {
		case <-e.stopRescore:
			work()
			return
		case <-e.dirtyKick:
			work()
		}
	}
}

func (e *Engine) lock(unit netip.Prefix) *sync.Mutex {
	b := unit.Addr().As16()
	return &e.locks[maphash.Bytes(e.seed, b[:])%stripes]
}

// newestRefs keeps the newest max refs (by time, then id), in place.
func newestRefs(refs []store.Ref, max int) []store.Ref {
	if len(refs) <= max {
		return refs
	}
	slices.SortFunc(refs, func(a, b store.Ref) int {
		if c := a.Time.Compare(b.Time); c != 0 {
			return c
		}
		return slices.Compare(a.ID[:], b.ID[:])
	})
	return refs[len(refs)-max:]
}

// Decide returns the current decision for the unit holding a, from the
// store: from its newest Config.MaxRefs refs (store.RefsNewest), so its
// time and memory are bounded whatever the unit has stored.
func (e *Engine) Decide(a netip.Addr) (scoring.Decision, []store.Ref, []store.Action, error) {
	unit := scoring.Unit(a)
	refs, _, err := e.st.RefsNewest(unit, e.cfg.MaxRefs)
	if err != nil {
		return scoring.Decision{}, nil, nil, err
	}
	acts, err := e.st.Actions(unit)
	if err != nil {
		return scoring.Decision{}, nil, nil, err
	}
	return scoring.Decide(&e.cfg.Policy, unit, refs, acts, e.cfg.Now()), refs, acts, nil
}

// MaxRefs is how many refs of a unit a decision considers (Config.MaxRefs).
func (e *Engine) MaxRefs() int { return e.cfg.MaxRefs }

// Policy returns the engine's policy.
func (e *Engine) Policy() *scoring.Policy { return &e.cfg.Policy }

// Rescore re-decides one unit and queues the change for publication.
func (e *Engine) Rescore(ctx context.Context, unit netip.Prefix) (scoring.Decision, error) {
	d, _, err := e.rescore(ctx, unit)
	return d, err
}

// rescore also returns the publication generation that will carry the change (0: none).
func (e *Engine) rescore(ctx context.Context, unit netip.Prefix) (scoring.Decision, uint64, error) {
	l := e.lock(unit)
	l.Lock()
	defer l.Unlock()
	d, _, _, err := e.Decide(unit.Addr())
	if err != nil {
		return d, 0, err
	}
	var codes zones.Codes
	if d.Listed {
		codes = zones.CodesOf(d.Kinds)
	}
	e.mu.Lock()
	old, was := e.listed.get(unit)
	if !was && e.behind {
		// Rebuilding behind a persisted snapshot: that is what is served.
		if cur := e.cur.Load(); cur != nil {
			if c := cur.Lookup(unit.Addr()); c != 0 {
				old, was = slot{codes: c}, true
			}
		}
	}
	if e.touched != nil {
		e.touched[unit] = struct{}{}
	}
	if codes != 0 {
		e.listed.set(unit, slot{codes: codes, exp: expUnix(d.Review)})
	} else if was {
		e.listed.del(unit)
	}
	changed := (was && old.codes != codes) || (!was && codes != 0)
	if e.cfg.Policy.Escalate.Enabled && (d.Manual == store.OpDelist) != e.delisted[unit] {
		if d.Manual == store.OpDelist {
			e.delisted[unit] = true
		} else {
			delete(e.delisted, unit)
		}
		if x, ok := e.cfg.Policy.EscalationPrefix(unit); ok {
			if _, on := e.escalated[x]; on {
				e.escDirty, changed = true, true
			}
		}
	}
	var gen uint64
	if changed {
		e.pending[unit] = codes
		gen = e.taken + 1
		e.noteWideLocked(unit, was, codes != 0)
	}
	e.mu.Unlock()
	if changed {
		select {
		case e.kick <- struct{}{}:
		default:
		}
	}
	return d, gen, nil
}

// waitPublished waits until publication gen is served (or ctx ends).
func (e *Engine) waitPublished(ctx context.Context, gen uint64) error {
	for {
		e.mu.Lock()
		done, ch := e.pubGen >= gen, e.pubCh
		e.mu.Unlock()
		if done {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		case <-e.stop:
			return errors.New("listing: stopped")
		}
	}
}

// Act records a manual action (list or delist) and applies it at once: it
// returns when the DNS server answers accordingly.
func (e *Engine) Act(ctx context.Context, a store.Action) (scoring.Decision, error) {
	if a.Time.IsZero() {
		a.Time = e.cfg.Now()
	}
	a.Prefix = scoring.Unit(a.Prefix.Addr())
	if e.wlog != nil {
		return e.actViaLog(ctx, a)
	}
	if err := e.st.AddAction(ctx, a); err != nil {
		return scoring.Decision{}, err
	}
	d, gen, err := e.rescore(ctx, a.Prefix)
	if err != nil || gen == 0 {
		return d, err
	}
	select {
	case <-e.stop:
		return d, nil
	default:
	}
	if !e.running() {
		e.publish() // no publisher (offline CLI): publish here
		return d, nil
	}
	return d, e.waitPublished(ctx, gen)
}

func (e *Engine) running() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.started
}

// Listed returns the number of listed units.
func (e *Engine) Listed() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.listed.len()
}

func (e *Engine) publisher() {
	defer e.wg.Done()
	for {
		select {
		case <-e.stop:
			e.publish()
			return
		case <-e.kick:
			time.Sleep(e.cfg.Coalesce)
			e.publish()
		}
	}
}

func (e *Engine) publish() { e.publishChanges(false) }

// publishChanges publishes the pending changes; with force also a new
// serial when nothing changed.
func (e *Engine) publishChanges(force bool) {
	defer lifecycle.Recover(e.log, e.metrics.panics, "panic publishing snapshot")
	e.mu.Lock()
	empty := len(e.pending) == 0 && !force
	e.mu.Unlock()
	if empty {
		return
	}
	start := time.Now()
	info := e.info(e.nextSerial()) // a synced write: not under e.mu
	e.mu.Lock()
	var snap *zones.Snapshot
	if e.escDirty && !e.behind {
		// Escalations changed: ranges are not carried by With, so build
		// the whole snapshot (rare: only when a wider prefix flips).
		// Not while rebuilding behind a persisted snapshot: the listed set
		// is partial then, and the rebuild decides the escalations.
		e.updateEscalations()
		e.escDirty = false
		snap = e.buildLocked(info)
	}
	changes := make([]zones.Entry, 0, len(e.pending))
	for u, c := range e.pending {
		changes = append(changes, zones.Entry{Prefix: u, Codes: c})
	}
	e.pending = map[netip.Prefix]zones.Codes{}
	e.taken++
	gen := e.taken
	subs := e.subs
	e.mu.Unlock()
	defer func() {
		e.mu.Lock()
		e.pubGen = gen
		close(e.pubCh)
		e.pubCh = make(chan struct{})
		e.mu.Unlock()
	}()
	if snap == nil {
		snap = e.cur.Load().With(info, changes)
	}
	e.cur.Store(snap)
	e.metrics.published(snap)
	e.metrics.publishSeconds.Observe(time.Since(start).Seconds())
	for _, fn := range subs {
		fn(snap)
	}
}

func (e *Engine) sweeper() {
	defer e.wg.Done()
	lifecycle.Every(e.stop, e.cfg.SweepEvery, func() { e.Sweep(context.Background()) })
}

// Sweep re-scores every listed unit whose decision is due for review: its
// listing lapsed or a kind aged out of it (scoring.Decision.Review).
func (e *Engine) Sweep(ctx context.Context) {
	defer lifecycle.Recover(e.log, e.metrics.panics, "panic in sweep")
	now := e.cfg.Now().Unix()
	var due []netip.Prefix
	e.mu.Lock()
	e.listed.each(func(u netip.Prefix, s slot) {
		if s.exp != 0 && int64(s.exp) <= now {
			due = append(due, u)
		}
	})
	e.mu.Unlock()
	for _, u := range due {
		if _, err := e.Rescore(ctx, u); err != nil {
			e.log.Error("sweep rescore", "unit", u, "err", err)
		}
	}
	if len(due) > 0 {
		e.log.Info("sweep", "expired", len(due))
	}
}
