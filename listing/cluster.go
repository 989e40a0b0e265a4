package listing

import (
	"context"

	"github.com/blowback-dnsbl/blowback/scoring"
	"github.com/blowback-dnsbl/blowback/store"
)

// Log is the replicated log a cluster replica writes through (package
// cluster): evidence and manual actions are appended to it instead of being
// written to the local store, and come back to every replica's store when
// the replica applies the log (in order, with the log's time). Both calls
// return once the cluster has the write durably.
type Log interface {
	AppendEvent(ctx context.Context, ev *store.Event, raw []byte) error
	// AppendAction returns after the cluster's acknowledgement and, within a
	// short bound, after this replica applied it, so that a page answering
	// a delist shows it.
	AppendAction(ctx context.Context, a store.Action) error
	// AppendAllow appends an allowlist change (allow.go), with the same
	// guarantees as AppendAction.
	AppendAllow(ctx context.Context, c AllowChange) error
}

// SetLog makes every Ingest and Act go through l (a cluster replica). Call
// before the engine is used; the replica then drives the engine without
// Start: it writes to the store itself, calls Rescore and Sweep with the
// log's clock (Config.Now) and PublishNow after each applied batch, so the
// same log prefix gives the same snapshot and serial (Config.Serial) on
// every replica.
func (e *Engine) SetLog(l Log) { e.wlog = l }

// PublishNow publishes the pending changes synchronously, and a new serial
// even when nothing changed (a replica's serial follows the log position).
// Only for an engine that was not started (no publisher of its own).
func (e *Engine) PublishNow() { e.publishChanges(true) }

func (e *Engine) actViaLog(ctx context.Context, a store.Action) (scoring.Decision, error) {
	if err := e.wlog.AppendAction(ctx, a); err != nil {
		return scoring.Decision{}, err
	}
	d, _, _, err := e.Decide(a.Prefix.Addr())
	return d, err
}
