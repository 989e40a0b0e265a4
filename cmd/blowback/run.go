package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/blowback-dnsbl/blowback/dnsd"
	"github.com/blowback-dnsbl/blowback/listing"
	"github.com/blowback-dnsbl/blowback/selftest"
	"github.com/blowback-dnsbl/blowback/store"
	"github.com/blowback-dnsbl/blowback/trap"
	"github.com/blowback-dnsbl/blowback/web"
	"github.com/blowback-dnsbl/blowback/zones"
)

// nodeFlags registers the flags shared by run (CONTRACT.md) and returns a
// function that loads the config file and applies the flags given.
func nodeFlags(fs *flag.FlagSet) func() (Config, error) {
	def := defaultConfig()
	cfgPath := fs.String("config", "", "TOML config `FILE` (flags override it)")
	data := fs.String("data", def.Data, "data `DIR` (badger store, admin token)")
	smtpAddr := fs.String("smtp", def.SMTP, "trap SMTP listen `ADDR`")
	dnsAddr := fs.String("dns", def.DNS, "DNS listen `ADDR` (UDP and TCP)")
	httpAddr := fs.String("http", def.HTTP, "HTTP listen `ADDR` (API, lookup page, /metrics)")
	zone := fs.String("zone", def.Zone, "DNSBL zone `NAME`")
	domains := &stringList{vals: def.TrapDomains}
	fs.Var(domains, "trap-domain", "trap `DOMAIN` (repeatable)")
	exportDir := fs.String("export-dir", "", "keep <zone>.rbldnsd and <zone>.zone current in `DIR`")
	logLevel := fs.String("log-level", def.LogLevel, "log `LEVEL`: debug, info, warn, error")
	return func() (Config, error) {
		c, err := loadConfig(*cfgPath)
		if err != nil {
			return c, usageError("%v", err)
		}
		fs.Visit(func(f *flag.Flag) {
			switch f.Name {
			case "data":
				c.Data = *data
			case "smtp":
				c.SMTP = *smtpAddr
			case "dns":
				c.DNS = *dnsAddr
			case "http":
				c.HTTP = *httpAddr
			case "zone":
				c.Zone = *zone
			case "trap-domain":
				c.TrapDomains = domains.vals
			case "export-dir":
				c.ExportDir = *exportDir
			case "log-level":
				c.LogLevel = *logLevel
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

// component is something with a start and a stop.
type component struct {
	name  string
	start func(ctx context.Context) error
	stop  func(ctx context.Context) error
}

// node is an all-in-one blowback: store, listing, DNS, trap, HTTP.
type node struct {
	cfg Config
	log *slog.Logger
	reg *prometheus.Registry

	st      *store.Store
	cur     *zones.Current
	eng     *listing.Engine
	dns     *dnsd.Server
	trap    *trap.Server
	web     *web.Server
	tester  *selftest.Tester // operator self-tests (nil: off)
	started []component
	ready   bool
	mu      sync.Mutex
	cl      *clusterParts // [cluster]: this node is a replica of the log (cmd_cluster.go)
}

func newNode(cfg Config, log *slog.Logger) *node {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return &node{cfg: cfg, log: log, reg: reg, cur: &zones.Current{}}
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
		{"store", func(ctx context.Context) error {
			n.st, err = store.Open(filepath.Join(cfg.Data, "store"), cfg.storeOptions(), n.log)
			if err == nil {
				n.st.RegisterMetrics(n.reg)
			}
			return err
		}, func(ctx context.Context) error { return n.st.Close() }},
		{"listing", func(ctx context.Context) error {
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
		}, func(ctx context.Context) error {
			if n.cl != nil {
				return n.stopReplica(ctx)
			}
			return n.eng.Stop(ctx)
		}},
		{"selftest", func(ctx context.Context) error {
			n.tester = newTester(cfg, n.st, n.eng, n.cur, n.log, n.reg)
			return nil
		}, func(ctx context.Context) error { return n.tester.Stop(ctx) }},
		{"dns", func(ctx context.Context) error {
			dc, err := cfg.dnsServerConfig()
			if err != nil {
				return err
			}
			n.dns = dnsd.New(dc, n.cur, n.log, n.reg)
			return n.dns.Start(cfg.DNS)
		}, func(ctx context.Context) error { return n.dns.Stop(ctx) }},
		{"trap", func(ctx context.Context) error {
			tc, err := cfg.trapConfig()
			if err != nil {
				return err
			}
			n.trap = trap.New(tc, n.eng, n.log, n.reg)
			return n.trap.Start(cfg.SMTP)
		}, func(ctx context.Context) error { return n.trap.Stop(ctx) }},
		{"http", func(ctx context.Context) error {
			wc := cfg.webConfig(tokens)
			if n.tester.Enabled() {
				wc.SelfTest = n.tester
			}
			if k := n.dns.Keys(); k != nil {
				wc.DNSKeys = k.Handler() // keyed DNS access: the key admin API
			}
			n.web = web.New(wc, n.eng, n.st, n.cur, n.log, n.reg, n.reg, n.isReady)
			return n.web.Start(cfg.HTTP)
		}, func(ctx context.Context) error { return n.web.Stop(ctx) }},
	}
	// Zone distribution (AXFR/IXFR, NOTIFY) starts after DNS, stops before it.
	comps = append(comps[:4], append(n.zoneComponents(), comps[4:]...)...)
	for _, c := range comps {
		if err := c.start(ctx); err != nil {
			return fmt.Errorf("start %s: %w", c.name, err)
		}
		n.mu.Lock()
		n.started = append(n.started, c)
		n.mu.Unlock()
	}
	n.mu.Lock()
	n.ready = true
	n.mu.Unlock()
	n.log.Info("blowback running", "zone", cfg.Zone, "smtp", n.trap.Addr().String(), "dns", n.dns.Addr().String(),
		"http", n.web.Addr().String(), "data", cfg.Data)
	return nil
}

func (n *node) isReady() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.ready
}

// Stop stops components in reverse order, each with a deadline.
func (n *node) Stop() error {
	n.mu.Lock()
	n.ready = false
	started := n.started
	n.started = nil
	n.mu.Unlock()
	var errs []error
	for i := len(started) - 1; i >= 0; i-- {
		c := started[i]
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := c.stop(ctx); err != nil && !errors.Is(err, context.Canceled) {
			n.log.Warn("stop", "component", c.name, "err", err)
			errs = append(errs, fmt.Errorf("stop %s: %w", c.name, err))
		}
		cancel()
	}
	n.log.Info("stopped")
	return errors.Join(errs...)
}
