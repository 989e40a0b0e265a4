package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/blowback-dnsbl/blowback/forward"
	"github.com/blowback-dnsbl/blowback/store"
	"github.com/blowback-dnsbl/blowback/trap"
)

// trapFlags registers the flags of `blowback trap` and returns a function
// that loads the config file and applies the flags given.
func trapFlags(fs *flag.FlagSet) func() (Config, error) {
	def := defaultConfig()
	cfgPath := fs.String("config", "", "TOML config `FILE` (flags override it)")
	data := fs.String("data", def.Data, "data `DIR` (the spool lives in DIR/spool)")
	smtpAddr := fs.String("smtp", def.SMTP, "trap SMTP listen `ADDR`")
	httpAddr := fs.String("http", def.HTTP, "HTTP listen `ADDR` (/metrics, /healthz, /readyz)")
	domains := &stringList{vals: def.TrapDomains}
	fs.Var(domains, "trap-domain", "trap `DOMAIN` (repeatable)")
	node := fs.String("node", "", "this trap node's `ID` (sent for information; the central node records its token's node)")
	fwd := fs.String("forward", "", "central node `URL` (https://central:8443) to forward evidence to")
	token := fs.String("token", "", "node `TOKEN` on the central node (prefer --token-file: ps shows arguments)")
	tokenFile := fs.String("token-file", "", "read the node token from `FILE`")
	caFile := fs.String("ca-file", "", "CA certificates (PEM `FILE`) that sign the central node's certificate")
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
			case "http":
				c.HTTP = *httpAddr
			case "trap-domain":
				c.TrapDomains = domains.vals
			case "node":
				c.Trap.Node = *node
			case "forward":
				c.Forward.URL = *fwd
			case "token":
				c.Forward.Token, c.Forward.TokenFile = *token, ""
			case "token-file":
				c.Forward.TokenFile, c.Forward.Token = *tokenFile, ""
			case "ca-file":
				c.Forward.CAFile = *caFile
			case "log-level":
				c.LogLevel = *logLevel
			}
		})
		if err := c.validate(); err != nil {
			return c, usageError("%v", err)
		}
		if c.Forward.URL != "" && c.Forward.Token == "" && c.Forward.TokenFile == "" {
			return c, usageError("--forward needs --token or --token-file")
		}
		return c, nil
	}
}

// cmdTrap is `blowback trap`: SMTP trap, local spool, forwarder.
func cmdTrap(args []string, stdout, stderr io.Writer) error {
	return nodeCommand("trap", "[flags] [--forward URL --token T]", args, stderr, trapFlags,
		func(cfg Config, log *slog.Logger) startStopper { return newTrapNode(cfg, log) })
}

// trapNode is a trap-only node: SMTP listener -> spool -> forwarder, plus
// an HTTP listener for /metrics and the health checks.
type trapNode struct {
	cfg Config
	log *slog.Logger
	reg *prometheus.Registry

	spool   *forward.Spool
	fwd     *forward.Forwarder // nil without --forward
	trap    *trap.Server
	http    *http.Server
	httpL   net.Listener
	ready   atomic.Bool
	started []component
	cl      *clusterParts // [cluster]: the spool drains into the log (cmd_cluster.go)
}

func newTrapNode(cfg Config, log *slog.Logger) *trapNode {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return &trapNode{cfg: cfg, log: log, reg: reg}
}

// spoolSink spools without forwarding (a trap node without --forward).
type spoolSink struct{ sp *forward.Spool }

func (s spoolSink) Ingest(ctx context.Context, ev *store.Event, raw []byte) error {
	return s.sp.Put(ctx, ev, raw)
}

