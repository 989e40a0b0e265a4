package cluster_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/blowback-dnsbl/blowback/cluster"
	"github.com/blowback-dnsbl/blowback/cluster/clustertest"
)

// startLog starts n JetStream servers in process (opts as for
// clustertest.Start) and creates the stream with serial base base. It
// returns the servers, a Config naming them (R=n; timeout bounds one round
// trip, 0 for the default) and an admin connection closed when the test
// ends.
func startLog(tb testing.TB, n int, timeout time.Duration, base uint32, opts ...func(*server.Options)) (*clustertest.Cluster, cluster.Config, *cluster.Conn) {
	tb.Helper()
	nc := clustertest.Start(tb, n, opts...)
	cfg := cluster.Config{URLs: nc.URLs(), Replicas: n, Timeout: timeout}
	admin, err := cluster.Connect(cfg, nil)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(admin.Close)
	ctx := context.Background()
	waitFor(tb, "stream created", 60*time.Second, func() bool { _, err := admin.Init(ctx, base); return err == nil })
	return nc, cfg, admin
}
