package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/blowback-dnsbl/blowback/forward"
	"github.com/blowback-dnsbl/blowback/intake"
	"github.com/blowback-dnsbl/blowback/web"
)

// ForwardConfig is the [forward] table: both ends of the link that carries
// evidence from trap-only nodes (`blowback trap`) to a central node
// (`blowback run`). Node tokens themselves are the top-level node_tokens
// table (node id = token) and/or node_tokens_file here.
type ForwardConfig struct {
	// Trap side.

	// URL of the central node (base URL or full evidence URL); --forward.
	URL string `toml:"url"`
	// Token is this trap node's token on the central node; --token. Prefer
	// TokenFile (--token-file): a token on the command line shows in ps.
	Token     string `toml:"token"`
	TokenFile string `toml:"token_file"`
	// CAFile (PEM) verifies the central node's certificate instead of the
	// system roots; --ca-file.
	CAFile string `toml:"ca_file"`
	// ClientCert and ClientKey (PEM) are presented to the central node.
	ClientCert string `toml:"client_cert"`
	ClientKey  string `toml:"client_key"`
	// ServerName overrides the name checked in the central's certificate.
	ServerName  string   `toml:"server_name"`
	BatchEvents int      `toml:"batch_events"`
	Timeout     Duration `toml:"timeout"`
	BackoffMin  Duration `toml:"backoff_min"`
	BackoffMax  Duration `toml:"backoff_max"`
	// SpoolMaxEvents bounds the local backlog; beyond it the trap answers
	// 451 (senders retry). 0: no bound.
	SpoolMaxEvents int64 `toml:"spool_max_events"`
	// RawMax is how much of each raw message is spooled and forwarded
	// (bytes); 0 forwards none.
	RawMax int `toml:"raw_max"`
	// SpoolUnitMaxEvents and SpoolUnitMaxRawMB cap the spool per unit
	// (IPv4 address, IPv6 /64) and [store] unit_window of event time, like
	// the central store's unit_max_events and unit_max_raw_mb (same
	// defaults): past the event cap an event is dropped here (the central
	// store would only have counted it), past the raw cap it is spooled
	// without its raw message (forward/unitcap.go). 0: no cap.
	SpoolUnitMaxEvents int `toml:"spool_unit_max_events"`
	SpoolUnitMaxRawMB  int `toml:"spool_unit_max_raw_mb"`
	// SpoolNetMaxEvents and SpoolNetMaxRawMB are the same per network
	// (IPv4 /24, IPv6 /48), like the central store's net_max_events and
	// net_max_raw_mb (same defaults): past the event cap an event is
	// dropped here, but for each unit's first of each kind in the window.
	// 0: no cap.
	SpoolNetMaxEvents int `toml:"spool_net_max_events"`
	SpoolNetMaxRawMB  int `toml:"spool_net_max_raw_mb"`

	// Central side.

	// NodeTokensFile: more node tokens, "node token" per line, re-read when
	// it changes (add or remove a trap node without a restart).
	NodeTokensFile string `toml:"node_tokens_file"`
	// TLSCert and TLSKey make the HTTP listener (API, pages, evidence)
	// serve HTTPS; re-read when the files change.
	TLSCert string `toml:"tls_cert"`
	TLSKey  string `toml:"tls_key"`
	// ClientCA (PEM) verifies the client certificates trap nodes present.
	ClientCA string `toml:"client_ca"`
	// RequireClientCert refuses evidence without a verified client certificate.
	RequireClientCert bool `toml:"require_client_cert"`

	serverTLS *tls.Config // loaded by validate
}

func defaultForwardConfig() ForwardConfig {
	return ForwardConfig{
		BatchEvents: 500,
		Timeout:     Duration(30 * time.Second),
		BackoffMin:  Duration(500 * time.Millisecond),
		BackoffMax:  Duration(2 * time.Minute),
		RawMax:      64 << 10,
		// The central store's defaults (store.DefaultOptions).
		SpoolUnitMaxEvents: 500,
		SpoolUnitMaxRawMB:  16,
		SpoolNetMaxEvents:  16 * 500,
		SpoolNetMaxRawMB:   16 * 16,
	}
}

