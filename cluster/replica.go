package cluster

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/blowback-dnsbl/blowback/forward"
	"github.com/blowback-dnsbl/blowback/internal/lifecycle"
	"github.com/blowback-dnsbl/blowback/listing"
	"github.com/blowback-dnsbl/blowback/scoring"
	"github.com/blowback-dnsbl/blowback/store"
)

// metaApplied is the store metadata key of the replica's position: the last
// applied stream sequence, the clock (unix seconds) and the serial base.
const metaApplied = "cluster_applied"

// ReplicaConfig configures a Replica.
type ReplicaConfig struct {
	// Name is the durable consumer's name: one per replica, stable across
	// restarts (default: "replica").
	Name string
	// Batch is the most messages applied at once (default 1000).
	Batch int
	// TickEvery is how often the replica appends a clock tick (one per
	// period across the cluster); default 1 minute, negative: never.
	TickEvery time.Duration
	// ApplyWait bounds how long AppendAction waits for the local apply
	// after the cluster's ack (default 5s).
	ApplyWait time.Duration
}

// Replica applies the stream to a local store and drives the listing
// engine with the log's clock. It implements listing.Log: the engine's
// writes (HTTP evidence intake, public delist, admin actions, the replica's
// own trap) are appended to the stream and come back through the apply.
type Replica struct {
	cfg     ReplicaConfig
	conn    *Conn
	st      *store.Store
	eng     *listing.Engine
	log     *slog.Logger
	metrics *replicaMetrics

	base    atomic.Uint32
	clock   atomic.Int64  // unix seconds: the largest (rounded-up) stream time applied
	applied atomic.Uint64 // last applied stream sequence (the serial's)
	settled atomic.Uint64 // applied and re-scored (Applied, WaitApplied)

	progMu sync.Mutex
	prog   chan struct{} // closed and replaced when applied moves

	revoker Revoker // nil: revocations in the log are skipped (no HTTP intake here)

	stream jetstream.Stream
	cons   jetstream.Consumer

	behind  uint64    // messages the consumer had after the last one fetched
	lastPub time.Time // last snapshot published

	loop *lifecycle.Loop // the applying goroutine
}

