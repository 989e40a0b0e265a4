package forward

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"sync"
	"time"
)

// TLSConfig is the client side of the forward link: caFile (PEM) replaces
// the system roots when set; certFile and keyFile present a client
// certificate when set; serverName overrides the name verified in the
// central node's certificate. All empty: nil (system roots, no client
// certificate).
func TLSConfig(caFile, certFile, keyFile, serverName string) (*tls.Config, error) {
	if caFile == "" && certFile == "" && keyFile == "" && serverName == "" {
		return nil, nil
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: serverName}
	if caFile != "" {
		pool, err := LoadCAs(caFile)
		if err != nil {
			return nil, err
		}
		c.RootCAs = pool
	}
	if (certFile == "") != (keyFile == "") {
		return nil, fmt.Errorf("%w: a client certificate needs both the certificate and the key file", ErrConfig)
	}
	if certFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("%w: client certificate: %v", ErrConfig, err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}

// LoadCAs reads a PEM bundle of CA certificates.
func LoadCAs(file string) (*x509.CertPool, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("%w: CA file: %v", ErrConfig, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("%w: CA file %s: no PEM certificate in it", ErrConfig, file)
	}
	return pool, nil
}

// ServerTLS is the central node's side: its certificate (re-read when the
// files change, so a renewed certificate needs no restart) and, with
// clientCA, verification of the certificates trap nodes present. Client
// certificates stay optional at the TLS layer, so the public pages on the
// same listener keep working; intake.Config.RequireClientCert demands
// one for evidence.
func ServerTLS(certFile, keyFile, clientCA string) (*tls.Config, error) {
	if certFile == "" || keyFile == "" {
		return nil, fmt.Errorf("%w: HTTPS needs both a certificate and a key file", ErrConfig)
	}
	cr := &certReloader{cert: certFile, key: keyFile}
	if _, err := cr.load(); err != nil {
		return nil, err
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: cr.get}
	if clientCA != "" {
		pool, err := LoadCAs(clientCA)
		if err != nil {
			return nil, err
		}
		c.ClientCAs = pool
		c.ClientAuth = tls.VerifyClientCertIfGiven
	}
	return c, nil
}

// certReloader serves a certificate pair, re-reading it when either file's
// modification time changes (checked at most every 10 seconds).
type certReloader struct {
	cert, key string

	mu      sync.Mutex
	current *tls.Certificate
	stamp   string
	checked time.Time
}

func (c *certReloader) stampOf() string {
	var s string
	for _, f := range []string{c.cert, c.key} {
		if fi, err := os.Stat(f); err == nil {
			s += fmt.Sprintf("%d/%d;", fi.Size(), fi.ModTime().UnixNano())
		}
	}
	return s
}

func (c *certReloader) load() (*tls.Certificate, error) {
	stamp := c.stampOf()
	cert, err := tls.LoadX509KeyPair(c.cert, c.key)
	if err != nil {
		return nil, fmt.Errorf("%w: TLS certificate: %v", ErrConfig, err)
	}
	c.mu.Lock()
	c.current, c.stamp, c.checked = &cert, stamp, time.Now()
	c.mu.Unlock()
	return &cert, nil
}

func (c *certReloader) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	c.mu.Lock()
	cur, stamp, stale := c.current, c.stamp, time.Since(c.checked) > 10*time.Second
	if stale {
		c.checked = time.Now()
	}
	c.mu.Unlock()
	if stale && c.stampOf() != stamp {
		if cert, err := c.load(); err == nil {
			return cert, nil
		}
		// A half-written renewal: keep serving the old pair until it parses.
	}
	return cur, nil
}
