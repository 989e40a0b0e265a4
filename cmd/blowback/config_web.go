package main

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/blowback-dnsbl/blowback/internal/netx"
	"github.com/blowback-dnsbl/blowback/web"
)

// WebConfig is the [web] table: the public pages and the self-service delist.
type WebConfig struct {
	// Title names the list on every page.
	Title string `toml:"title"`
	// Contact is shown in every page's footer (an address or URL).
	Contact string `toml:"contact"`
	// DelistPerRequesterPerHour limits public delists per requesting address.
	DelistPerRequesterPerHour int `toml:"delist_per_requester_per_hour"`
	// DelistPerAddressPerDay limits public delists of one listed address (/32 or /64).
	DelistPerAddressPerDay int `toml:"delist_per_address_per_day"`
	// TrustedProxies (CIDRs) may set X-Forwarded-For: behind them the
	// requester is the last untrusted address in it.
	TrustedProxies []string `toml:"trusted_proxies"`
	// StaleAfter: the status page calls the zone stale after this long
	// without a change.
	StaleAfter Duration `toml:"stale_after"`
	// FormSecretFile holds the key of the delist form's CSRF tokens; empty:
	// a random key per process (set it when several frontends serve one name).
	FormSecretFile string `toml:"form_secret_file"`
	// MaxConns caps open HTTP connections; MaxConnsPerClient those of one
	// client (IPv4 /24, IPv6 /64; trusted proxies count only overall).
	// IdleTimeout closes idle keep-alive connections, ShortIdle under
	// pressure (over 3/4 of MaxConns). Zero: web.Default*.
	MaxConns          int      `toml:"max_conns"`
	MaxConnsPerClient int      `toml:"max_conns_per_client"`
	IdleTimeout       Duration `toml:"idle_timeout"`
	ShortIdle         Duration `toml:"short_idle"`

	formSecret []byte // read by validate
}

func defaultWebConfig() WebConfig {
	return WebConfig{
		Title:                     "blowback backscatter list",
		DelistPerRequesterPerHour: 5,
		DelistPerAddressPerDay:    3,
		StaleAfter:                Duration(time.Hour),
		MaxConns:                  web.DefaultMaxConns,
		MaxConnsPerClient:         web.DefaultMaxConnsPerClient,
		IdleTimeout:               Duration(web.DefaultIdleTimeout),
		ShortIdle:                 Duration(web.DefaultShortIdle),
	}
}

func (w *WebConfig) validate() error {
	var errs []error
	if w.DelistPerRequesterPerHour <= 0 || w.DelistPerAddressPerDay <= 0 {
		errs = append(errs, errors.New("web: delist limits must be positive"))
	}
	for _, p := range w.TrustedProxies {
		if _, err := netx.ParsePrefix(p); err != nil {
			errs = append(errs, fmt.Errorf("web.trusted_proxies: %v", err))
		}
	}
	if w.MaxConns < 0 || w.MaxConnsPerClient < 0 || w.IdleTimeout < 0 || w.ShortIdle < 0 {
		errs = append(errs, errors.New("web: max_conns, max_conns_per_client, idle_timeout and short_idle must not be negative"))
	}
	if w.StaleAfter <= 0 {
		errs = append(errs, errors.New("web.stale_after must be positive"))
	}
	if w.FormSecretFile != "" {
		b, err := os.ReadFile(w.FormSecretFile)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("web.form_secret_file: %v", err))
		case len(strings.TrimSpace(string(b))) < 16:
			errs = append(errs, errors.New("web.form_secret_file: want at least 16 characters"))
		default:
			w.formSecret = []byte(strings.TrimSpace(string(b)))
		}
	}
	return errors.Join(errs...)
}

// webConfig is the HTTP server's configuration.
func (c *Config) webConfig(adminTokens []string) web.Config {
	w := c.Web
	wc := web.Config{AdminTokens: adminTokens, PublicURL: c.publicURL(), SOA: c.soa(),
		Title: w.Title, Contact: w.Contact, DelistPerIPPerHour: w.DelistPerRequesterPerHour,
		DelistPerAddrPerDay: w.DelistPerAddressPerDay, StaleAfter: time.Duration(w.StaleAfter),
		MaxConns: w.MaxConns, MaxConnsPerClient: w.MaxConnsPerClient, IdleTimeout: time.Duration(w.IdleTimeout),
		ShortIdle: time.Duration(w.ShortIdle)}
	for _, p := range w.TrustedProxies {
		if pr, err := netx.ParsePrefix(p); err == nil { // validated
			wc.TrustedProxies = append(wc.TrustedProxies, pr)
		}
	}
	wc.FormSecret = w.formSecret
	wc.Card = c.cardConfig() // config_operator.go
	c.applyForward(&wc)      // config_forward.go: evidence intake, HTTPS
	return wc
}