// NewReplica returns a replica applying the stream to st. Build the
// listing engine with ListingHooks, then call Attach and Start.
func NewReplica(cfg ReplicaConfig, conn *Conn, st *store.Store, log *slog.Logger, reg registerer) (*Replica, error) {
	if cfg.Name == "" {
		cfg.Name = "replica"
	}
	if token(cfg.Name) != cfg.Name {
		return nil, fmt.Errorf("%w: replica name %q: letters, digits, - and _ only", ErrConfig, cfg.Name)
	}
	if cfg.Batch <= 0 {
		cfg.Batch = 1000
	}
	if cfg.TickEvery == 0 {
		cfg.TickEvery = time.Minute
	}
	if cfg.ApplyWait <= 0 {
		cfg.ApplyWait = 5 * time.Second
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Replica{cfg: cfg, conn: conn, st: st, log: log.With("pkg", "cluster", "replica", cfg.Name),
		prog: make(chan struct{}), loop: lifecycle.NewLoop()}
	r.metrics = newReplicaMetrics(reg, r)
	if b, err := st.GetMeta(metaApplied); err == nil && len(b) == 20 {
		r.applied.Store(binary.BigEndian.Uint64(b))
		r.settled.Store(r.applied.Load())
		r.clock.Store(int64(binary.BigEndian.Uint64(b[8:])))
		r.base.Store(binary.BigEndian.Uint32(b[16:]))
	} else if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	return r, nil
}

// Now is the replica's clock: the log's time (listing.Config.Now).
func (r *Replica) Now() time.Time { return time.Unix(r.clock.Load(), 0).UTC() }

// Serial is the zone serial of the applied prefix (listing.Config.Serial):
// the stream's serial base plus the last applied sequence (RFC 1982
// arithmetic: it wraps after 2^32 messages).
func (r *Replica) Serial() uint32 { return r.base.Load() + uint32(r.applied.Load()) }

// Applied returns the last stream sequence applied, re-scored and (at the
// tail) published.
func (r *Replica) Applied() uint64 { return r.settled.Load() }

// ListingHooks sets the clock and serial of a replica's listing config.
func (r *Replica) ListingHooks(c listing.Config) listing.Config {
	c.Now, c.Serial = r.Now, r.Serial
	return c
}

// Attach makes eng's writes go through the log. The engine must not be
// started: the replica drives it.
func (r *Replica) Attach(eng *listing.Engine) {
	r.eng = eng
	eng.SetLog(r)
}

// Start learns the serial base (once; it is kept in the store), rebuilds
// the listing at the applied position, binds the durable consumer and
// starts applying. It waits for the cluster only when the store has never
// seen it.
func (r *Replica) Start(ctx context.Context) error {
	if r.eng == nil {
		return fmt.Errorf("%w: no listing engine attached", ErrConfig)
	}
	if r.base.Load() == 0 {
		for {
			b, err := r.conn.SerialBase(ctx)
			if err == nil {
				r.base.Store(b)
				break
			}
			if errors.Is(err, ErrNoBase) {
				return err
			}
			r.log.Warn("waiting for the cluster", "err", err)
			select {
			case <-ctx.Done():
				return fmt.Errorf("cluster: serial base: %w", err)
			case <-time.After(time.Second):
			}
		}
	}
	if err := r.eng.Rebuild(ctx); err != nil {
		return err
	}
	r.log.Info("replica starting", "applied", r.applied.Load(), "clock", r.Now(), "serial", r.Serial())
	go r.run()
	return nil
}

// Stop stops applying; a batch in progress finishes first.
func (r *Replica) Stop(ctx context.Context) error { return r.loop.Stop(ctx) }

// WaitApplied waits until the replica applied seq (or ctx ends).
func (r *Replica) WaitApplied(ctx context.Context, seq uint64) error {
	for {
		r.progMu.Lock()
		ch := r.prog
		r.progMu.Unlock()
		if r.settled.Load() >= seq {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		case <-r.loop.Stopping():
			return ErrStopped
		}
	}
}

// AppendEvent appends an event to the log (listing.Log).
func (r *Replica) AppendEvent(ctx context.Context, ev *store.Event, raw []byte) error {
	_, err := r.conn.PublishEvent(ctx, ev, raw)
	return err
}

// AppendAction appends an action and waits, within ApplyWait, until this
// replica applied it (listing.Log).
func (r *Replica) AppendAction(ctx context.Context, a store.Action) error {
	seq, err := r.conn.PublishAction(ctx, a)
	return r.waitOwn(ctx, seq, err)
}

// Revoker applies node revocations from the log (package intake).
type Revoker interface {
	// ApplyRevocation records the revocation with id (once) at time t.
	ApplyRevocation(ctx context.Context, id, node string, sha256 []string, reason string, t time.Time) error
}

// SetRevoker makes the replica apply node revocations from the log with
// rv. Call before Start.
func (r *Replica) SetRevoker(rv Revoker) { r.revoker = rv }

// AppendAllow appends an allowlist change and waits, within ApplyWait,
// until this replica applied it (listing.Log).
func (r *Replica) AppendAllow(ctx context.Context, c listing.AllowChange) error {
	seq, err := r.conn.PublishAllow(ctx, c)
	return r.waitOwn(ctx, seq, err)
}

// AppendRevocation appends a node revocation (HTTP intake's revoke on a
// replica) and waits, within ApplyWait, until this replica applied it.
func (r *Replica) AppendRevocation(ctx context.Context, id, node string, sha256 []string, reason string) error {
	seq, err := r.conn.PublishAdmin(ctx, adminMsg{ID: id, Revoke: &Revocation{Node: node, SHA256: sha256, Reason: reason}})
	return r.waitOwn(ctx, seq, err)
}

// waitOwn follows a publish of this replica's own write: it returns the
// publish error perr, else waits, within ApplyWait, until this replica
// applied seq (the cluster acknowledged it) and returns nil even when the
// wait ran out.
func (r *Replica) waitOwn(ctx context.Context, seq uint64, perr error) error {
	if perr != nil {
		return perr
	}
	wctx, cancel := context.WithTimeout(ctx, r.cfg.ApplyWait)
	defer cancel()
	if err := r.WaitApplied(wctx, seq); err != nil {
		// Durable in the cluster; it shows here once the apply catches up.
		r.log.Warn("change acknowledged by the cluster, not yet applied here", "seq", seq, "err", err)
	}
	return nil
}

// consumer binds the durable consumer, starting after the applied
// position. A consumer that acknowledged more than the store holds (the
// store was replaced or restored from an older backup) is recreated.
func (r *Replica) consumer(ctx context.Context) error {
	s, err := r.conn.js.Stream(ctx, r.conn.cfg.Stream)
	if err != nil {
		return err
	}
	applied := r.applied.Load()
	c, err := s.Consumer(ctx, r.cfg.Name)
	if err == nil {
		info, err := c.Info(ctx)
		if err != nil {
			return err
		}
		if info.AckFloor.Stream <= applied {
			r.stream, r.cons = s, c
			return nil
		}
		r.log.Warn("consumer is ahead of the store; recreating it", "ack_floor", info.AckFloor.Stream, "applied", applied)
		if err := s.DeleteConsumer(ctx, r.cfg.Name); err != nil {
			return err
		}
	} else if !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return err
	}
	cc := jetstream.ConsumerConfig{
		Durable:       r.cfg.Name,
		Description:   "blowback replica " + r.cfg.Name,
		AckPolicy:     jetstream.AckAllPolicy,
		AckWait:       time.Minute,
		MaxAckPending: 4 * r.cfg.Batch,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	}
	if applied > 0 {
		cc.DeliverPolicy, cc.OptStartSeq = jetstream.DeliverByStartSequencePolicy, applied+1
	}
	c, err = s.CreateOrUpdateConsumer(ctx, cc)
	if err != nil {
		return err
	}
	r.stream, r.cons = s, c
	return nil
}

