// Package listing keeps the live listing: it commits evidence to the store,
// re-scores the address it concerns, and publishes a new zone snapshot for
// the DNS server and the exporters. A periodic sweep ages everything else.
//
// Flow: Ingest -> store.Put (durable) -> rescore(unit) -> pending change ->
// publisher (coalesces for a few ms) -> zones.Snapshot.With -> Current.Store
// -> subscribers (exports, NOTIFY).
package listing

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

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
}

type entry struct {
	codes   zones.Codes
	expires int64 // unix seconds; 0: no expiry (manual)
}

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

	mu      sync.Mutex
	listed  map[netip.Prefix]entry
	pending map[netip.Prefix]zones.Codes
	subs    []func(*zones.Snapshot)
	kick    chan struct{}
	taken   uint64        // batches taken by the publisher
	pubGen  uint64        // batches published
	pubCh   chan struct{} // closed and replaced at each publication
	started bool

	stop chan struct{}
	wg   sync.WaitGroup
}

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
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Engine{
		cfg: cfg, st: st, cur: cur, log: log.With("pkg", "listing"), metrics: newMetrics(reg),
		seed: maphash.MakeSeed(), listed: map[netip.Prefix]entry{}, pending: map[netip.Prefix]zones.Codes{},
		kick: make(chan struct{}, 1), stop: make(chan struct{}), pubCh: make(chan struct{}),
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
// and starts the publisher and sweeper.
func (e *Engine) Start(ctx context.Context) error {
	if err := e.Rebuild(ctx); err != nil {
		return err
	}
	e.mu.Lock()
	e.started = true
	e.mu.Unlock()
	e.wg.Add(2)
	go e.publisher()
	go e.sweeper()
	return nil
}

// Stop stops the background work; a pending change is published first.
func (e *Engine) Stop(ctx context.Context) error {
	close(e.stop)
	done := make(chan struct{})
	go func() { e.wg.Wait(); close(done) }()
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

func (e *Engine) nextSerial() uint32 {
	s, err := e.st.NextSerial(uint32(e.cfg.Now().Unix()))
	if err != nil {
		e.log.Error("serial", "err", err)
		if cur := e.cur.Load(); cur != nil {
			return cur.Serial + 1
		}
		return uint32(e.cfg.Now().Unix())
	}
	return s
}

// Rebuild re-scores every address from the store and publishes the result.
func (e *Engine) Rebuild(ctx context.Context) error {
	start := time.Now()
	now := e.cfg.Now()
	actions := map[netip.Prefix][]store.Action{}
	if err := e.st.AllActions(ctx, func(a store.Action) error {
		u := scoring.Unit(a.Prefix.Addr())
		actions[u] = append(actions[u], a)
		return nil
	}); err != nil {
		return fmt.Errorf("listing: rebuild: %w", err)
	}
	listed := map[netip.Prefix]entry{}
	var entries []zones.Entry
	var unit netip.Prefix
	var refs []store.Ref
	flush := func() {
		if len(refs) == 0 && unit.IsValid() && len(actions[unit]) == 0 {
			return
		}
		if !unit.IsValid() {
			return
		}
		d := scoring.Decide(&e.cfg.Policy, unit, refs, actions[unit], now)
		delete(actions, unit)
		if d.Listed {
			if c := zones.CodesOf(d.Kinds); c != 0 {
				listed[unit] = entry{codes: c, expires: unixOrZero(d.Expires)}
				entries = append(entries, zones.Entry{Prefix: unit, Codes: c})
			}
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
	snap := zones.Build(e.info(e.nextSerial()), entries)
	e.mu.Lock()
	e.listed = listed
	e.pending = map[netip.Prefix]zones.Codes{}
	subs := e.subs
	e.mu.Unlock()
	e.cur.Store(snap)
	e.metrics.published(snap)
	for _, fn := range subs {
		fn(snap)
	}
	e.log.Info("listing rebuilt", "listed", len(listed), "took", time.Since(start).Round(time.Millisecond), "serial", snap.Serial)
	return nil
}

func unixOrZero(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}

// Ingest commits ev durably, then re-scores its address. It returns after
// the commit: the caller may acknowledge the message. A duplicate event id
// is not an error (forwarding is at-least-once).
func (e *Engine) Ingest(ctx context.Context, ev *store.Event, raw []byte) error {
	err := e.st.Put(ctx, ev, raw)
	if errors.Is(err, store.ErrDuplicate) {
		e.metrics.duplicates.Inc()
		return nil
	}
	if err != nil {
		return err
	}
	e.metrics.events.WithLabelValues(ev.Kind.String()).Inc()
	if _, err := e.Rescore(ctx, scoring.Unit(ev.ClientIP)); err != nil {
		// The evidence is safe; the sweep will pick the address up again.
		e.log.Error("rescore after ingest", "err", err)
	}
	return nil
}

func (e *Engine) lock(unit netip.Prefix) *sync.Mutex {
	b := unit.Addr().As16()
	return &e.locks[maphash.Bytes(e.seed, b[:])%stripes]
}

// Decide returns the current decision for the unit holding a, from the store.
func (e *Engine) Decide(a netip.Addr) (scoring.Decision, []store.Ref, []store.Action, error) {
	unit := scoring.Unit(a)
	refs, err := e.st.Refs(unit)
	if err != nil {
		return scoring.Decision{}, nil, nil, err
	}
	acts, err := e.st.Actions(unit)
	if err != nil {
		return scoring.Decision{}, nil, nil, err
	}
	return scoring.Decide(&e.cfg.Policy, unit, refs, acts, e.cfg.Now()), refs, acts, nil
}

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
	old, was := e.listed[unit]
	if codes != 0 {
		e.listed[unit] = entry{codes: codes, expires: unixOrZero(d.Expires)}
	} else {
		delete(e.listed, unit)
	}
	changed := (was && old.codes != codes) || (!was && codes != 0)
	var gen uint64
	if changed {
		e.pending[unit] = codes
		gen = e.taken + 1
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
	return len(e.listed)
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

func (e *Engine) publish() {
	defer func() {
		if r := recover(); r != nil {
			e.metrics.panics.Inc()
			e.log.Error("panic publishing snapshot", "panic", r)
		}
	}()
	e.mu.Lock()
	if len(e.pending) == 0 {
		e.mu.Unlock()
		return
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
	start := time.Now()
	old := e.cur.Load()
	snap := old.With(e.info(e.nextSerial()), changes)
	e.cur.Store(snap)
	e.metrics.published(snap)
	e.metrics.publishSeconds.Observe(time.Since(start).Seconds())
	for _, fn := range subs {
		fn(snap)
	}
}

func (e *Engine) sweeper() {
	defer e.wg.Done()
	t := time.NewTicker(e.cfg.SweepEvery)
	defer t.Stop()
	for {
		select {
		case <-e.stop:
			return
		case <-t.C:
			e.Sweep(context.Background())
		}
	}
}

// Sweep re-scores every listed unit whose listing has lapsed.
func (e *Engine) Sweep(ctx context.Context) {
	defer func() {
		if r := recover(); r != nil {
			e.metrics.panics.Inc()
			e.log.Error("panic in sweep", "panic", r)
		}
	}()
	now := e.cfg.Now().Unix()
	var due []netip.Prefix
	e.mu.Lock()
	for u, en := range e.listed {
		if en.expires != 0 && en.expires <= now {
			due = append(due, u)
		}
	}
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
