package trap

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"time"
)

// ErrTLS is returned when the STARTTLS certificate cannot be loaded or made.
var ErrTLS = errors.New("trap: tls")

// TLSConfig returns the STARTTLS configuration (RFC 3207): the certificate
// and key in certFile/keyFile (PEM) when both are given, else a self-signed
// ECDSA P-256 certificate for hostname made now and kept in memory. Senders
// use opportunistic TLS and do not verify, so self-signed is enough to record
// whether backscatter arrived over TLS.
func TLSConfig(certFile, keyFile, hostname string) (*tls.Config, error) {
	var cert tls.Certificate
	var err error
	switch {
	case certFile != "" && keyFile != "":
		cert, err = tls.LoadX509KeyPair(certFile, keyFile)
	case certFile != "" || keyFile != "":
		return nil, fmt.Errorf("%w: need both a certificate and a key file", ErrTLS)
	default:
		cert, err = SelfSigned(hostname, time.Now())
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrTLS, err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}}, nil
}

// SelfSigned makes a self-signed server certificate for hostname, valid from
// an hour before now for a year.
func SelfSigned(hostname string, now time.Time) (tls.Certificate, error) {
	if hostname == "" {
		hostname = "blowback-trap"
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: hostname},
		DNSNames:     []string{hostname},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}
