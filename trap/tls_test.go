package trap

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

func selfSignedConfig(t testing.TB) *tls.Config {
	t.Helper()
	cfg, err := TLSConfig("", "", "trap.example.net")
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// STARTTLS with the Go SMTP client: the evidence records TLS.
func TestSTARTTLS(t *testing.T) {
	sink := &FakeSink{}
	s := startTrap(t, Config{TLS: selfSignedConfig(t)}, sink)
	c, err := smtp.DialStartTLS(s.Addr().String(), &tls.Config{InsecureSkipVerify: true, ServerName: "trap.example.net"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("mx.example.net"); err != nil {
		t.Fatal(err)
	}
	st, ok := c.TLSConnectionState()
	if !ok || st.PeerCertificates[0].Subject.CommonName != "trap.example.net" {
		t.Fatalf("TLS state %v %+v", ok, st.PeerCertificates)
	}
	if err := c.SendMail("", []string{"x@trap.blowback.test"}, strings.NewReader(testDSN)); err != nil {
		t.Fatal(err)
	}
	if err := c.Quit(); err != nil {
		t.Fatal(err)
	}
	evs := waitEvents(t, sink, 1)
	if !evs[0].TLS || evs[0].HELO != "mx.example.net" {
		t.Errorf("event TLS=%v HELO=%q", evs[0].TLS, evs[0].HELO)
	}
	if n := value(s.metrics.starttls); n != 1 {
		t.Errorf("starttls sessions %v", n)
	}
	noPanics(t, s)
}

// Commands pipelined after STARTTLS in clear text are never executed
// (CVE-2011-0411 class: plaintext command injection).
func TestSTARTTLSInjection(t *testing.T) {
	s := startTrap(t, Config{TLS: selfSignedConfig(t)}, nil)
	cl := dial(t, s)
	cl.want("EHLO mx.example.net", "250")
	cl.send("STARTTLS\r\nNOOP\r\n")
	if got := cl.reply(); !strings.HasPrefix(got, "220 2.0.0") {
		t.Fatalf("STARTTLS: %q", got)
	}
	tc := tls.Client(cl.c, &tls.Config{InsecureSkipVerify: true})
	if err := tc.Handshake(); err != nil {
		// The injected bytes were read as TLS: refused either way.
		t.Logf("handshake failed (injected bytes broke it): %v", err)
		return
	}
	br := bufio.NewReader(tc)
	if _, err := tc.Write([]byte("EHLO tls.example.net\r\n")); err != nil {
		t.Fatal(err)
	}
	line, _ := br.ReadString('\n')
	if !strings.HasPrefix(line, "250-Hello tls.example.net") {
		t.Fatalf("first reply over TLS %q: an injected plaintext command was answered", line)
	}
}

// Handshake garbage after STARTTLS: a clear error, the server goes on.
func TestSTARTTLSGarbage(t *testing.T) {
	s := startTrap(t, Config{TLS: selfSignedConfig(t), ReadTimeout: 500 * time.Millisecond}, nil)
	for _, junk := range []string{
		"hello this is not TLS\r\n",
		"\x16\x03\x01\x00\x05\x01\x00\x00\x01\x00",
		"\x16\x03\x01\xff\xff" + strings.Repeat("\x00", 100),
		"\x80\x80\x01\x03\x01", // SSLv2-style hello
	} {
		cl := dial(t, s)
		// EHLO and STARTTLS pipelined (nothing follows STARTTLS before its
		// 220): no round trip must beat the 500ms read timeout.
		cl.send("EHLO mx.example.net\r\nSTARTTLS\r\n")
		for _, want := range []string{"250", "220"} {
			if got := cl.reply(); !strings.HasPrefix(got, want) {
				t.Fatalf("EHLO, STARTTLS: got %q, want %s", got, want)
			}
		}
		cl.send(junk)
		// The handshake fails at once, or at the read timeout when the
		// junk announces more bytes; then 550 5.0.0, and go-smtp goes on
		// in clear text until the idle timeout.
		if got := cl.drain(); !strings.HasPrefix(got, "421 4.4.2") {
			t.Errorf("after %q: last line %q", junk, got)
		}
	}
	cl := dial(t, s)
	cl.want("EHLO other.example.net", "250")
	noPanics(t, s)
}

func TestTLSConfigFiles(t *testing.T) {
	dir := t.TempDir()
	cert, err := SelfSigned("files.example.net", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	key, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: key}), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := TLSConfig(certFile, keyFile, "ignored")
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(cfg.Certificates[0].Certificate[0])
	if err != nil || leaf.Subject.CommonName != "files.example.net" {
		t.Fatalf("loaded %v %v", leaf, err)
	}
	for _, c := range [][2]string{{certFile, ""}, {"", keyFile}, {keyFile, certFile}, {filepath.Join(dir, "none"), keyFile}} {
		if _, err := TLSConfig(c[0], c[1], "x"); err == nil {
			t.Errorf("TLSConfig(%q, %q) accepted", c[0], c[1])
		}
	}
}
