package cluster_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// BenchmarkClusterTwoTraps: two traps' spools, filled beforehand with b.N
// events, drain into a 3-server JetStream cluster (R3, in process, stores
// on disk) and two replicas apply them (synced badger stores); the clock
// runs until both replicas applied everything. Then a third replica starts
// from an empty disk and catches up: catchup_events/s. Compare with
// cmd/blowback's BenchmarkForwardTwoTraps (today's HTTP path).
//
//	go test ./cluster -run '^$' -bench ClusterTwoTraps -benchtime 20000x
func BenchmarkClusterTwoTraps(b *testing.B) {
	for _, c := range []struct {
		name string
		raw  int
		sync bool
	}{{"raw=0", 0, false}, {"raw=800", 800, false}, {"raw=0/sync_always", 0, true}} {
		b.Run(c.name, func(b *testing.B) { benchTwoTraps(b, c.raw, c.sync) })
	}
}

func benchTwoTraps(b *testing.B, rawLen int, sync bool) {
	_, cfg, _ := startLog(b, 3, 0, 1, func(o *server.Options) { o.SyncAlways = sync })
	ctx := context.Background()
	dir := b.TempDir()
	raw := make([]byte, rawLen)
	for i := range raw {
		raw[i] = "Final-Recipient: rfc822; x@example.org\r\n"[i%40]
	}
	// Fill the spools with the senders not yet running.
	traps := make([]*trapNode, 2)
	for i := range traps {
		tr := &trapNode{t: b, node: "trap" + strconv.Itoa(i), dir: filepath.Join(dir, "t"+strconv.Itoa(i)), cfg: cfg}
		tr.start()
		tr.snd.Stop(ctx) // no sending yet
		traps[i] = tr
	}
	for i := range b.N {
		tr := traps[i%2]
		if err := tr.sp.Put(ctx, event(i, tr.node), raw); err != nil {
			b.Fatal(err)
		}
	}
	for _, tr := range traps {
		tr.stop()
	}
	r1 := startReplica(b, cfg, "r1")
	r2 := startReplica(b, cfg, "r2")
	b.ResetTimer()
	start := time.Now()
	for _, tr := range traps {
		tr.start()
	}
	n := uint64(b.N)
	waitFor(b, "replicas applied", 10*time.Minute, func() bool { return r1.rep.Applied() >= n && r2.rep.Applied() >= n })
	el := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/el.Seconds(), "events/s")
	t0 := time.Now()
	r3 := startReplica(b, cfg, "r3")
	waitFor(b, "new replica caught up", 10*time.Minute, func() bool { return r3.rep.Applied() >= n })
	b.ReportMetric(float64(b.N)/time.Since(t0).Seconds(), "catchup_events/s")
}

// BenchmarkClusterCatchUp: the stream (3 servers, R3) holds b.N events,
// each from its own address, published directly; a replica starts from an
// empty disk and applies them all: catchup_s is the time from its start
// until it applied the last one (and published it), as a new replica
// joining a cluster with b.N events in its log would take.
//
//	go test ./cluster -run '^$' -bench ClusterCatchUp -benchtime 1000000x -timeout 30m
func BenchmarkClusterCatchUp(b *testing.B) {
	nc, cfg, admin := startLog(b, 3, 0, 1)
	ctx := context.Background()
	nconn, err := nats.Connect(nc.URLs()[0])
	if err != nil {
		b.Fatal(err)
	}
	defer nconn.Close()
	js, err := jetstream.New(nconn, jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil {
		b.Fatal(err)
	}
	t0 := time.Now()
	for i := range b.N {
		ev := event(i, "trap1")
		body, err := json.Marshal(ev)
		if err != nil {
			b.Fatal(err)
		}
		body = append(append([]byte(`{"event":`), body...), '}')
		if _, err := js.PublishAsync("blowback.event.trap1", body, jetstream.WithMsgID("ev-"+ev.ID.String())); err != nil {
			b.Fatal(err)
		}
		if i%2000 == 1999 { // stay below the pending bound
			<-js.PublishAsyncComplete()
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(10 * time.Minute):
		b.Fatal("publishing did not complete")
	}
	n, err := admin.StreamLastSeq(ctx)
	if err != nil || n != uint64(b.N) {
		b.Fatalf("stream holds %d messages (%v), want %d", n, err, b.N)
	}
	b.Logf("filled the stream with %d events in %s", b.N, time.Since(t0).Round(time.Second))
	b.ResetTimer()
	start := time.Now()
	r := startReplica(b, cfg, "new")
	waitFor(b, "new replica caught up", 30*time.Minute, func() bool { return r.rep.Applied() >= n })
	waitFor(b, "last position published", time.Minute, func() bool { s := r.cur.Load(); return s != nil && s.Serial == 1+uint32(n) })
	el := time.Since(start)
	b.StopTimer()
	b.ReportMetric(el.Seconds(), "catchup_s")
	b.ReportMetric(float64(b.N)/el.Seconds(), "catchup_events/s")
	b.ReportMetric(float64(r.cur.Load().Len()), "listed")
}
