package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/blowback-dnsbl/blowback/cluster/clustertest"
)

// clusterEnv is a 3-server JetStream cluster in process and the config
// file naming it, initialised.
type clusterEnv struct {
	t    *testing.T
	dir  string       // the test's directory
	conf string       // dir/c.toml
	log  *slog.Logger // discards, or to stderr with -v
}

// startClusterEnv starts the cluster, writes dir/c.toml (head, then a
// [cluster] table with the servers' urls) and runs `cluster init
// --serial-base 2026120100` on it, its output to out.
func startClusterEnv(t *testing.T, head string, out io.Writer) *clusterEnv {
	t.Helper()
	nc := clustertest.Start(t, 3)
	e := &clusterEnv{t: t, dir: t.TempDir(), log: slog.New(slog.DiscardHandler)}
	if testing.Verbose() {
		e.log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	urls := `"` + strings.Join(nc.URLs(), `", "`) + `"`
	e.conf = filepath.Join(e.dir, "c.toml")
	if err := os.WriteFile(e.conf, []byte(head+"[cluster]\nurls = ["+urls+"]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := cmdCluster([]string{"init", "--config", e.conf, "--serial-base", "2026120100"}, out, io.Discard); err != nil {
		t.Fatalf("cluster init: %v", err)
	}
	return e
}

// config is node name's configuration: c.toml, data in dir/name, cluster
// name name, every listener on 127.0.0.1:0.
func (e *clusterEnv) config(name string) Config {
	e.t.Helper()
	cfg, err := loadConfig(e.conf)
	if err != nil {
		e.t.Fatal(err)
	}
	cfg.Data = filepath.Join(e.dir, name)
	cfg.SMTP, cfg.DNS, cfg.HTTP = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	cfg.Cluster.Name = name
	return cfg
}

// TestClusterNodes wires the real commands to a JetStream cluster: `cluster
// init`, two `run` replicas and a `trap` node with [cluster]. A bounce
// through the trap is listed by both replicas with the same serial; a
// public delist on replica 1 goes through the log and shows on both.
func TestClusterNodes(t *testing.T) {
	var out bytes.Buffer
	env := startClusterEnv(t, "", &out)
	if !strings.Contains(out.String(), "serial base 2026120100") {
		t.Errorf("cluster init said %q", out.String())
	}
	confFile, log, base := env.conf, env.log, env.config
	start := func(s startStopper) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := s.Start(ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Stop() })
	}
	r1, r2 := newNode(base("r1"), log.With("node", "r1")), newNode(base("r2"), log.With("node", "r2"))
	start(r1)
	start(r2)
	tc := base("trap1")
	tc.Trap.Node = "trap1"
	tr := newTrapNode(tc, log.With("node", "trap1"))
	start(tr)

	ip := netip.MustParseAddr("127.0.0.23")
	if err := sendFrom(t, tr.trap.Addr().String(), ip.String(), "", "x@trap.blowback.test", testDSN); err != nil {
		t.Fatalf("the trap refused the bounce: %v", err)
	}
	eventually(t, "both replicas list the bounce's sender", func() bool {
		return r1.cur.Load().Lookup(ip) != 0 && r2.cur.Load().Lookup(ip) != 0
	})
	if a := check(t, r2.dns.Addr().String(), ip.String()); !a.Listed {
		t.Errorf("replica 2's DNS does not list %v", ip)
	}

	resp, err := http.Post("http://"+r1.web.Addr().String()+"/api/v1/delist", "application/json",
		strings.NewReader(fmt.Sprintf(`{"ip":%q,"reason":"fixed our bounces"}`, ip)))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("delist: %d %s", resp.StatusCode, body)
	}
	eventually(t, "both replicas delisted it", func() bool {
		return r1.cur.Load().Lookup(ip) == 0 && r2.cur.Load().Lookup(ip) == 0
	})
	eventually(t, "equal serials", func() bool {
		s1, s2 := r1.cur.Load().Serial, r2.cur.Load().Serial
		return s1 == s2 && s1 > 2026120100
	})
	out.Reset()
	if err := cmdCluster([]string{"status", "--config", confFile}, &out, io.Discard); err != nil {
		t.Fatalf("cluster status: %v", err)
	}
	for _, want := range []string{"stream BLOWBACK:", "consumer r1: applied up to", "consumer r2: applied up to", "serial base 2026120100"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("cluster status lacks %q:\n%s", want, out.String())
		}
	}
	// The delist is an action in both stores, through the log.
	for _, r := range []*node{r1, r2} {
		acts, err := r.st.Actions(netip.PrefixFrom(ip, 32))
		if err != nil || len(acts) != 1 || acts[0].Op != "delist" {
			t.Errorf("actions on a replica: %v %v", acts, err)
		}
	}
}
