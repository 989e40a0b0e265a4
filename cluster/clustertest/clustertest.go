// Package clustertest runs a NATS JetStream cluster in process for tests
// (github.com/nats-io/nats-server/v2), on 127.0.0.1 with fixed ports so a
// stopped server comes back at the same address.
package clustertest

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/blowback-dnsbl/blowback/internal/testenv"
)

// Cluster is a running JetStream cluster.
type Cluster struct {
	t       testing.TB
	opts    []*server.Options
	Servers []*server.Server
}

// Start starts n servers forming one JetStream cluster; they are shut down
// when the test ends. opts adjust each server's options (e.g. SyncAlways).
func Start(t testing.TB, n int, opts ...func(*server.Options)) *Cluster {
	t.Helper()
	dir := t.TempDir()
	ports := make([]int, n)
	routes := make([]string, n)
	for i := range n {
		ports[i] = testenv.FreePort(t)
		routes[i] = fmt.Sprintf("nats://127.0.0.1:%d", ports[i])
	}
	c := &Cluster{t: t, Servers: make([]*server.Server, n)}
	for i := range n {
		o := &server.Options{
			ServerName: fmt.Sprintf("n%d", i+1),
			Host:       "127.0.0.1",
			Port:       testenv.FreePort(t),
			JetStream:  true,
			StoreDir:   filepath.Join(dir, fmt.Sprintf("n%d", i+1)),
			NoSigs:     true,
			NoLog:      true,
			Cluster:    server.ClusterOpts{Name: "blowback", Host: "127.0.0.1", Port: ports[i]},
			Routes:     server.RoutesFromStr(strings.Join(routes, ",")),
		}
		if n == 1 { // a lone server: JetStream without clustering
			o.Cluster, o.Routes = server.ClusterOpts{}, nil
		}
		for _, f := range opts {
			f(o)
		}
		c.opts = append(c.opts, o)
		c.start(i)
	}
	t.Cleanup(func() {
		for _, s := range c.Servers {
			if s != nil {
				s.Shutdown()
			}
		}
	})
	return c
}

func (c *Cluster) start(i int) {
	c.t.Helper()
	s, err := server.NewServer(c.opts[i])
	if err != nil {
		c.t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(20 * time.Second) {
		c.t.Fatalf("nats server %d not ready", i+1)
	}
	c.Servers[i] = s
}

// URLs returns every server's client URL.
func (c *Cluster) URLs() []string {
	out := make([]string, len(c.opts))
	for i, o := range c.opts {
		out[i] = fmt.Sprintf("nats://127.0.0.1:%d", o.Port)
	}
	return out
}

// Stop shuts server i down (its files stay).
func (c *Cluster) Stop(i int) {
	c.Servers[i].Shutdown()
	c.Servers[i].WaitForShutdown()
	c.Servers[i] = nil
}

// Restart starts server i again on its files and ports.
func (c *Cluster) Restart(i int) { c.start(i) }
