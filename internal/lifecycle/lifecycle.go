// Package lifecycle runs a node's components: it starts them in order,
// stops them in reverse under one deadline, and keeps track of a component
// that stops working by itself (a listener whose serve loop ended), so that
// the node's readiness check turns red instead of a log line going unseen.
//
// cmd/blowback's `run` and `trap` nodes are each one Group.
package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Component is one part of a node. Stop is called only after Start
// succeeded; its context ends at the node's one stop deadline, after which
// it should force-close what is left.
type Component struct {
	Name  string
	Start func(ctx context.Context) error
	Stop  func(ctx context.Context) error
}

// Group starts and stops components and records the ones that died.
type Group struct {
	log *slog.Logger

	mu       sync.Mutex
	started  []Component
	running  bool // every component started, Stop not called
	stopping bool
	dead     []error // "NAME: err", in the order they died
}

// New returns an empty group.
func New(log *slog.Logger) *Group {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Group{log: log}
}

// Start starts comps in order. It returns the first error, as "start NAME:
// err", and leaves what started so far for Stop.
func (g *Group) Start(ctx context.Context, comps ...Component) error {
	for _, c := range comps {
		g.mu.Lock()
		stopping := g.stopping
		g.mu.Unlock()
		if stopping {
			return fmt.Errorf("start %s: %w", c.Name, errStopping)
		}
		if err := c.Start(ctx); err != nil {
			return fmt.Errorf("start %s: %w", c.Name, err)
		}
		g.mu.Lock()
		g.started = append(g.started, c)
		g.mu.Unlock()
	}
	g.mu.Lock()
	g.running = !g.stopping
	g.mu.Unlock()
	return nil
}

var errStopping = errors.New("lifecycle: stopping")

// Fail records that component name stopped working by itself (err says
// how): Ready is false from now on. Calls while stopping are ignored (a
// listener closed by Stop ends its serve loop too).
func (g *Group) Fail(name string, err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.stopping {
		return
	}
	if err == nil {
		err = errors.New("stopped")
	}
	g.dead = append(g.dead, fmt.Errorf("%s: %w", name, err))
	g.log.Error("component stopped working; /readyz reports not ready until restart", "component", name, "err", err)
}

// Failer is Fail for one component, to hand to it as its failure hook.
func (g *Group) Failer(name string) func(error) {
	return func(err error) { g.Fail(name, err) }
}

// Ready reports whether every component started, none died and Stop was
// not called.
func (g *Group) Ready() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.running && len(g.dead) == 0
}

// Err is the components that died (joined), nil when none did.
func (g *Group) Err() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return errors.Join(g.dead...)
}

// Stop stops the started components in reverse order, all under ctx's one
// deadline: a slow component leaves less time to the next ones, whose
// contexts may then be done on entry (they force-close). Errors are
// joined as "stop NAME: err"; a component's context.Canceled is not one.
func (g *Group) Stop(ctx context.Context) error {
	g.mu.Lock()
	g.stopping, g.running = true, false
	started := g.started
	g.started = nil
	g.mu.Unlock()
	var errs []error
	for i := len(started) - 1; i >= 0; i-- {
		c := started[i]
		if err := c.Stop(ctx); err != nil && !errors.Is(err, context.Canceled) {
			g.log.Warn("stop", "component", c.Name, "err", err)
			errs = append(errs, fmt.Errorf("stop %s: %w", c.Name, err))
		}
	}
	return errors.Join(errs...)
}

// Every calls fn every interval until stop is closed: the background loop
// of a component (value-log GC, sweeps). A panic in fn is the caller's to
// recover, around Every.
func Every(stop <-chan struct{}, interval time.Duration, fn func()) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			fn()
		}
	}
}

// Loop is the stop signal of a component's one background goroutine and
// the sign that it ended: the goroutine watches Stopping and defers Exit;
// the component's Stop calls Loop.Stop.
type Loop struct {
	stop, done chan struct{}
	once       sync.Once
}

// NewLoop returns the Loop of a goroutine that is to start.
func NewLoop() *Loop { return &Loop{stop: make(chan struct{}), done: make(chan struct{})} }

// Stopping is closed once Stop was called.
func (l *Loop) Stopping() <-chan struct{} { return l.stop }

// Exit records that the goroutine ended; it defers it first thing.
func (l *Loop) Exit() { close(l.done) }

// Done is closed once the goroutine ended.
func (l *Loop) Done() <-chan struct{} { return l.done }

// Stop closes Stopping (the first time) and waits until the goroutine
// ended or ctx ends, whose error it then returns.
func (l *Loop) Stop(ctx context.Context) error {
	l.once.Do(func() { close(l.stop) })
	select {
	case <-l.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Recover, deferred at the top of a goroutine or a background operation,
// ends a panic there: it is counted on panics (when not nil) and logged as
// msg with the panic value (STYLE.md: recover, count, go on).
func Recover(log *slog.Logger, panics interface{ Inc() }, msg string) {
	if v := recover(); v != nil {
		if panics != nil {
			panics.Inc()
		}
		log.Error(msg, "panic", v)
	}
}

// StopContext is a context that ends when stop is closed (or cancel is
// called): the context of a background operation a component's Stop must
// end.
func StopContext(stop <-chan struct{}) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		select {
		case <-stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

// Wait waits for wg until ctx ends; it returns ctx's error if that comes
// first (a Stop's deadline).
func Wait(ctx context.Context, wg *sync.WaitGroup) error {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
