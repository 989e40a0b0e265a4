package forward

import (
	"bytes"
	"crypto/tls"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/blowback-dnsbl/blowback/forward/forwardtest"
)

// A renewed certificate is served without a restart; a half-written one
// leaves the previous certificate in service.
func TestServerCertificateReload(t *testing.T) {
	dir := t.TempDir()
	old := forwardtest.NewPKI(t, filepath.Join(dir))
	renewedDir := filepath.Join(dir, "renewed")
	os.Mkdir(renewedDir, 0o700)
	renewed := forwardtest.NewPKI(t, renewedDir)

	cr := &certReloader{cert: old.ServerCert, key: old.ServerKey}
	if _, err := cr.load(); err != nil {
		t.Fatal(err)
	}
	serving := func() []byte {
		t.Helper()
		c, err := cr.get(&tls.ClientHelloInfo{})
		if err != nil {
			t.Fatal(err)
		}
		return c.Certificate[0]
	}
	first := serving()
	copyFile := func(from, to string) {
		t.Helper()
		b, err := os.ReadFile(from)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(to, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	expire := func() {
		cr.mu.Lock()
		cr.checked = time.Time{}
		cr.mu.Unlock()
	}
	// Half a renewal: the new certificate, the old key.
	copyFile(renewed.ServerCert, old.ServerCert)
	expire()
	if !bytes.Equal(serving(), first) {
		t.Fatal("a mismatched pair replaced the certificate")
	}
	copyFile(renewed.ServerKey, old.ServerKey)
	if !bytes.Equal(serving(), first) {
		t.Fatal("files re-read before the check interval")
	}
	expire()
	if bytes.Equal(serving(), first) {
		t.Fatal("renewed certificate not served")
	}
	if _, err := ServerTLS(old.ServerCert, "", ""); err == nil {
		t.Error("certificate without key accepted")
	}
	if _, err := ServerTLS(old.ServerCert, old.ServerKey, old.ServerKey); err == nil {
		t.Error("client CA file without certificates accepted")
	}
}
