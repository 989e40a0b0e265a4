package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/blowback-dnsbl/blowback/dnsd"
	"github.com/blowback-dnsbl/blowback/internal/lifecycle"
	"github.com/blowback-dnsbl/blowback/internal/runline"
	"github.com/blowback-dnsbl/blowback/listing"
	"github.com/blowback-dnsbl/blowback/selftest"
	"github.com/blowback-dnsbl/blowback/store"
	"github.com/blowback-dnsbl/blowback/trap"
	"github.com/blowback-dnsbl/blowback/web"
	"github.com/blowback-dnsbl/blowback/zones"
)

// nodeFlags registers the flags of `run` (CONTRACT.md) and returns a
// function that loads the config file and applies the flags given.
func nodeFlags(fs *flag.FlagSet) func() (Config, error) {
	def := defaultConfig()
	set := sharedNodeFlags(fs, "data `DIR` (badger store, admin token)", "HTTP listen `ADDR` (API, lookup page, /metrics)")
	dnsAddr := fs.String("dns", def.DNS, "DNS listen `ADDR` (UDP and TCP)")
	zone := fs.String("zone", def.Zone, "DNSBL zone `NAME`")
	exportDir := fs.String("export-dir", "", "keep <zone>.rbldnsd and <zone>.zone current in `DIR`")
	set["dns"] = func(c *Config) { c.DNS = *dnsAddr }
	set["zone"] = func(c *Config) { c.Zone = *zone }
	set["export-dir"] = func(c *Config) { c.ExportDir = *exportDir }
	return configLoader(fs, set)
}

// flagSetters sets, for each flag name, its value in a Config.
type flagSetters map[string]func(*Config)

// sharedNodeFlags registers the flags `run` and `trap` share.
func sharedNodeFlags(fs *flag.FlagSet, dataUsage, httpUsage string) flagSetters {
	def := defaultConfig()
	data := fs.String("data", def.Data, dataUsage)
	smtpAddr := fs.String("smtp", def.SMTP, "trap SMTP listen `ADDR`")
	httpAddr := fs.String("http", def.HTTP, httpUsage)
	domains := &stringList{vals: def.TrapDomains}
	fs.Var(domains, "trap-domain", "trap `DOMAIN` (repeatable)")
	logLevel := fs.String("log-level", def.LogLevel, "log `LEVEL`: debug, info, warn, error")
	return flagSetters{
		"data":        func(c *Config) { c.Data = *data },
		"smtp":        func(c *Config) { c.SMTP = *smtpAddr },
		"http":        func(c *Config) { c.HTTP = *httpAddr },
		"trap-domain": func(c *Config) { c.TrapDomains = domains.vals },
		"log-level":   func(c *Config) { c.LogLevel = *logLevel },
	}
}

// configLoader registers --config and returns a function that loads the
// config file, applies the flags given (set) and validates the result.
func configLoader(fs *flag.FlagSet, set flagSetters) func() (Config, error) {
	cfgPath := fs.String("config", "", "TOML config `FILE` (flags override it)")
	return func() (Config, error) {
		c, err := loadConfig(*cfgPath)
		if err != nil {
			return c, usageError("%v", err)
		}
		fs.Visit(func(f *flag.Flag) {
			if s := set[f.Name]; s != nil {
				s(&c)
			}
		})
		if err := c.validate(); err != nil {
			return c, usageError("%v", err)
		}
		return c, nil
	}
}

func cmdRun(args []string, stdout, stderr io.Writer) error {
	return nodeCommand("run", "[flags]", args, stderr, nodeFlags,
		func(cfg Config, log *slog.Logger) startStopper { return newNode(cfg, log) })
}

// startStopper is a node: `run`'s all-in-one or `trap`'s trap-only.
type startStopper interface {
	Start(context.Context) error
	Stop() error
}

// nodeCommand is the shell of `run` and `trap`: flags, config, logger, then
// serve the node until a signal.
func nodeCommand(name, synopsis string, args []string, stderr io.Writer,
	flags func(*flag.FlagSet) func() (Config, error), build func(Config, *slog.Logger) startStopper) error {
	fs := newFlagSet(name, synopsis, stderr)
	load := flags(fs)
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := load()
	if err != nil {
		return err
	}
	log, err := newLogger(stderr, cfg.LogLevel, cfg.LogFormat)
	if err != nil {
		return err
	}
	return serve(log, build(cfg, log))
}

