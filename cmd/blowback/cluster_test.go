package main

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"

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
	e := &clusterEnv{t: t, dir: t.TempDir(), log: testLog()}
	urls := `"` + strings.Join(nc.URLs(), `", "`) + `"`
	e.conf = filepath.Join(e.dir, "c.toml")
	writeFile(t, e.conf, head+"[cluster]\nurls = ["+urls+"]\n", 0o600)
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
	r1, r2 := newNode(base("r1"), log.With("node", "r1")), newNode(base("r2"), log.With("node", "r2"))
	startStopped(t, r1)
	startStopped(t, r2)
	tc := base("trap1")
	tc.Trap.Node = "trap1"
	tr := newTrapNode(tc, log.With("node", "trap1"))
	startStopped(t, tr)

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

	if code, body := httpDo(t, nil, "POST", "http://"+r1.web.Addr().String()+"/api/v1/delist", "",
		fmt.Sprintf(`{"ip":%q,"reason":"fixed our bounces"}`, ip)); code != 200 {
		t.Fatalf("delist: %d %s", code, body)
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

// TestClusterAdminChanges: a node revocation and an allowlist change made
// through replica 1's admin API go through the log and show on replica 2:
// its intake refuses the revoked token, its allowlist holds the network
// and it stops listing the address inside.
func TestClusterAdminChanges(t *testing.T) {
	const nodeTok, adminTok = "trap1-token-0123456789abcdef", "admin-token-for-cluster-tests"
	env := startClusterEnv(t, "[node_tokens]\ntrap1 = \""+nodeTok+"\"\n\n", io.Discard)
	dir, log := env.dir, env.log
	base := func(name string) Config {
		cfg := env.config(name)
		cfg.AdminTokens = []string{adminTok}
		return cfg
	}
	var nodes []*node
	for _, name := range []string{"r1", "r2"} {
		n := newNode(base(name), log.With("node", name))
		startStopped(t, n)
		nodes = append(nodes, n)
	}
	r1, r2 := nodes[0], nodes[1]
	call := func(n *node, method, path, tok, body string) (int, string) {
		t.Helper()
		code, b := httpDo(t, nil, method, "http://"+n.web.Addr().String()+path, tok, body)
		return code, string(b)
	}
	evidence := func(n *node) int {
		code, _ := call(n, "POST", "/api/v1/evidence", nodeTok, `{"node":"trap1","events":[]}`)
		return code
	}
	if c1, c2 := evidence(r1), evidence(r2); c1 != 200 || c2 != 200 {
		t.Fatalf("before the revocation the node's token is refused: %d %d", c1, c2)
	}

	// A listed address, then an allowlist add on replica 1 for its network.
	ip := netip.MustParseAddr("198.51.100.7")
	if code, body := call(r1, "POST", "/api/v1/admin/list", adminTok, fmt.Sprintf(`{"ip":%q,"reason":"test"}`, ip)); code != 200 {
		t.Fatalf("admin list: %d %s", code, body)
	}
	eventually(t, "both replicas list it", func() bool {
		return r1.cur.Load().Lookup(ip) != 0 && r2.cur.Load().Lookup(ip) != 0
	})
	if code, body := call(r1, "POST", "/api/v1/admin/allow", adminTok, `{"op":"add","network":"198.51.100.0/24","reason":"our customer's network","who":"ops"}`); code != 200 {
		t.Fatalf("allow add: %d %s", code, body)
	}
	if r1.cur.Load().Lookup(ip) != 0 {
		t.Errorf("replica 1 still lists %v after the allowlist add answered", ip)
	}
	eventually(t, "replica 2 stops listing the allowlisted address", func() bool { return r2.cur.Load().Lookup(ip) == 0 })
	code, body := call(r2, "GET", "/api/v1/admin/allow", adminTok, "")
	if code != 200 || !strings.Contains(body, `"198.51.100.0/24"`) || !strings.Contains(body, "our customer") || !strings.Contains(body, `"admin:ops"`) {
		t.Errorf("replica 2's allowlist: %d %s", code, body)
	}
	d, _, _, err := r2.eng.Decide(ip)
	if err != nil || d.Allowed != netip.MustParsePrefix("198.51.100.0/24") {
		t.Errorf("replica 2 decides %+v, %v", d, err)
	}

	// A revocation on replica 1: replica 2 refuses the token too.
	if code, body := call(r1, "POST", "/api/v1/admin/nodes/trap1/revoke", adminTok, `{"reason":"stolen"}`); code != 200 {
		t.Fatalf("revoke: %d %s", code, body)
	}
	if c := evidence(r1); c != http.StatusUnauthorized {
		t.Errorf("replica 1 after the revocation answered the node's token with %d", c)
	}
	eventually(t, "replica 2 refuses the revoked token", func() bool { return evidence(r2) == http.StatusUnauthorized })
	code, body = call(r2, "GET", "/api/v1/admin/nodes", adminTok, "")
	if code != 200 || !strings.Contains(strings.ReplaceAll(body, " ", ""), `"revoked":true`) {
		t.Errorf("replica 2's nodes: %d %s", code, body)
	}

	// The allowlist remove goes the same way: listed again on both.
	if code, body := call(r1, "POST", "/api/v1/admin/allow", adminTok, `{"op":"remove","network":"198.51.100.0/24","reason":"contract ended"}`); code != 200 {
		t.Fatalf("allow remove: %d %s", code, body)
	}
	eventually(t, "both replicas list it again", func() bool {
		return r1.cur.Load().Lookup(ip) != 0 && r2.cur.Load().Lookup(ip) != 0
	})
	eventually(t, "equal serials", func() bool { return r1.cur.Load().Serial == r2.cur.Load().Serial })

	// Offline commands on the stopped replica 2's data directory decide at
	// its log position: its serial (not the host clock's), and no write
	// past the log.
	serial := r2.cur.Load().Serial
	r2.Stop()
	plain := filepath.Join(dir, "plain.toml") // no [cluster]: the store says it is a replica's
	writeFile(t, plain, "", 0o600)
	data := filepath.Join(dir, "r2")
	var out strings.Builder
	if err := cmdExport([]string{"--config", plain, "--data", data, "--format", "bind", "--out", "-"}, &out, io.Discard); err != nil {
		t.Fatalf("export: %v", err)
	}
	if !strings.Contains(out.String(), fmt.Sprintf(" %d ", serial)) {
		t.Errorf("offline export of replica 2 lacks its serial %d:\n%.400s", serial, out.String())
	}
	out.Reset()
	if err := cmdExplain([]string{"--config", plain, "--data", data, ip.String()}, &out, io.Discard); err != nil || !strings.Contains(out.String(), "LISTED") {
		t.Errorf("offline explain: %v\n%s", err, out.String())
	}
	err = cmdList([]string{"--config", plain, "--data", data, "--server", "http://127.0.0.1:1", "--reason", "x", "192.0.2.9"}, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "belongs to a cluster replica") {
		t.Errorf("offline list into a replica's store: %v", err)
	}
}