func (n *trapNode) Start(ctx context.Context) error {
	cfg := n.cfg
	var sink trap.Sink
	comps := []component{
		{"spool", func(ctx context.Context) error {
			var err error
			n.spool, err = forward.OpenSpool(filepath.Join(cfg.Data, "spool"),
				forward.SpoolOptions{MaxEvents: cfg.Forward.SpoolMaxEvents, RawMax: cfg.Forward.RawMax}, n.log)
			sink = spoolSink{n.spool}
			return err
		}, func(ctx context.Context) error { return n.spool.Close() }},
		{"forward", func(ctx context.Context) error {
			if cfg.Cluster.enabled() {
				var err error
				sink, err = n.startClusterSender(n.spool)
				return err
			}
			if cfg.Forward.URL == "" {
				n.log.Warn("no --forward URL: evidence is spooled here and not sent anywhere", "spool", filepath.Join(cfg.Data, "spool"))
				return nil
			}
			fc, err := cfg.forwardConfig()
			if err != nil {
				return usageError("%v", err)
			}
			if n.fwd, err = forward.New(fc, n.spool, n.log, n.reg); err != nil {
				return usageError("%v", err)
			}
			sink = n.fwd
			n.fwd.Start()
			return nil
		}, func(ctx context.Context) error {
			if n.cl != nil {
				return n.cl.stop(ctx)
			}
			if n.fwd == nil {
				return nil
			}
			return n.fwd.Stop(ctx)
		}},
		{"trap", func(ctx context.Context) error {
			tc, err := cfg.trapConfig()
			if err != nil {
				return err
			}
			n.trap = trap.New(tc, sink, n.log, n.reg)
			return n.trap.Start(cfg.SMTP)
		}, func(ctx context.Context) error { return n.trap.Stop(ctx) }},
		{"http", n.startHTTP, func(ctx context.Context) error {
			if err := n.http.Shutdown(ctx); err != nil {
				n.http.Close()
				return err
			}
			return nil
		}},
	}
	for _, c := range comps {
		if err := c.start(ctx); err != nil {
			return fmt.Errorf("start %s: %w", c.name, err)
		}
		n.started = append(n.started, c)
	}
	n.ready.Store(true)
	fwd := "none"
	if n.fwd != nil {
		if u, err := forward.EvidenceURL(cfg.Forward.URL); err == nil {
			fwd = u.Redacted()
		}
	}
	n.log.Info("blowback running", "mode", "trap", "smtp", n.trap.Addr().String(), "http", n.httpL.Addr().String(),
		"forward", fwd, "node", cfg.Trap.Node, "backlog", n.spool.Len(), "data", cfg.Data)
	return nil
}

func (n *trapNode) startHTTP(ctx context.Context) error {
	l, err := net.Listen("tcp", n.cfg.HTTP)
	if err != nil {
		return fmt.Errorf("listen %s: %w", n.cfg.HTTP, err)
	}
	n.httpL = l
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(n.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	// Ready means accepting mail: a central node that is away does not make
	// a trap unready (the spool holds the evidence).
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if !n.ready.Load() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	n.http = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: 120 * time.Second, MaxHeaderBytes: 64 << 10,
		ErrorLog: slog.NewLogLogger(n.log.Handler(), slog.LevelDebug)}
	go func() {
		if err := n.http.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.log.Error("http server stopped", "err", err)
		}
	}()
	return nil
}

// Stop stops in reverse order: HTTP, the SMTP listener (no new evidence),
// the forwarder (a batch in flight may finish), the spool.
func (n *trapNode) Stop() error {
	n.ready.Store(false)
	var errs []error
	for i := len(n.started) - 1; i >= 0; i-- {
		c := n.started[i]
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := c.stop(ctx); err != nil && !errors.Is(err, context.Canceled) {
			n.log.Warn("stop", "component", c.name, "err", err)
			errs = append(errs, fmt.Errorf("stop %s: %w", c.name, err))
		}
		cancel()
	}
	n.started = nil
	n.log.Info("stopped")
	return errors.Join(errs...)
}

var _ trap.Sink = (*forward.Forwarder)(nil)
var _ trap.Sink = spoolSink{}
