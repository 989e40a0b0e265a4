package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

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
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		err := n.Start(ctx)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { n.Stop() })
		nodes = append(nodes, n)
	}
	r1, r2 := nodes[0], nodes[1]
	call := func(n *node, method, path, tok, body string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(method, "http://"+n.web.Addr().String()+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+tok)
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
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
	if err := os.WriteFile(plain, nil, 0o600); err != nil {
		t.Fatal(err)
	}
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
