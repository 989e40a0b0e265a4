package intake

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/blowback-dnsbl/blowback/forward"
	"github.com/blowback-dnsbl/blowback/internal/testenv"
	"github.com/blowback-dnsbl/blowback/store"
)

// fakeLog is a replicated log of two replicas: an append is applied to
// every store, as cluster.Replica's apply does.
type fakeLog struct {
	mu     sync.Mutex
	stores []*store.Store
	n      int
}

func (l *fakeLog) AppendRevocation(ctx context.Context, id, node string, sha256 []string, reason string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.n++
	t := time.Date(2026, 12, 1, 0, 0, l.n, 0, time.UTC) // the log's time
	for _, st := range l.stores {
		for range 2 { // a batch applied again changes nothing
			if err := ApplyRevocation(ctx, st, id, node, sha256, reason, t); err != nil {
				return err
			}
		}
	}
	return nil
}

// TestRevokeThroughLog: on a replica a revocation goes to the log; the
// replica that took it and another one both refuse the token once they
// applied it, each audits it once, and a second revocation finds nothing
// left to revoke.
func TestRevokeThroughLog(t *testing.T) {
	dir := t.TempDir()
	lg := &fakeLog{}
	e1 := startIntake(t, filepath.Join(dir, "r1"), func(c *Config) { c.Revocations = lg })
	e2 := startIntake(t, filepath.Join(dir, "r2"), func(c *Config) { c.Revocations = lg })
	lg.stores = []*store.Store{e1.st, e2.st}
	send := func(e *intakeEnv) int {
		code, _, _ := e.post(tokA, batchJSON(t, forward.Batch{Events: []store.Event{intakeEvent("192.0.2.31")}}), "")
		return code
	}
	if c1, c2 := send(e1), send(e2); c1 != 200 || c2 != 200 {
		t.Fatalf("before: %d %d", c1, c2)
	}
	n, err := e1.in.Revoke(context.Background(), "trap-a", "stolen")
	if err != nil || n != 1 || lg.n != 1 {
		t.Fatalf("revoke: %d %v (log appends %d)", n, err, lg.n)
	}
	if c := send(e1); c != 401 {
		t.Errorf("replica 1 after the revocation: %d", c)
	}
	testenv.Eventually(t, "replica 2 refuses the token", func() bool { return send(e2) == 401 })
	if n, err := e2.in.Revoke(context.Background(), "trap-a", "again"); err != nil || n != 0 || lg.n != 1 {
		t.Errorf("second revocation: %d %v (log appends %d)", n, err, lg.n)
	}
	for i, e := range []*intakeEnv{e1, e2} {
		audit, err := e.st.AuditLog(time.Time{}, 0)
		if err != nil {
			t.Fatal(err)
		}
		k := 0
		for _, a := range audit {
			if a.Action == "revoke-node" && a.Target == "trap-a" && a.Reason == "stolen" {
				k++
			}
		}
		if k != 1 {
			t.Errorf("replica %d: %d audit entries for the revocation, want 1", i+1, k)
		}
	}
}