// logMsg is one stream message as the apply needs it.
type logMsg struct {
	seq  uint64
	subj string
	data []byte
	ts   time.Time
}

func (r *Replica) run() {
	defer r.loop.Exit()
	ctx, cancel := lifecycle.StopContext(r.loop.Stopping())
	defer cancel()
	if r.cfg.TickEvery > 0 {
		go r.ticker(ctx)
	}
	fails := 0
	fail := func(what string, err error) {
		fails++
		d := forward.Backoff(fails, 200*time.Millisecond, 2*time.Second) // short: a NATS server failing over takes seconds
		r.metrics.failures.Inc()
		r.log.Warn(what, "err", err, "attempt", fails, "retry_in", d.Round(time.Millisecond))
		select {
		case <-ctx.Done():
		case <-time.After(d):
		}
	}
	for ctx.Err() == nil {
		if r.cons == nil {
			if err := r.consumer(ctx); err != nil {
				fail("binding the consumer", err)
				continue
			}
		}
		msgs, last, err := r.fetch(ctx)
		if err != nil {
			if ctx.Err() == nil {
				fail("fetching from the stream", err)
				if errors.Is(err, jetstream.ErrConsumerNotFound) || errors.Is(err, jetstream.ErrStreamNotFound) {
					r.cons = nil
				}
			}
			continue
		}
		if last == nil {
			continue
		}
		for _, step := range r.steps(msgs) {
			for ctx.Err() == nil {
				if err = r.apply(ctx, step); err == nil {
					break
				}
				fail("applying a batch", err)
			}
			if err != nil {
				break
			}
		}
		if err != nil || ctx.Err() != nil {
			return // not acknowledged: what was applied is skipped by sequence when redelivered
		}
		fails = 0
		// AckAll: one ack covers every message up to this one.
		if err := last.Ack(); err != nil {
			r.log.Debug("ack", "err", err) // redelivered, then skipped by sequence
		}
	}
}