// serve starts n, waits for SIGINT or SIGTERM and stops it (the shell of
// `run` and `trap`).
func serve(log *slog.Logger, n startStopper) error {
	raiseNoFile(log)
	sig := notifyShutdown()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	err := n.Start(ctx)
	cancel()
	if err != nil {
		n.Stop()
		return err
	}
	waitForSignal(log, sig)
	return n.Stop()
}

// notifyShutdown starts catching SIGINT and SIGTERM before anything starts,
// so that a signal during start-up (or right after the "running" line) still
// stops the node cleanly instead of killing it.
func notifyShutdown() chan os.Signal {
	sig := make(chan os.Signal, 2)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	return sig
}

// waitForSignal blocks until SIGINT or SIGTERM on sig; a second signal
// kills the process at once.
func waitForSignal(log *slog.Logger, sig chan os.Signal) {
	s := <-sig
	log.Info("shutting down", "signal", s.String())
	go func() {
		s := <-sig
		log.Error("second signal, exiting now", "signal", s.String())
		os.Exit(1)
	}()
}

// component is one part of a node (started in order, stopped in reverse).
type component = lifecycle.Component

// stopTimeout is the one deadline for stopping all of a node's components
// (the systemd units give 45 s).
const stopTimeout = 30 * time.Second

// stopAll stops life's components under one deadline and logs "stopped".
func stopAll(life *lifecycle.Group, log *slog.Logger) error {
	ctx, cancel := context.WithTimeout(context.Background(), stopTimeout)
	defer cancel()
	err := life.Stop(ctx)
	log.Info("stopped")
	return err
}

// node is an all-in-one blowback: store, listing, DNS, trap, HTTP.
type node struct {
	cfg Config
	log *slog.Logger
	reg *prometheus.Registry

	life   *lifecycle.Group
	st     *store.Store
	cur    *zones.Current
	eng    *listing.Engine
	dns    *dnsd.Server
	trap   smtpTrap
	web    *web.Server
	tester *selftest.Tester // operator self-tests (nil: off)
	cl     *clusterParts    // [cluster]: this node is a replica of the log (cmd_cluster.go)
}

func newNode(cfg Config, log *slog.Logger) *node {
	return &node{cfg: cfg, log: log, reg: newRegistry(), cur: &zones.Current{}, life: lifecycle.New(log)}
}

// newRegistry is a node's metrics registry, with the Go and process collectors.
func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// adminTokens returns the configured tokens, or the one kept in
// <data>/admin.token, generating it on first use.
func adminTokens(cfg Config, log *slog.Logger) ([]string, error) {
	if len(cfg.AdminTokens) > 0 {
		return cfg.AdminTokens, nil
	}
	path := filepath.Join(cfg.Data, "admin.token")
	if b, err := os.ReadFile(path); err == nil && len(strings.TrimSpace(string(b))) > 0 {
		return []string{strings.TrimSpace(string(b))}, nil
	}
	var b [24]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, err
	}
	tok := hex.EncodeToString(b[:])
	if err := os.MkdirAll(cfg.Data, 0o750); err != nil {
		return nil, err
	}
	if err := os.WriteFile(path, []byte(tok+"\n"), 0o600); err != nil {
		return nil, err
	}
	log.Info("generated admin token", "file", path)
	return []string{tok}, nil
}

