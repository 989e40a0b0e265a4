package main

// The mirror side of the exports, with the real tools: an rsync daemon
// configured from deploy/rsyncd.conf serves the export directory to an
// rsync client, and the example secondary configs in deploy/secondary pass
// their servers' own checks.

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/blowback-dnsbl/blowback/internal/testenv"
)

// rsyncdConf rewrites deploy/rsyncd.conf for a test: the settings in set
// replace the file's (globals and the module's), the rest stays.
func rsyncdConf(t *testing.T, set map[string]string) string {
	t.Helper()
	b := readDeploy(t, "rsyncd.conf")
	var out strings.Builder
	seen := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := sc.Text()
		k, _, ok := strings.Cut(strings.TrimSpace(line), "=")
		k = strings.TrimSpace(k)
		if v, over := set[k]; ok && over && !strings.HasPrefix(strings.TrimSpace(line), "#") {
			line = strings.Replace(line, line[strings.Index(line, "=")+1:], " "+v, 1)
			seen[k] = true
		}
		out.WriteString(line + "\n")
	}
	for k := range set {
		if !seen[k] {
			t.Fatalf("deploy/rsyncd.conf has no %q setting", k)
		}
	}
	return out.String()
}

func TestRsyncServesExportDir(t *testing.T) {
	rsync := testenv.Tool(t, "rsync")
	dir := t.TempDir()
	export := filepath.Join(dir, "export")
	d, _, pub := signedExport(t, export)
	d.Update(exportZone(77, 500))
	rbl := filepath.Join(export, "bl.blowback.test.rbldnsd")
	eventually(t, "export", func() bool { return headerOf(t, rbl).Serial == 77 })
	// A half-written temp file must never be served.
	writeFile(t, filepath.Join(export, ".bl.blowback.test.rbldnsd.tmp123"), "half", 0o644)

	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	g, err := user.LookupGroupId(u.Gid)
	if err != nil {
		t.Fatal(err)
	}
	// rsync --daemon takes a port number: take one that is free now.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	conf := rsyncdConf(t, map[string]string{
		"address": "127.0.0.1", "port": fmt.Sprint(port), "pid file": filepath.Join(dir, "rsyncd.pid"),
		"uid": u.Username, "gid": g.Name, "use chroot": "no", "log file": filepath.Join(dir, "rsyncd.log"),
		"path": export, "hosts allow": "127.0.0.1",
	})
	confPath := filepath.Join(dir, "rsyncd.conf")
	writeFile(t, confPath, conf, 0o644)
	out := testenv.Daemon(t, rsync, "--daemon", "--no-detach", "--config="+confPath)
	t.Cleanup(func() {
		if t.Failed() {
			log, _ := os.ReadFile(filepath.Join(dir, "rsyncd.log"))
			t.Logf("rsyncd.log:\n%s", log)
		}
	})
	waitListening(t, "rsync daemon", fmt.Sprintf("127.0.0.1:%d", port), 20*time.Second, out.String)
	mirror := filepath.Join(dir, "mirror")
	get := exec.Command(rsync, "-rt", "--timeout=30", fmt.Sprintf("rsync://127.0.0.1:%d/blowback/", port), mirror+"/")
	if b, err := get.CombinedOutput(); err != nil {
		t.Fatalf("rsync client: %v\n%s", err, b)
	}
	entries, err := os.ReadDir(mirror)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if strings.Join(names, " ") != "bl.blowback.test.rbldnsd bl.blowback.test.rbldnsd.minisig bl.blowback.test.zone bl.blowback.test.zone.minisig" {
		t.Errorf("mirrored %v", names)
	}
	for _, n := range []string{"bl.blowback.test.rbldnsd", "bl.blowback.test.zone"} {
		a, _ := os.ReadFile(filepath.Join(export, n))
		b, _ := os.ReadFile(filepath.Join(mirror, n))
		if len(a) == 0 || !bytes.Equal(a, b) {
			t.Errorf("%s: mirror differs (%d vs %d bytes)", n, len(a), len(b))
		}
	}
	// The next version reaches the mirror on the next run.
	d.Update(exportZone(78, 501))
	eventually(t, "second export", func() bool { return headerOf(t, rbl).Serial == 78 })
	if b, err := exec.Command(rsync, "-rt", fmt.Sprintf("rsync://127.0.0.1:%d/blowback/", port), mirror+"/").CombinedOutput(); err != nil {
		t.Fatalf("rsync client: %v\n%s", err, b)
	}
	if h := headerOf(t, filepath.Join(mirror, "bl.blowback.test.rbldnsd")); h.Serial != 78 {
		t.Errorf("mirror has serial %d after the update", h.Serial)
	}

	// deploy/secondary/rbldnsd.sh against the daemon: verified, swapped in.
	eventually(t, "signature of 78", func() bool {
		code, _ := run(buildBinary(t), "verify", "-q", "--key", pub, rbl)
		return code == 0
	})
	served := t.TempDir()
	code, sout := mirrorScript(t, "ZONE=bl.blowback.test", fmt.Sprintf("SRC=rsync://127.0.0.1:%d/blowback", port),
		"DST="+served, "VERIFY_KEY="+pub, "BLOWBACK="+buildBinary(t), "MINISIGN=")
	if code != 0 {
		t.Fatalf("mirror script over rsync: exit %d\n%s", code, sout)
	}
	if h := headerOf(t, filepath.Join(served, "bl.blowback.test.rbldnsd")); h.Serial != 78 {
		t.Errorf("the mirror script installed serial %d", h.Serial)
	}
}

func TestSecondaryConfigsCheck(t *testing.T) {
	dir := deployFile(t, "secondary")
	for _, c := range []struct {
		tool string
		args []string
	}{
		{"knotc", []string{"-c", filepath.Join(dir, "knot.conf"), "conf-check"}},
		{"nsd-checkconf", []string{filepath.Join(dir, "nsd.conf")}},
		{"named-checkconf", []string{filepath.Join(dir, "named.conf")}},
	} {
		t.Run(c.tool, func(t *testing.T) {
			tool := testenv.Tool(t, c.tool)
			if b, err := exec.Command(tool, c.args...).CombinedOutput(); err != nil {
				t.Errorf("%s: %v\n%s", c.tool, err, b)
			}
		})
	}
}