// fetch returns the next messages after the applied position, in sequence
// order without gaps (a gap is filled from the stream directly: a message
// delivered before and lost in flight would otherwise be acknowledged by a
// later AckAll without being applied), and the last one delivered (to ack).
func (r *Replica) fetch(ctx context.Context) ([]logMsg, jetstream.Msg, error) {
	// What is there now (under load: full batches, no waiting); when
	// nothing is, wait a little for the next messages.
	b, err := r.cons.FetchNoWait(r.cfg.Batch)
	if err != nil {
		return nil, nil, err
	}
	msgs, last, err := r.collect(ctx, b)
	if err != nil || last != nil {
		return msgs, last, err
	}
	if b, err = r.cons.Fetch(r.cfg.Batch, jetstream.FetchMaxWait(250*time.Millisecond)); err != nil {
		return nil, nil, err
	}
	return r.collect(ctx, b)
}

func (r *Replica) collect(ctx context.Context, b jetstream.MessageBatch) ([]logMsg, jetstream.Msg, error) {
	var msgs []logMsg
	var last jetstream.Msg
	next := r.applied.Load() + 1
	for m := range b.Messages() {
		md, err := m.Metadata()
		if err != nil {
			continue
		}
		last = m
		seq := md.Sequence.Stream
		if seq < next {
			continue // applied before (a redelivery)
		}
		for ; next < seq; next++ {
			raw, err := r.stream.GetMsg(ctx, next)
			if errors.Is(err, jetstream.ErrMsgNotFound) {
				r.metrics.gaps.Inc()
				r.log.Warn("stream message gone (retention): replicas that start this late need a snapshot", "seq", next)
				continue
			}
			if err != nil {
				return nil, nil, err
			}
			msgs = append(msgs, logMsg{seq: raw.Sequence, subj: raw.Subject, data: raw.Data, ts: raw.Time})
		}
		msgs = append(msgs, logMsg{seq: seq, subj: m.Subject(), data: m.Data(), ts: md.Timestamp})
		r.behind = md.NumPending
		next = seq + 1
	}
	if err := b.Error(); err != nil && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, jetstream.ErrNoHeartbeat) && len(msgs) == 0 {
		return nil, nil, err
	}
	return msgs, last, nil
}

// tailSteps is the largest batch that a replica at the tail of the stream
// applies (and publishes) one message at a time.
const tailSteps = 64

// steps cuts a batch into the batches applied. At the tail of the stream
// (nothing more waiting) a small batch is applied and published message by
// message: every replica at the tail then publishes every position, so a
// secondary that switches primaries finds the serial it holds in the new
// primary's journal and gets IXFR (TestClusterSecondarySwitchesPrimaries).
// Catching up, or under a load that fills larger batches, a batch is one
// step (cheaper; the publications then differ between replicas, and a
// secondary switching then gets the whole zone, as RFC 1995 §4 allows).
func (r *Replica) steps(msgs []logMsg) [][]logMsg {
	if r.behind != 0 || len(msgs) > tailSteps {
		return [][]logMsg{msgs}
	}
	out := make([][]logMsg, len(msgs))
	for i := range msgs {
		out[i] = msgs[i : i+1]
	}
	return out
}

// ceilUnix is t in whole seconds, rounded up.
func ceilUnix(t time.Time) int64 {
	s := t.Unix()
	if t.Nanosecond() > 0 {
		s++
	}
	return s
}

