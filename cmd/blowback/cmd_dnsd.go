package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/blowback-dnsbl/blowback/dnsd"
	"github.com/blowback-dnsbl/blowback/zones"
	"github.com/blowback-dnsbl/blowback/zones/signing"
)

// cmdDnsd is `blowback dnsd`: serve an rbldnsd-format file, a drop-in for
// rbldnsd on mirrors. The file is reloaded when it changes (and on SIGHUP);
// one that does not parse leaves the previous zone in service.
func cmdDnsd(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("dnsd", "--zone-file FILE --zone NAME [--dns ADDR]", stderr)
	def := defaultConfig()
	file := fs.String("zone-file", "", "rbldnsd-format zone `FILE` (combined, ip4set, ip6tset or ip6trie)")
	zone := fs.String("zone", "", "zone `NAME` the file is served as")
	dnsAddr := fs.String("dns", def.DNS, "DNS listen `ADDR` (UDP and TCP)")
	cfgPath := fs.String("config", "", "TOML config `FILE`; its [dns_server] table applies")
	typ := fs.String("type", "", "dataset `TYPE` of a file without $DATASET lines: ip4set, ip4tset, ip4trie, ip6tset, ip6trie (default: by each line's syntax)")
	lenient := fs.Bool("lenient", false, "skip bad lines as rbldnsd does, instead of refusing the file")
	metricsAddr := fs.String("metrics", "", "serve /metrics on `ADDR` (off when empty)")
	poll := fs.Duration("poll", 2*time.Second, "how often to check the file for changes (inotify makes most reloads immediate)")
	logLevel := fs.String("log-level", def.LogLevel, "log `LEVEL`: debug, info, warn, error")
	verifyKey := fs.String("verify-key", "", "serve only files signed with this public `KEY` (minisign key file or RW... string; FILE.minisig), never an older serial than the one served")
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	if *file == "" || *zone == "" {
		return usageError("--zone-file and --zone are required")
	}
	switch *typ {
	case "", "ip4set", "ip4tset", "ip4trie", "ip6tset", "ip6trie":
	default:
		return usageError("--type %q: want ip4set, ip4tset, ip4trie, ip6tset or ip6trie", *typ)
	}
	if *poll <= 0 {
		return usageError("--poll must be positive")
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		return usageError("%v", err)
	}
	log, err := newLogger(stderr, *logLevel, cfg.LogFormat)
	if err != nil {
		return err
	}
	// No heap profiling in a mirror (there is no pprof endpoint): saves the
	// profiler's bucket table and its samples.
	runtime.MemProfileRate = 0
	o := dnsdOptions{file: *file, zone: *zone, dns: *dnsAddr, metrics: *metricsAddr, typ: *typ, lenient: *lenient, poll: *poll}
	if *verifyKey != "" {
		pk, err := signing.LoadPublicKey(*verifyKey)
		if err != nil {
			return usageError("--verify-key: %v", err)
		}
		o.verify = &pk
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	hup := make(chan struct{}, 1)
	sig := make(chan os.Signal, 4)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sig)
	go func() {
		for s := range sig {
			if s == syscall.SIGHUP {
				select {
				case hup <- struct{}{}:
				default:
				}
				continue
			}
			log.Info("shutting down", "signal", s.String())
			cancel()
			s = <-sig
			log.Error("second signal, exiting now", "signal", s.String())
			os.Exit(1)
		}
	}()
	return serveDnsd(ctx, o, cfg, log, hup, nil)
}

type dnsdOptions struct {
	file, zone, dns, metrics, typ string
	lenient                       bool
	poll                          time.Duration
	verify                        *signing.PublicKey // refuse unsigned or older files
}

// serveDnsd loads the zone file, serves it and keeps it current until ctx
// ends. ready, when set, gets the DNS and metrics addresses once serving.
func serveDnsd(ctx context.Context, o dnsdOptions, cfg Config, log *slog.Logger, hup <-chan struct{}, ready func(dns, metrics net.Addr)) error {
	reg := prometheus.NewRegistry()
	// go_sched_latencies_seconds: the Go scheduler's share of DNS tail latency (docs/dns.md).
	reg.MustRegister(collectors.NewGoCollector(collectors.WithGoCollectorRuntimeMetrics(collectors.MetricsScheduler)),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	cur := &zones.Current{}
	zf := dnsd.NewZoneFile(o.file, o.zone, zones.RbldnsdOptions{Type: o.typ, Lenient: o.lenient}, cur, log, reg)
	zf.Poll = o.poll
	if o.verify != nil {
		zf.Check = signedCheck(*o.verify, o.file, o.zone, cur)
	}
	if err := zf.Load(); err != nil {
		return err
	}
	dc, err := cfg.dnsServerConfig()
	if err != nil {
		return err
	}
	srv := dnsd.New(dc, cur, log, reg)
	if err := srv.Start(o.dns); err != nil {
		return err
	}
	var hs *http.Server
	var maddr net.Addr
	if o.metrics != "" {
		l, err := net.Listen("tcp", o.metrics)
		if err != nil {
			srv.Stop(context.Background())
			return err
		}
		maddr = l.Addr()
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
		mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
		hs = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		go func() {
			if err := hs.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("metrics server", "err", err)
			}
		}()
		log.Info("metrics listening", "addr", maddr.String())
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		zf.Run(ctx, hup)
	}()
	if ready != nil {
		ready(srv.Addr(), maddr)
	}
	<-ctx.Done()
	<-done
	stopCtx, stop := context.WithTimeout(context.Background(), 10*time.Second)
	defer stop()
	if hs != nil {
		hs.Shutdown(stopCtx)
	}
	return srv.Stop(stopCtx)
}

// signedCheck is the zone file's check under --verify-key: the file must
// carry a good signature (zones/signing) for this zone, at a serial no
// older than the one being served.
func signedCheck(pk signing.PublicKey, path, zone string, cur *zones.Current) func(*os.File) error {
	return func(f *os.File) error {
		s, err := signing.Verify(pk, f, path)
		if err != nil {
			return err
		}
		if s.Zone != zones.CanonicalZone(zone) {
			return fmt.Errorf("%w: signed for zone %s, served as %s", signing.ErrMismatch, s.Zone, zones.CanonicalZone(zone))
		}
		if old := cur.Load(); old != nil && zones.SerialLess(s.Serial, old.Serial) {
			return fmt.Errorf("%w: serial %d is older than the %d served", signing.ErrMismatch, s.Serial, old.Serial)
		}
		return nil
	}
}
