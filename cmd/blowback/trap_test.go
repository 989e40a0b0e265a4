package main

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	"github.com/blowback-dnsbl/blowback/forward/forwardtest"
)

func TestTrapFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		err  string
	}{
		{[]string{"trap", "-h"}, 0, "-forward URL"},
		{[]string{"trap", "--bogus"}, 2, "flag provided but not defined"},
		{[]string{"trap", "--forward", "http://central:8080"}, 2, "needs --token"},
		{[]string{"trap", "--forward", "ftp://central", "--token", "t0123456789abcdef"}, 2, "want http(s)://"},
		{[]string{"trap", "--config", "/nonexistent/blowback.toml"}, 2, "no such file"},
	} {
		var out, errb bytes.Buffer
		if code := realMain(tc.args, &out, &errb); code != tc.code || !strings.Contains(errb.String(), tc.err) {
			t.Errorf("%v: exit %d, stderr %q; want %d and %q", tc.args, code, errb.String(), tc.code, tc.err)
		}
	}
}

func TestForwardConfigTable(t *testing.T) {
	dir := t.TempDir()
	pki := forwardtest.NewPKI(t, dir)
	tokens := filepath.Join(dir, "nodes")
	writeFile(t, tokens, "trap-1 0123456789abcdef0123\n", 0o600)
	bad := filepath.Join(dir, "bad-nodes")
	writeFile(t, bad, "trap-1 short\n", 0o600)
	for _, tc := range []struct {
		toml string
		ok   bool
	}{
		{``, true},
		{`url = "https://central:8443"` + "\n" + `token = "x"`, true},
		{`url = "central:8443"`, false},
		{`token = "x"` + "\n" + `token_file = "/etc/t"`, false},
		{`backoff_min = "10s"` + "\n" + `backoff_max = "1s"`, false},
		{`batch_events = 0`, false},
		{`raw_max = -1`, false},
		{`client_cert = "` + pki.ClientCert + `"`, false},
		{`tls_cert = "` + pki.ServerCert + `"` + "\n" + `tls_key = "` + pki.ServerKey + `"`, true},
		{`tls_cert = "` + pki.ServerCert + `"` + "\n" + `tls_key = "` + pki.ClientKey + `"`, false}, // key of another cert
		{`tls_cert = "` + pki.ServerCert + `"` + "\n" + `tls_key = "` + pki.ServerKey + `"` + "\n" + `client_ca = "` + pki.CAFile + `"` + "\n" + `require_client_cert = true`, true},
		{`require_client_cert = true`, false},
		{`client_ca = "` + pki.CAFile + `"`, false},
		{`node_tokens_file = "` + tokens + `"`, true},
		{`node_tokens_file = "` + bad + `"`, false},
		{`node_tokens_file = "/nonexistent"`, false},
		{`no_such_key = 1`, false},
	} {
		c, err := parseConfig([]byte("[forward]\n" + tc.toml + "\n"))
		if (err == nil) != tc.ok {
			t.Errorf("[forward] %q: %v, want ok=%v", tc.toml, err, tc.ok)
		}
		if err == nil && c.Forward.TLSCert != "" && c.Forward.serverTLS == nil {
			t.Errorf("[forward] %q: TLS not loaded", tc.toml)
		}
	}
}