// apply applies msgs (in sequence order, after the applied position): see
// the package doc for why the result does not depend on batch boundaries.
func (r *Replica) apply(ctx context.Context, msgs []logMsg) (err error) {
	defer func() {
		if p := recover(); p != nil {
			r.metrics.panics.Inc()
			err = fmt.Errorf("cluster: panic applying: %v", p)
		}
	}()
	if len(msgs) == 0 {
		return nil
	}
	start := time.Now()
	clock := r.clock.Load()
	touched := map[netip.Prefix]struct{}{}
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		putErr   error
		inserted int
		dups     int
	)
	sem := make(chan struct{}, 256) // concurrent Puts share fsyncs (store group commit)
	type put struct {
		ev  *store.Event
		raw []byte
	}
	perNet := map[netip.Prefix][]put{} // by store.Network
	var nets []netip.Prefix            // in order of first appearance
	prefix := r.conn.cfg.Subject + "."
	var events, actions, ticks, rejected int
	for _, m := range msgs {
		ts := m.ts.UTC()
		clock = max(clock, ceilUnix(ts))
		kind, rest, _ := strings.Cut(strings.TrimPrefix(m.subj, prefix), ".")
		switch kind {
		case "event":
			var em eventMsg
			var ev store.Event
			if err := json.Unmarshal(m.data, &em); err != nil || json.Unmarshal(em.Event, &ev) != nil || ev.Validate() != nil {
				rejected++
				r.log.Warn("invalid event in the log; skipped", "seq", m.seq)
				continue
			}
			if !scoring.Listable(ev.ClientIP) { // as listing.Engine.Ingest: never stored
				rejected++
				continue
			}
			// Time is taken from the log: a trap clock ahead of it is clamped.
			if ev.Time.After(ts) {
				ev.Time = ts
			}
			if rest != "" && rest != "_" {
				ev.Node = rest // the subject the node may publish on (NATS permissions)
			}
			events++
			touched[scoring.Unit(ev.ClientIP)] = struct{}{}
			n := store.Network(ev.ClientIP)
			if perNet[n] == nil {
				nets = append(nets, n)
			}
			perNet[n] = append(perNet[n], put{ev: &ev, raw: em.Raw})
		case "action":
			var am actionMsg
			if err := json.Unmarshal(m.data, &am); err != nil || !am.Action.Prefix.IsValid() {
				rejected++
				r.log.Warn("invalid action in the log; skipped", "seq", m.seq)
				continue
			}
			a := am.Action
			a.Time = ts // time from the log, never after the clock
			a.Prefix = scoring.Unit(a.Prefix.Addr())
			done, err := r.hasAction(a)
			if err != nil {
				wg.Wait()
				return err
			}
			if !done {
				if err := r.st.AddAction(ctx, a); err != nil {
					if errors.Is(err, store.ErrInvalid) {
						rejected++
						continue
					}
					wg.Wait()
					return err
				}
			}
			actions++
			touched[a.Prefix] = struct{}{}
		case "admin":
			var am adminMsg
			if err := json.Unmarshal(m.data, &am); err != nil || am.ID == "" {
				rejected++
				r.log.Warn("invalid admin change in the log; skipped", "seq", m.seq)
				continue
			}
			units, err := r.applyAdmin(ctx, am, ts)
			if errors.Is(err, listing.ErrAllow) {
				rejected++
				r.log.Warn("invalid admin change in the log; skipped", "seq", m.seq, "err", err)
				continue
			}
			if err != nil {
				wg.Wait()
				return err
			}
			actions++
			for _, u := range units {
				touched[u] = struct{}{}
			}
		case "tick":
			ticks++
		default:
			rejected++
		}
	}
	// One goroutine per network (IPv4 /24, IPv6 /48: store.Network), its
	// events in stream order: the store's per-unit and per-network caps
	// decide in commit order (store/unitcap.go), so every replica stores
	// and summarises the same events. Networks run concurrently and share
	// fsyncs (store group commit).
	for _, n := range nets {
		wg.Add(1)
		sem <- struct{}{}
		go func(puts []put) {
			defer func() { <-sem; wg.Done() }()
			for _, p := range puts {
				err := r.st.Put(ctx, p.ev, p.raw)
				failed := false
				mu.Lock()
				switch {
				case err == nil:
					inserted++
				case errors.Is(err, store.ErrDuplicate):
					dups++
				case errors.Is(err, store.ErrInvalid):
					rejected++
				default:
					putErr, failed = err, true
				}
				mu.Unlock()
				if failed {
					return // the batch is applied again; the rest of this network waits for it
				}
			}
		}(perNet[n])
	}
	wg.Wait()
	if putErr != nil {
		return putErr
	}
	last := msgs[len(msgs)-1].seq
	pos := binary.BigEndian.AppendUint64(nil, last)
	pos = binary.BigEndian.AppendUint64(pos, uint64(clock))
	pos = binary.BigEndian.AppendUint32(pos, r.base.Load())
	if err := r.st.SetMeta(metaApplied, pos); err != nil {
		return err
	}
	r.clock.Store(clock)
	r.applied.Store(last)
	for u := range touched {
		if _, err := r.eng.Rescore(ctx, u); err != nil {
			r.log.Error("rescore", "unit", u, "err", err) // the next start's rebuild decides it again
		}
	}
	r.eng.Sweep(ctx)
	// Catching up (more is waiting): publish at most once a second; the
	// changes wait in the engine and the next publication carries them.
	// At the tail every batch is published, with the serial of its position.
	if r.behind == 0 || time.Since(r.lastPub) >= time.Second {
		r.eng.PublishNow()
		r.lastPub = time.Now()
	}
	r.settled.Store(last)
	r.progMu.Lock()
	close(r.prog)
	r.prog = make(chan struct{})
	r.progMu.Unlock()
	r.metrics.observe(inserted, dups, actions, ticks, rejected, time.Since(start))
	r.log.Debug("applied", "last", last, "events", events, "new", inserted, "duplicates", dups, "actions", actions,
		"ticks", ticks, "rejected", rejected, "clock", time.Unix(clock, 0).UTC(), "took", time.Since(start))
	return nil
}

