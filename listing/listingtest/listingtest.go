// Package listingtest runs a store and a listing engine on it, for the
// tests of the packages that read and write through them (web, intake).
package listingtest

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/blowback-dnsbl/blowback/listing"
	"github.com/blowback-dnsbl/blowback/scoring"
	"github.com/blowback-dnsbl/blowback/store"
	"github.com/blowback-dnsbl/blowback/zones"
)

// Zone is the zone the engine serves.
const Zone = "bl.blowback.test"

// Env is a started engine and its store.
type Env struct {
	Store   *store.Store
	Engine  *listing.Engine
	Current *zones.Current
	once    sync.Once
}

// Start opens a store in dir and starts an engine on it for Zone (TXT
// "see $", TTL one minute) with the policy pol, its metrics in reg. Both
// stop when the test ends, after what the test registered later to stop
// (a server in front of them); Stop stops them earlier.
func Start(t testing.TB, dir string, pol scoring.Policy, log *slog.Logger, reg prometheus.Registerer) *Env {
	t.Helper()
	st, err := store.Open(dir, store.DefaultOptions(), log)
	if err != nil {
		t.Fatal(err)
	}
	e := &Env{Store: st, Current: &zones.Current{}}
	e.Engine = listing.New(listing.Config{Zone: Zone, TXT: "see $", TTL: time.Minute, Policy: pol}, st, e.Current, log, reg)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := e.Engine.Start(ctx); err != nil {
		st.Close()
		t.Fatal(err)
	}
	t.Cleanup(e.Stop)
	return e
}

// Stop stops the engine and closes the store, once.
func (e *Env) Stop() {
	e.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		e.Engine.Stop(ctx)
		e.Store.Close()
	})
}