func (f *ForwardConfig) validate() error {
	var errs []error
	if f.URL != "" {
		if _, err := forward.EvidenceURL(f.URL); err != nil {
			errs = append(errs, err)
		}
	}
	if f.Token != "" && f.TokenFile != "" {
		errs = append(errs, errors.New("forward: set token or token_file, not both"))
	}
	if f.BatchEvents <= 0 || f.Timeout <= 0 || f.BackoffMin <= 0 || f.BackoffMax < f.BackoffMin {
		errs = append(errs, errors.New("forward: batch_events, timeout and backoff must be positive (backoff_max >= backoff_min)"))
	}
	if f.SpoolMaxEvents < 0 || f.RawMax < 0 || f.SpoolUnitMaxEvents < 0 || f.SpoolUnitMaxRawMB < 0 || f.SpoolNetMaxEvents < 0 || f.SpoolNetMaxRawMB < 0 {
		errs = append(errs, errors.New("forward: spool_max_events, raw_max, spool_unit_max_* and spool_net_max_* must not be negative"))
	}
	if (f.ClientCert == "") != (f.ClientKey == "") {
		errs = append(errs, errors.New("forward: client_cert and client_key go together"))
	}
	if (f.TLSCert == "") != (f.TLSKey == "") {
		errs = append(errs, errors.New("forward: tls_cert and tls_key go together"))
	}
	if f.ClientCA != "" && f.TLSCert == "" {
		errs = append(errs, errors.New("forward: client_ca needs tls_cert (HTTPS)"))
	}
	if f.RequireClientCert && f.ClientCA == "" {
		errs = append(errs, errors.New("forward: require_client_cert needs client_ca"))
	}
	if f.TLSCert != "" && f.TLSKey != "" {
		tc, err := forward.ServerTLS(f.TLSCert, f.TLSKey, f.ClientCA)
		if err != nil {
			errs = append(errs, fmt.Errorf("forward: %v", err))
		}
		f.serverTLS = tc
	}
	if f.NodeTokensFile != "" {
		if fh, err := os.Open(f.NodeTokensFile); err != nil {
			errs = append(errs, fmt.Errorf("forward.node_tokens_file: %v", err))
		} else {
			_, err := intake.ParseNodeTokens(fh)
			fh.Close()
			if err != nil {
				errs = append(errs, fmt.Errorf("forward.node_tokens_file: %v", err))
			}
		}
	}
	return errors.Join(errs...)
}

// forwardToken is the trap node's token: given, or read from TokenFile.
func (f *ForwardConfig) forwardToken() (string, error) {
	if f.TokenFile == "" {
		return f.Token, nil
	}
	b, err := os.ReadFile(f.TokenFile)
	if err != nil {
		return "", fmt.Errorf("forward.token_file: %v", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// forwardConfig is the trap side's forwarder configuration.
func (c *Config) forwardConfig() (forward.Config, error) {
	f := c.Forward
	tok, err := f.forwardToken()
	if err != nil {
		return forward.Config{}, err
	}
	tc, err := forward.TLSConfig(f.CAFile, f.ClientCert, f.ClientKey, f.ServerName)
	if err != nil {
		return forward.Config{}, err
	}
	return forward.Config{URL: f.URL, Token: tok, Node: c.Trap.Node, TLS: tc, BatchEvents: f.BatchEvents,
		Timeout: time.Duration(f.Timeout), BackoffMin: time.Duration(f.BackoffMin), BackoffMax: time.Duration(f.BackoffMax)}, nil
}

// applyForward sets the central side of the link in the HTTP server's
// configuration: how POST /api/v1/evidence authenticates trap nodes, and
// HTTPS when tls_cert is set.
func (c *Config) applyForward(wc *web.Config) {
	wc.Intake = intake.Config{NodeTokens: c.NodeTokens, TokensFile: c.Forward.NodeTokensFile, RequireClientCert: c.Forward.RequireClientCert}
	wc.TLS = c.Forward.serverTLS
}