func (n *node) Start(ctx context.Context) error {
	cfg := n.cfg
	pol, err := cfg.policy()
	if err != nil {
		return usageError("%v", err)
	}
	tokens, err := adminTokens(cfg, n.log)
	if err != nil {
		return err
	}
	comps := []component{
		{Name: "store", Start: func(ctx context.Context) error {
			n.st, err = store.Open(filepath.Join(cfg.Data, "store"), cfg.storeOptions(), n.log)
			if err == nil {
				n.st.RegisterMetrics(n.reg)
			}
			return err
		}, Stop: func(ctx context.Context) error { return n.st.Close() }},
		{Name: "listing", Start: func(ctx context.Context) error {
			lc := cfg.listingConfig(pol)
			// Replies to self-test probes, from the trap or forwarded by trap
			// nodes, go to the tester, not into the evidence (config_operator.go).
			lc.Divert = func(ev *store.Event) bool { return n.tester.Divert(ev) }
			if cfg.Cluster.enabled() {
				return n.startReplica(ctx, lc)
			}
			n.eng = listing.New(lc, n.st, n.cur, n.log, n.reg)
			n.subscribeZones()
			return n.eng.Start(ctx)
		}, Stop: func(ctx context.Context) error {
			if n.cl != nil {
				return n.stopReplica(ctx)
			}
			return n.eng.Stop(ctx)
		}},
		{Name: "selftest", Start: func(ctx context.Context) error {
			n.tester = newTester(cfg, n.st, n.eng, n.cur, n.log, n.reg)
			return nil
		}, Stop: func(ctx context.Context) error { return n.tester.Stop(ctx) }},
		{Name: "dns", Start: func(ctx context.Context) error {
			dc, err := cfg.dnsServerConfig()
			if err != nil {
				return err
			}
			dc.ServeFailed = n.life.Failer("dns")
			n.dns = dnsd.New(dc, n.cur, n.log, n.reg)
			return n.dns.Start(cfg.DNS)
		}, Stop: func(ctx context.Context) error { return n.dns.Stop(ctx) }},
	}
	// Zone distribution (AXFR/IXFR, NOTIFY) starts after DNS, stops before it.
	comps = append(comps, n.zoneComponents()...)
	comps = append(comps,
		n.trap.component(cfg, n.life, n.log, n.reg, func() trap.Sink { return n.eng }),
		component{Name: "http", Start: func(ctx context.Context) error {
			wc := cfg.webConfig(tokens)
			if n.tester.Enabled() {
				wc.SelfTest = n.tester
			}
			if k := n.dns.Keys(); k != nil {
				wc.DNSKeys = k.Handler() // keyed DNS access: the key admin API
			}
			wc.ServeFailed = n.life.Failer("http")
			if n.cl != nil && n.cl.replica != nil {
				wc.Intake.Revocations = n.cl.replica // node revocations through the log (cmd_cluster.go)
			}
			n.web = web.New(wc, n.eng, n.st, n.cur, n.log, n.reg, n.reg, n.life.Ready)
			return n.web.Start(cfg.HTTP)
		}, Stop: func(ctx context.Context) error { return n.web.Stop(ctx) }})
	if err := n.life.Start(ctx, comps...); err != nil {
		return err
	}
	n.log.Info(runline.Msg, "zone", cfg.Zone, "smtp", n.trap.Addr().String(), "dns", n.dns.Addr().String(),
		"http", n.web.Addr().String(), "data", cfg.Data)
	return nil
}

// Stop stops the components in reverse order under one deadline.
func (n *node) Stop() error { return stopAll(n.life, n.log) }

// smtpTrap is the SMTP trap of either node, with its listener.
type smtpTrap struct {
	*trap.Server
	l net.Listener
}

// component listens on cfg.SMTP and serves the trap, committing through
// the sink that sink returns (known once the components before it
// started); a serve loop that dies reports to life.
func (t *smtpTrap) component(cfg Config, life *lifecycle.Group, log *slog.Logger, reg prometheus.Registerer, sink func() trap.Sink) component {
	return component{Name: "trap", Start: func(ctx context.Context) error {
		tc, err := cfg.trapConfig()
		if err != nil {
			return err
		}
		tc.ServeFailed = life.Failer("trap")
		l, err := net.Listen("tcp", cfg.SMTP)
		if err != nil {
			return fmt.Errorf("trap: listen %s: %w", cfg.SMTP, err)
		}
		t.l, t.Server = l, trap.New(tc, sink(), log, reg)
		t.Serve(l)
		log.Info("trap listening", "addr", l.Addr().String(), "domains", tc.Domains, "starttls", tc.TLS != nil,
			"proxy_trusted", len(tc.ProxyTrusted))
		return nil
	}, Stop: func(ctx context.Context) error { return t.Server.Stop(ctx) }}
}
