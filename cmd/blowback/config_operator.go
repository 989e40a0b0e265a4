package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/blowback-dnsbl/blowback/listing"
	"github.com/blowback-dnsbl/blowback/selftest"
	"github.com/blowback-dnsbl/blowback/store"
	"github.com/blowback-dnsbl/blowback/web"
	"github.com/blowback-dnsbl/blowback/zones"
)

// CardConfig is the [card] table: what the list's card (GET /zone,
// /api/v1/zone) says beyond the zone and the policy.
type CardConfig struct {
	// Rsync is the rsync URL of the exports (deploy/rsyncd.conf), e.g.
	// "rsync://rsync.example.org/blowback/"; empty: not offered.
	Rsync string `toml:"rsync"`
	// AXFR says where and for whom zone transfers are offered; empty: said
	// from [export] allow_transfer and the DNS address.
	AXFR string `toml:"axfr"`
	// Terms are the usage terms in plain words.
	Terms string `toml:"terms"`
	// MirrorAbove: queries a day above which users should mirror (0: not said).
	MirrorAbove int `toml:"mirror_above"`
}

// SelfTestConfig is the [selftest] table: the operator self-test, the only
// mail blowback sends. Off unless enabled.
type SelfTestConfig struct {
	Enabled bool `toml:"enabled"`
	// Resolver (host:port) resolves the tested domain's MX hosts.
	Resolver string `toml:"resolver"`
	// TrapDomain of the per-test sender addresses; default the first trap domain.
	TrapDomain string `toml:"trap_domain"`
	HELO       string `toml:"helo"`
	// SMTPPort of the MX hosts; default 25.
	SMTPPort int `toml:"smtp_port"`
	// Watch: how long an accepted probe is watched (default 10m); Grace:
	// how long a rejected one is (default 30s).
	Watch Duration `toml:"watch"`
	Grace Duration `toml:"grace"`
	// Limits: per domain per day (3), per MX address per hour (10), per
	// requester per hour (5), running at once (20).
	PerDomainPerDay     int `toml:"per_domain_per_day"`
	PerMXPerHour        int `toml:"per_mx_per_hour"`
	PerRequesterPerHour int `toml:"per_requester_per_hour"`
	MaxRunning          int `toml:"max_running"`
	// AllowPrivate lets the probe connect to private and loopback
	// addresses (tests and labs only).
	AllowPrivate bool `toml:"allow_private"`
}

func (s *SelfTestConfig) validate() error {
	if !s.Enabled {
		return nil
	}
	var errs []error
	if s.Resolver == "" {
		errs = append(errs, errors.New("selftest.resolver is required when selftest is enabled"))
	} else if !strings.Contains(s.Resolver, ":") {
		errs = append(errs, fmt.Errorf("selftest.resolver %q: want host:port", s.Resolver))
	}
	if s.SMTPPort < 0 || s.SMTPPort > 65535 {
		errs = append(errs, errors.New("selftest.smtp_port out of range"))
	}
	for _, v := range []int{s.PerDomainPerDay, s.PerMXPerHour, s.PerRequesterPerHour, s.MaxRunning} {
		if v < 0 {
			errs = append(errs, errors.New("selftest limits must not be negative"))
			break
		}
	}
	return errors.Join(errs...)
}

// selfTestConfig is the tester's configuration.
func (c *Config) selfTestConfig() selftest.Config {
	s := c.SelfTest
	dom := s.TrapDomain
	if dom == "" && len(c.TrapDomains) > 0 {
		dom = c.TrapDomains[0]
	}
	return selftest.Config{Enabled: s.Enabled, Resolver: s.Resolver, TrapDomain: dom, HELO: s.HELO, SMTPPort: s.SMTPPort,
		Watch: time.Duration(s.Watch), Grace: time.Duration(s.Grace), PerDomainPerDay: s.PerDomainPerDay,
		PerMXPerHour: s.PerMXPerHour, PerRequesterPerHour: s.PerRequesterPerHour, MaxRunning: s.MaxRunning,
		AllowPrivate: s.AllowPrivate, PublicURL: c.publicURL(), ListName: c.Web.Title}
}

// cardConfig is what the card says from the configuration.
func (c *Config) cardConfig() web.CardConfig {
	axfr := c.Card.AXFR
	if axfr == "" && len(c.Export.AllowTransfer) > 0 {
		axfr = "AXFR and IXFR over TCP from " + c.DNS + " for " + strings.Join(c.Export.AllowTransfer, ", ")
		if c.Export.RequireTSIG {
			axfr += " (TSIG required)"
		}
		if len(c.Export.Notify) > 0 {
			axfr += "; NOTIFY is sent on every change"
		}
	}
	return web.CardConfig{Rsync: c.Card.Rsync, AXFR: axfr, Terms: c.Card.Terms, MirrorAbove: c.Card.MirrorAbove,
		TTL: time.Duration(c.DNSCfg.TTL)}
}

// newTester returns the self-tester (disabled unless configured: its Tap
// then passes evidence straight on).
func newTester(cfg Config, st *store.Store, eng *listing.Engine, cur *zones.Current, log *slog.Logger, reg prometheus.Registerer) *selftest.Tester {
	return selftest.New(cfg.selfTestConfig(), nil, st, testerListing{eng: eng, cur: cur}, log, reg)
}

// testerListing is what a passed self-test acts on.
type testerListing struct {
	eng *listing.Engine
	cur *zones.Current
}

func (l testerListing) Listed(a netip.Addr) bool {
	snap := l.cur.Load()
	return snap != nil && snap.Lookup(a) != 0
}

func (l testerListing) Delist(ctx context.Context, a store.Action) error {
	_, err := l.eng.Act(ctx, a)
	return err
}
