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
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/blowback-dnsbl/blowback/forward"
	"github.com/blowback-dnsbl/blowback/internal/lifecycle"
	"github.com/blowback-dnsbl/blowback/internal/runline"
	"github.com/blowback-dnsbl/blowback/store"
	"github.com/blowback-dnsbl/blowback/trap"
)

// trapFlags registers the flags of `blowback trap` and returns a function
// that loads the config file and applies the flags given.
func trapFlags(fs *flag.FlagSet) func() (Config, error) {
	set := sharedNodeFlags(fs, "data `DIR` (the spool lives in DIR/spool)", "HTTP listen `ADDR` (/metrics, /healthz, /readyz)")
	node := fs.String("node", "", "this trap node's `ID` (sent for information; the central node records its token's node)")
	fwd := fs.String("forward", "", "central node `URL` (https://central:8443) to forward evidence to")
	token := fs.String("token", "", "node `TOKEN` on the central node (prefer --token-file: ps shows arguments)")
	tokenFile := fs.String("token-file", "", "read the node token from `FILE`")
	caFile := fs.String("ca-file", "", "CA certificates (PEM `FILE`) that sign the central node's certificate")
	set["node"] = func(c *Config) { c.Trap.Node = *node }
	set["forward"] = func(c *Config) { c.Forward.URL = *fwd }
	set["token"] = func(c *Config) { c.Forward.Token, c.Forward.TokenFile = *token, "" }
	set["token-file"] = func(c *Config) { c.Forward.TokenFile, c.Forward.Token = *tokenFile, "" }
	set["ca-file"] = func(c *Config) { c.Forward.CAFile = *caFile }
	load := configLoader(fs, set)
	return func() (Config, error) {
		c, err := load()
		if err == nil && c.Forward.URL != "" && c.Forward.Token == "" && c.Forward.TokenFile == "" {
			err = usageError("--forward needs --token or --token-file")
		}
		return c, err
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

	life  *lifecycle.Group
	spool *forward.Spool
	fwd   *forward.Forwarder // nil without --forward
	sink  trap.Sink          // fwd, or the spool alone
	trap  smtpTrap
	http  *http.Server
	httpL net.Listener
	cl    *clusterParts // [cluster]: the spool drains into the log (cmd_cluster.go)
}

func newTrapNode(cfg Config, log *slog.Logger) *trapNode {
	return &trapNode{cfg: cfg, log: log, reg: newRegistry(), life: lifecycle.New(log)}
}

// spoolOptions are the trap node's spool options: [forward], with the
// per-unit and per-network caps' window from [store] unit_window (the
// central store's).
func (c *Config) spoolOptions(reg prometheus.Registerer) forward.SpoolOptions {
	return forward.SpoolOptions{MaxEvents: c.Forward.SpoolMaxEvents, RawMax: c.Forward.RawMax,
		UnitMaxEvents: c.Forward.SpoolUnitMaxEvents, UnitMaxRawBytes: int64(c.Forward.SpoolUnitMaxRawMB) << 20,
		NetMaxEvents: c.Forward.SpoolNetMaxEvents, NetMaxRawBytes: int64(c.Forward.SpoolNetMaxRawMB) << 20,
		UnitWindow: time.Duration(c.Store.UnitWindow), Metrics: reg}
}

// spoolSink spools without forwarding (a trap node without --forward).
type spoolSink struct{ sp *forward.Spool }

func (s spoolSink) Ingest(ctx context.Context, ev *store.Event, raw []byte) error {
	return s.sp.Put(ctx, ev, raw)
}

func (n *trapNode) Start(ctx context.Context) error {
	cfg := n.cfg
	comps := []component{
		{Name: "spool", Start: func(ctx context.Context) error {
			var err error
			n.spool, err = forward.OpenSpool(filepath.Join(cfg.Data, "spool"), cfg.spoolOptions(n.reg), n.log)
			n.sink = spoolSink{n.spool}
			return err
		}, Stop: func(ctx context.Context) error { return n.spool.Close() }},
		{Name: "forward", Start: func(ctx context.Context) error {
			if cfg.Cluster.enabled() {
				var err error
				n.sink, err = n.startClusterSender(n.spool)
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
			n.sink = n.fwd
			n.fwd.Start()
			return nil
		}, Stop: func(ctx context.Context) error {
			if n.cl != nil {
				return n.cl.stop(ctx)
			}
			if n.fwd == nil {
				return nil
			}
			return n.fwd.Stop(ctx)
		}},
		n.trap.component(cfg, n.life, n.log, n.reg, func() trap.Sink { return n.sink }),
		{Name: "http", Start: n.startHTTP, Stop: func(ctx context.Context) error {
			if err := n.http.Shutdown(ctx); err != nil {
				n.http.Close()
				return err
			}
			return nil
		}},
	}
	if err := n.life.Start(ctx, comps...); err != nil {
		return err
	}
	fwd := "none"
	if n.fwd != nil {
		if u, err := forward.EvidenceURL(cfg.Forward.URL); err == nil {
			fwd = u.Redacted()
		}
	}
	n.log.Info(runline.Msg, "mode", "trap", "smtp", n.trap.Addr().String(), "http", n.httpL.Addr().String(),
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
		if !n.life.Ready() {
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
			n.life.Fail("http", err)
		}
	}()
	return nil
}

// Stop stops in reverse order under one deadline: HTTP, the SMTP listener
// (no new evidence), the forwarder (a batch in flight may finish), the
// spool.
func (n *trapNode) Stop() error { return stopAll(n.life, n.log) }

var _ trap.Sink = (*forward.Forwarder)(nil)
var _ trap.Sink = spoolSink{}
