package web

import (
	"net/netip"
	"testing"
	"time"

	"github.com/blowback-dnsbl/blowback/scoring"
	"github.com/blowback-dnsbl/blowback/store"
)

// BenchmarkReplayHistory is the worst public history replay: historyRefs
// refs in bursts that each list the unit, far enough apart to expire in
// between, so the walk back makes historyEvents changes.
func BenchmarkReplayHistory(b *testing.B) {
	p := scoring.DefaultPolicy()
	unit := netip.MustParsePrefix("192.0.2.7/32")
	now := time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)
	gap := time.Duration(p.RepeatMax)*p.MaxAge + 24*time.Hour // past even a repeat offender's max age
	const burst = 40
	refs := make([]store.Ref, 0, historyRefs)
	for i := range historyRefs {
		at := now.Add(-time.Duration(historyRefs/burst-i/burst) * gap).Add(time.Duration(i%burst) * time.Minute)
		refs = append(refs, store.Ref{ID: store.NewEventID(), Addr: unit.Addr(), Time: at, Kind: store.KindBounce,
			Rcpt: uint32(i), Domain: uint32(i % 3)})
	}
	evs := replay(scoring.NewDecider(&p), unit, refs, nil, now, time.Time{})
	b.Logf("%d refs, %d history entries", len(refs), len(evs))
	b.ResetTimer()
	for b.Loop() {
		replay(scoring.NewDecider(&p), unit, refs, nil, now, time.Time{})
	}
}
