package main

import (
	"encoding/json"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/blowback-dnsbl/blowback/dnsd"
)

// TestDNSKeysLive: a node with keyed access required; the admin makes a key
// over HTTP, a keyed query is answered and counted, an unkeyed one refused.
func TestDNSKeysLive(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.AdminTokens = []string{"admin-token-for-tests"}
	cfg.DNSCfg.Keys = KeysTable{Enabled: true, Require: true}
	n := startNodeConfig(t, cfg)
	defer n.Stop()
	base := "http://" + n.web.Addr().String() + "/api/v1/admin/dns/keys"
	call := func(method, url, body, token string) (int, map[string]any) {
		t.Helper()
		code, b := httpDo(t, nil, method, url, token, body)
		var out map[string]any
		json.Unmarshal(b, &out)
		return code, out
	}
	if code, _ := call("POST", base, `{"note":"x"}`, ""); code != http.StatusUnauthorized {
		t.Fatalf("without the admin token: %d", code)
	}
	code, made := call("POST", base, `{"note":"mx.example.org"}`, "admin-token-for-tests")
	key, _ := made["key"].(string)
	if code != http.StatusCreated || key == "" {
		t.Fatalf("make key: %d %v", code, made)
	}

	dnsAddr := n.dns.Addr().String()
	ask := func(name string) *dns.Msg {
		m := new(dns.Msg)
		m.SetQuestion(name, dns.TypeA)
		m.SetEdns0(1232, false)
		r, _, err := (&dns.Client{Timeout: 5 * time.Second}).Exchange(m, dnsAddr)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	plain := dnsd.QueryName(netip.MustParseAddr("127.0.0.2"), n.cfg.Zone)
	keyed := strings.Replace(plain, "."+n.cfg.Zone, "."+key+"."+n.cfg.Zone, 1)
	if r := ask(keyed); r.Rcode != dns.RcodeSuccess || len(r.Answer) == 0 {
		t.Fatalf("keyed query for the test point: %v", r)
	}
	if r := ask(plain); r.Rcode != dns.RcodeRefused {
		t.Errorf("unkeyed query: %s, want REFUSED", dns.RcodeToString[r.Rcode])
	}
	if r := ask(strings.Replace(plain, "."+n.cfg.Zone, ".nosuchkey123."+n.cfg.Zone, 1)); r.Rcode != dns.RcodeRefused {
		t.Errorf("unknown key: %s, want REFUSED", dns.RcodeToString[r.Rcode])
	}
	code, list := call("GET", base+"?top=5", "", "admin-token-for-tests")
	keys, _ := list["keys"].([]any)
	if code != http.StatusOK || len(keys) != 1 || keys[0].(map[string]any)["queries"] != float64(1) {
		t.Errorf("key list: %d %v", code, list)
	}
}
