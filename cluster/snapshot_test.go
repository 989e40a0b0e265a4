package cluster_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/blowback-dnsbl/blowback/store"
	"github.com/blowback-dnsbl/blowback/zones"
)

// TestClusterSnapshotJoin: when the stream no longer holds the beginning
// (retention), a new replica starts from a backup of a running replica
// (which carries its position) and continues the stream from there,
// ending with the same events, serial and export as the others.
func TestClusterSnapshotJoin(t *testing.T) {
	nc, cfg, admin := startLog(t, 1, 3*time.Second, 5000)
	ctx := context.Background()
	r1 := startReplica(t, cfg, "r1")
	tr := startTrap(t, cfg, "trap1")
	last := func() uint64 { s, _ := admin.StreamLastSeq(ctx); return s }
	send := func(from, to int) {
		for i := from; i < to; i++ {
			if err := tr.snd.Ingest(ctx, event(i, tr.node), nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	send(0, 100)
	waitFor(t, "replica 1 applied the first 100", 60*time.Second, func() bool {
		return tr.sp.Len() == 0 && last() == 100 && r1.rep.Applied() == 100
	})
	var backup bytes.Buffer
	if err := r1.st.Backup(&backup); err != nil {
		t.Fatal(err)
	}
	// Retention: the stream drops everything up to here.
	nconn, err := nats.Connect(nc.URLs()[0])
	if err != nil {
		t.Fatal(err)
	}
	defer nconn.Close()
	js, _ := jetstream.New(nconn)
	s, err := js.Stream(ctx, "BLOWBACK")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Purge(ctx, jetstream.WithPurgeSequence(101)); err != nil {
		t.Fatal(err)
	}
	// The new replica: restore, then follow the stream.
	r3dir := filepath.Join(t.TempDir(), "r3")
	st, err := store.Open(r3dir, store.DefaultOptions(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Restore(&backup); err != nil {
		t.Fatal(err)
	}
	st.Close()
	r3 := runReplica(t, &replicaNode{name: "r3", dir: r3dir, cfg: cfg})
	send(100, 160)
	waitFor(t, "both replicas applied the rest", 60*time.Second, func() bool {
		l := last()
		return tr.sp.Len() == 0 && l == 160 && r1.rep.Applied() == l && r3.rep.Applied() == l
	})
	count := func(st *store.Store) int {
		n := 0
		st.ScanRefs(ctx, func(store.Ref) error { n++; return nil })
		return n
	}
	if a, b := count(r1.st), count(r3.st); a != 160 || b != 160 {
		t.Errorf("events: r1 %d, r3 %d, want 160", a, b)
	}
	s1, s3 := r1.cur.Load(), r3.cur.Load()
	if s1.Serial != 5160 || s3.Serial != s1.Serial {
		t.Errorf("serials r1 %d r3 %d, want 5160", s1.Serial, s3.Serial)
	}
	var e1, e3 bytes.Buffer
	zones.WriteRbldnsd(&e1, s1, zones.SOA{})
	zones.WriteRbldnsd(&e3, s3, zones.SOA{})
	if !bytes.Equal(e1.Bytes(), e3.Bytes()) || s1.Len() < 160 {
		t.Errorf("exports differ (%d and %d bytes) or too few listed (%d)", e1.Len(), e3.Len(), s1.Len())
	}
}

// TestClusterReplicaLosesDisk: a replica whose disk is replaced comes back
// under the same name; its durable consumer had acknowledged everything,
// so it is recreated at the (empty) store's position and the replica
// applies the whole stream again.
func TestClusterReplicaLosesDisk(t *testing.T) {
	_, cfg, admin := startLog(t, 1, 3*time.Second, 100)
	ctx := context.Background()
	r1 := startReplica(t, cfg, "r1")
	for i := range 50 {
		if _, err := admin.PublishEvent(ctx, event(i, "trap1"), nil); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "applied", 60*time.Second, func() bool { return r1.rep.Applied() == 50 })
	before := r1.cur.Load().Serial
	r1.stop()
	if err := os.RemoveAll(r1.dir); err != nil {
		t.Fatal(err)
	}
	r1.start()
	waitFor(t, "applied again from an empty disk", 60*time.Second, func() bool { return r1.rep.Applied() == 50 })
	n := 0
	r1.st.ScanRefs(ctx, func(store.Ref) error { n++; return nil })
	if n != 50 || r1.cur.Load().Serial != before || before != 150 {
		t.Errorf("after the new disk: %d events (want 50), serial %d (before %d, want 150)", n, r1.cur.Load().Serial, before)
	}
}
