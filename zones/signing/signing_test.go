package signing

import (
	"bytes"
	"errors"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/blowback-dnsbl/blowback/internal/testenv"
	"github.com/blowback-dnsbl/blowback/zones"
)

const zone = "bl.blowback.test"

func export(t *testing.T, dir string, f zones.Format, serial uint32, n int) string {
	t.Helper()
	var es []zones.Entry
	for i := range n {
		es = append(es, zones.Entry{Prefix: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), 32), Codes: zones.CodeBounce})
	}
	s := zones.Build(zones.Info{Zone: zone, Serial: serial, TXT: "listed $"}, es)
	ext := map[zones.Format]string{zones.FormatRbldnsd: ".rbldnsd", zones.FormatBIND: ".zone", zones.FormatPlain: ".txt"}[f]
	path := filepath.Join(dir, zone+ext)
	if err := zones.WriteFileAtomic(path, func(w io.Writer) error { return zones.Write(w, f, s, zones.SOA{}.WithDefaults(zone)) }); err != nil {
		t.Fatal(err)
	}
	return path
}

func keys(t *testing.T) (*Signer, string) {
	t.Helper()
	sk := filepath.Join(t.TempDir(), "export.key")
	pub, err := GenerateKey(sk)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(sk); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("secret key mode %v %v", fi.Mode(), err)
	}
	if _, err := GenerateKey(sk); !errors.Is(err, ErrKey) {
		t.Errorf("GenerateKey over an existing key: %v", err)
	}
	s, err := LoadSigner(sk)
	if err != nil {
		t.Fatal(err)
	}
	return s, pub
}

func TestSignVerify(t *testing.T) {
	s, pubFile := keys(t)
	pk, err := LoadPublicKey(pubFile)
	if err != nil {
		t.Fatal(err)
	}
	if pk2, err := LoadPublicKey(s.PublicKey()); err != nil || !pk2.Equal(pk) {
		t.Fatalf("public key as a string: %v", err)
	}
	dir := t.TempDir()
	for _, f := range []zones.Format{zones.FormatRbldnsd, zones.FormatBIND, zones.FormatPlain} {
		path := export(t, dir, f, 42, 300)
		if _, err := VerifyFile(pk, path); !errors.Is(err, ErrUnsigned) {
			t.Errorf("%s unsigned: %v", f, err)
		}
		if err := s.SignFile(path, zone, 42); err != nil {
			t.Fatal(err)
		}
		got, err := VerifyFile(pk, path)
		if err != nil || got.Zone != zone || got.Serial != 42 || got.File != filepath.Base(path) || got.Timestamp.IsZero() {
			t.Errorf("%s: %+v %v", f, got, err)
		}
	}

	rbl := filepath.Join(dir, zone+".rbldnsd")
	b, _ := os.ReadFile(rbl)
	sig, _ := os.ReadFile(rbl + Suffix)
	restore := func() {
		os.WriteFile(rbl, b, 0o644)
		os.WriteFile(rbl+Suffix, sig, 0o644)
	}
	for _, c := range []struct {
		name   string
		change func()
		want   error
	}{
		{"one byte of the file changed", func() {
			x := bytes.Replace(b, []byte("10.0.0.7\n"), []byte("10.0.0.8\n"), 1)
			os.WriteFile(rbl, x, 0o644)
		}, ErrBadSignature},
		{"a line appended", func() { os.WriteFile(rbl, append(bytes.Clone(b), "192.0.2.1\n"...), 0o644) }, ErrBadSignature},
		{"trusted comment edited (serial raised)", func() {
			os.WriteFile(rbl+Suffix, bytes.Replace(sig, []byte("serial:42"), []byte("serial:43"), 1), 0o644)
		}, ErrBadSignature},
		{"signature garbage", func() { os.WriteFile(rbl+Suffix, []byte("nope\n"), 0o644) }, ErrBadSignature},
		{"signature missing", func() { os.Remove(rbl + Suffix) }, ErrUnsigned},
		{"another key", func() {
			other, _ := keys(t)
			other.SignFile(rbl, zone, 42)
		}, ErrBadSignature},
		{"signed with another serial than the header's", func() { s.SignFile(rbl, zone, 41) }, ErrMismatch},
		{"signed for another zone", func() { s.SignFile(rbl, "bl.other.test", 42) }, ErrMismatch},
		{"a BIND export and its signature under the rbldnsd name", func() {
			z, _ := os.ReadFile(filepath.Join(dir, zone+".zone"))
			zs, _ := os.ReadFile(filepath.Join(dir, zone+".zone"+Suffix))
			os.WriteFile(rbl, z, 0o644)
			os.WriteFile(rbl+Suffix, zs, 0o644)
		}, ErrMismatch},
	} {
		c.change()
		if _, err := VerifyFile(pk, rbl); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
		restore()
	}
	if _, err := VerifyFile(pk, rbl); err != nil {
		t.Errorf("restored: %v", err)
	}
}

func TestBadKeys(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []string{"", "garbage", "RWnotbase64!!", strings.Repeat("A", 5000)} {
		p := filepath.Join(dir, "k")
		os.WriteFile(p, []byte(c), 0o600)
		if _, err := LoadSigner(p); !errors.Is(err, ErrKey) {
			t.Errorf("secret key %.20q: %v", c, err)
		}
		if _, err := LoadPublicKey(p); !errors.Is(err, ErrKey) {
			t.Errorf("public key %.20q: %v", c, err)
		}
	}
	if _, err := LoadPublicKey(filepath.Join(dir, "missing")); !errors.Is(err, ErrKey) {
		t.Errorf("missing key file: %v", err)
	}
}

// minisign itself (the reference implementation, Debian's package)
// accepts our signatures and shows the zone and serial it vouches for.
func TestMinisignAccepts(t *testing.T) {
	bin := testenv.Tool(t, "minisign")
	s, pubFile := keys(t)
	dir := t.TempDir()
	path := export(t, dir, zones.FormatRbldnsd, 7, 1000)
	if err := s.SignFile(path, zone, 7); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "-V", "-p", pubFile, "-m", path).CombinedOutput()
	if err != nil {
		t.Fatalf("minisign -V: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "zone:"+zone+"\tserial:7") {
		t.Errorf("minisign -V shows no zone and serial:\n%s", out)
	}
	// And refuses a changed file (the test can fail).
	b, _ := os.ReadFile(path)
	os.WriteFile(path, append(b, "10.9.9.9\n"...), 0o644)
	if out, err := exec.Command(bin, "-V", "-P", s.PublicKey(), "-m", path).CombinedOutput(); err == nil {
		t.Errorf("minisign -V accepted a changed file:\n%s", out)
	}
}