// applyAdmin applies an admin change at the log's time ts, once by its id,
// and returns the units to re-score.
func (r *Replica) applyAdmin(ctx context.Context, am adminMsg, ts time.Time) ([]netip.Prefix, error) {
	switch {
	case am.Allow != nil:
		c := *am.Allow
		c.ID, c.Time = am.ID, ts
		c, err := r.eng.CheckAllow(c)
		if err != nil {
			return nil, err
		}
		return r.eng.ApplyAllow(ctx, c)
	case am.Revoke != nil:
		if r.revoker == nil {
			return nil, nil
		}
		rv := am.Revoke
		return nil, r.revoker.ApplyRevocation(ctx, am.ID, rv.Node, rv.SHA256, rv.Reason, ts)
	}
	return nil, fmt.Errorf("%w: empty admin change", listing.ErrAllow)
}

// hasAction reports whether a (same time, op, who and reason) is stored:
// a batch re-applied after a crash adds it once.
func (r *Replica) hasAction(a store.Action) (bool, error) {
	acts, err := r.st.Actions(a.Prefix)
	if err != nil {
		return false, err
	}
	for _, x := range acts {
		if x.Time.Equal(a.Time) && x.Op == a.Op && x.Who == a.Who && x.Reason == a.Reason && x.Prefix == a.Prefix {
			return true, nil
		}
	}
	return false, nil
}

// ticker appends a clock tick every TickEvery.
func (r *Replica) ticker(ctx context.Context) {
	t := time.NewTicker(r.cfg.TickEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			if err := r.conn.PublishTick(ctx, now, r.cfg.TickEvery); err != nil && ctx.Err() == nil {
				r.log.Debug("tick", "err", err)
			}
		}
	}
}

// Position is a replica's applied position as its store keeps it.
type Position struct {
	Applied    uint64    // last applied stream sequence
	Clock      time.Time // the log's clock there
	SerialBase uint32
}

// Serial is the zone serial at the position.
func (p Position) Serial() uint32 { return p.SerialBase + uint32(p.Applied) }

// StoredPosition reads the position a replica persisted in st; ok is false
// when st never belonged to a replica. Offline commands on a stopped
// replica's data directory decide with it instead of the host clock.
func StoredPosition(st *store.Store) (p Position, ok bool, err error) {
	b, err := st.GetMeta(metaApplied)
	if errors.Is(err, store.ErrNotFound) {
		return p, false, nil
	}
	if err != nil {
		return p, false, err
	}
	if len(b) != 20 {
		return p, false, fmt.Errorf("cluster: stored position: %d bytes", len(b))
	}
	p.Applied = binary.BigEndian.Uint64(b)
	p.Clock = time.Unix(int64(binary.BigEndian.Uint64(b[8:])), 0).UTC()
	p.SerialBase = binary.BigEndian.Uint32(b[16:])
	return p, true, nil
}
