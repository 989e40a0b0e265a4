package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/blowback-dnsbl/blowback/internal/testenv"
	"github.com/blowback-dnsbl/blowback/zones/distrib"
	"github.com/blowback-dnsbl/blowback/zones/signing"
)

// mirrorScript runs deploy/secondary/rbldnsd.sh with env; it returns the
// exit status and what the script said.
func mirrorScript(t *testing.T, env ...string) (int, string) {
	t.Helper()
	sh := testenv.Tool(t, "sh")
	script := deployFile(t, "secondary/rbldnsd.sh")
	cmd := exec.Command(sh, script)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), string(out)
	} else if err != nil {
		t.Fatal(err)
	}
	return 0, string(out)
}

// signedPrimary is a primary's export dir kept by the distributor with a
// signing key; publish writes a version and waits for its signature.
type signedPrimary struct {
	dir, secret, pub string
	d                *distrib.Distributor
}

func newSignedPrimary(t *testing.T) *signedPrimary {
	p := &signedPrimary{dir: filepath.Join(t.TempDir(), "export")}
	p.d, p.secret, p.pub = signedExport(t, p.dir)
	return p
}

func (p *signedPrimary) publish(t *testing.T, serial uint32, n int) {
	t.Helper()
	pk, _ := signing.LoadPublicKey(p.pub)
	p.d.Update(exportZone(serial, n))
	eventually(t, "signed export", func() bool {
		s, err := signing.VerifyFile(pk, filepath.Join(p.dir, "bl.blowback.test.rbldnsd"))
		return err == nil && s.Serial == serial
	})
}

// The mirror script swaps in only signed, newer exports, with blowback
// verify or with minisign, from a plain directory (rsync's local copy).
func TestMirrorScriptVerifies(t *testing.T) {
	testenv.Tool(t, "rsync")
	bin := buildBinary(t)
	p := newSignedPrimary(t)
	dst := t.TempDir()
	served := filepath.Join(dst, "bl.blowback.test.rbldnsd")
	src := filepath.Join(p.dir, "bl.blowback.test.rbldnsd")
	for _, verifier := range []string{"blowback", "minisign"} {
		t.Run(verifier, func(t *testing.T) {
			env := []string{"ZONE=bl.blowback.test", "SRC=" + p.dir, "DST=" + dst, "VERIFY_KEY=" + p.pub}
			if verifier == "blowback" {
				env = append(env, "BLOWBACK="+bin, "MINISIGN=")
			} else {
				env = append(env, "BLOWBACK=", "MINISIGN="+testenv.Tool(t, "minisign"))
			}
			base := uint32(100)
			if verifier == "minisign" {
				base = 200
			}
			p.publish(t, base, 50)
			if code, out := mirrorScript(t, env...); code != 0 {
				t.Fatalf("good export: exit %d\n%s", code, out)
			}
			good, _ := os.ReadFile(src)
			if got, _ := os.ReadFile(served); !bytes.Equal(got, good) {
				t.Fatalf("the mirror serves something else than the export")
			}
			refused := func(what string, wantMsg string) {
				t.Helper()
				code, out := mirrorScript(t, env...)
				if code == 0 || !strings.Contains(out, wantMsg) {
					t.Errorf("%s: exit %d, want a refusal with %q:\n%s", what, code, wantMsg, out)
				}
				if got, _ := os.ReadFile(served); !bytes.Equal(got, good) {
					t.Errorf("%s: the file in service was replaced", what)
				}
			}
			// A newer export changed on the way: refused.
			p.publish(t, base+1, 50)
			b, _ := os.ReadFile(src)
			os.WriteFile(src, append(b, "192.0.2.200\n"...), 0o644)
			refused("changed file", "bad or missing signature")
			// Unsigned.
			p.publish(t, base+2, 50)
			os.Remove(src + signing.Suffix)
			refused("unsigned file", "no signature")
			// Signed, but older than the one in service (a replay).
			p.publish(t, base-1, 50)
			refused("older serial", "older than")
			// Signed and newer: swapped in, with its signature.
			p.publish(t, base+3, 49)
			if code, out := mirrorScript(t, env...); code != 0 || !strings.Contains(out, "in service") {
				t.Fatalf("newer export: exit %d\n%s", code, out)
			}
			if h := headerOf(t, served); h.Serial != base+3 {
				t.Errorf("served serial %d", h.Serial)
			}
			if code, out := run(bin, "verify", "-q", "--key", p.pub, served); code != 0 {
				t.Errorf("the mirror's copy does not verify: %s", out)
			}
		})
	}
}

func run(bin string, args ...string) (int, string) {
	out, err := exec.Command(bin, args...).CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), string(out)
	}
	return 0, string(out)
}
