package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/blowback-dnsbl/blowback/cluster"
	"github.com/blowback-dnsbl/blowback/forward"
	"github.com/blowback-dnsbl/blowback/intake"
	"github.com/blowback-dnsbl/blowback/listing"
	"github.com/blowback-dnsbl/blowback/store"
	"github.com/blowback-dnsbl/blowback/trap"
)

// ClusterConfig is the [cluster] table: with urls set, `blowback run` is a
// central replica of the replicated log (NATS JetStream) and `blowback
// trap` publishes its evidence to it (see docs/scaling.md). Without it
// nothing here runs: the embedded single node is unchanged.
type ClusterConfig struct {
	URLs    []string `toml:"urls"`    // nats://host:4222 of the cluster's servers
	Stream  string   `toml:"stream"`  // default BLOWBACK
	Subject string   `toml:"subject"` // subject prefix, default blowback
	// Replicas of the stream (default 3), its retention (MaxAge, default
	// forever) and its deduplication window (default 10m); used by
	// `blowback cluster init`.
	Replicas   int      `toml:"replicas"`
	MaxAge     Duration `toml:"max_age"`
	Duplicates Duration `toml:"duplicates"`
	// Name is this replica's durable consumer (unique per replica; default
	// the host name).
	Name string `toml:"name"`
	// Tick is how often replicas append a clock tick (default 1m).
	Tick Duration `toml:"tick"`
	// Credentials and TLS toward the NATS servers.
	CredsFile string `toml:"creds_file"`
	User      string `toml:"user"`
	Password  string `toml:"password"`
	Token     string `toml:"token"`
	CAFile    string `toml:"ca_file"`
	CertFile  string `toml:"cert_file"`
	KeyFile   string `toml:"key_file"`
}

func (c *ClusterConfig) enabled() bool { return len(c.URLs) > 0 }

func (c *ClusterConfig) validate() error {
	if !c.enabled() {
		return nil
	}
	cc, err := c.clientConfig("")
	if err != nil {
		return err
	}
	if err := cc.Validate(); err != nil {
		return err
	}
	if (c.CertFile == "") != (c.KeyFile == "") {
		return errors.New("cluster: cert_file and key_file go together")
	}
	if c.Tick < 0 || c.MaxAge < 0 || c.Duplicates < 0 {
		return errors.New("cluster: tick, max_age and duplicates must not be negative")
	}
	return nil
}

func (c *ClusterConfig) clientConfig(name string) (cluster.Config, error) {
	cc := cluster.Config{URLs: c.URLs, Stream: c.Stream, Subject: c.Subject, Replicas: c.Replicas,
		MaxAge: time.Duration(c.MaxAge), Duplicates: time.Duration(c.Duplicates), Name: name,
		CredsFile: c.CredsFile, User: c.User, Password: c.Password, Token: c.Token}
	if c.CAFile != "" || c.CertFile != "" {
		tc, err := forward.TLSConfig(c.CAFile, c.CertFile, c.KeyFile, "")
		if err != nil {
			return cc, fmt.Errorf("cluster: %v", err)
		}
		cc.TLS = tc
	}
	return cc, nil
}

func (c *ClusterConfig) replicaName() string {
	if c.Name != "" {
		return c.Name
	}
	h, _ := os.Hostname()
	return strings.NewReplacer(".", "_", " ", "_").Replace(h)
}

// clusterParts is what a node runs for the cluster.
type clusterParts struct {
	conn    *cluster.Conn
	replica *cluster.Replica
	sender  *cluster.Sender
}

func (p *clusterParts) stop(ctx context.Context) error {
	var err error
	if p.replica != nil {
		err = p.replica.Stop(ctx)
	}
	if p.sender != nil {
		err = errors.Join(err, p.sender.Stop(ctx))
	}
	p.conn.Close()
	return err
}

// startReplica is `run`'s listing component on a cluster: the engine is
// driven by the replica applying the log (cluster.Replica), and its writes
// go through the log.
func (n *node) startReplica(ctx context.Context, lc listing.Config) error {
	cc, err := n.cfg.Cluster.clientConfig("blowback-replica-" + n.cfg.Cluster.replicaName())
	if err != nil {
		return usageError("%v", err)
	}
	conn, err := cluster.Connect(cc, n.log)
	if err != nil {
		return err
	}
	rep, err := cluster.NewReplica(cluster.ReplicaConfig{Name: n.cfg.Cluster.replicaName(), TickEvery: time.Duration(n.cfg.Cluster.Tick)},
		conn, n.st, n.log, n.reg)
	if err != nil {
		conn.Close()
		return err
	}
	n.cl = &clusterParts{conn: conn, replica: rep}
	n.eng = listing.New(rep.ListingHooks(lc), n.st, n.cur, n.log, n.reg)
	rep.Attach(n.eng)
	rep.SetRevoker(revokeApplier{n.st})
	n.subscribeZones()
	return rep.Start(ctx)
}

// revokeApplier applies node revocations from the log to the replica's
// store, where its HTTP intake reads them (intake.ApplyRevocation).
type revokeApplier struct{ st *store.Store }

func (a revokeApplier) ApplyRevocation(ctx context.Context, id, node string, sha256 []string, reason string, t time.Time) error {
	return intake.ApplyRevocation(ctx, a.st, id, node, sha256, reason, t)
}

// errReplicaStore: a write command found a cluster replica's store and no
// [cluster] table to reach the log with.
var errReplicaStore = errors.New("the data directory belongs to a cluster replica: changes go through the log; " +
	"give the config with its [cluster] table, or use a running replica's API (--server)")

// replicaHooks makes an offline command on a stopped replica's data
// directory decide as the replica did: with the log's clock and serial at
// the position the replica persisted, never the host clock. A write there
// is refused (it would bypass the log).
func (a *access) replicaHooks(st *store.Store, lc listing.Config) (listing.Config, error) {
	pos, ok, err := cluster.StoredPosition(st)
	if err != nil || !ok {
		return lc, err
	}
	if a.write {
		return lc, errReplicaStore
	}
	lc.Now = func() time.Time { return pos.Clock }
	lc.Serial = pos.Serial
	return lc, nil
}

// stopReplica stops the replica (the engine was never started).
func (n *node) stopReplica(ctx context.Context) error { return n.cl.stop(ctx) }

// startClusterSender is `trap`'s sender on a cluster: the spool drains into
// the stream instead of to a central node's HTTP API.
func (n *trapNode) startClusterSender(spool *forward.Spool) (trap.Sink, error) {
	cc, err := n.cfg.Cluster.clientConfig("blowback-trap-" + n.cfg.Trap.Node)
	if err != nil {
		return nil, usageError("%v", err)
	}
	conn, err := cluster.Connect(cc, n.log)
	if err != nil {
		return nil, err
	}
	if n.cfg.Forward.URL != "" {
		n.log.Warn("[cluster] is set: evidence goes to the cluster, not to the --forward URL", "forward", n.cfg.Forward.URL)
	}
	node := n.cfg.Trap.Node
	if node == "" {
		node, _ = os.Hostname()
	}
	s := cluster.NewSender(cluster.SenderConfig{Node: node}, conn, spool, n.log, n.reg)
	n.cl = &clusterParts{conn: conn, sender: s}
	s.Start()
	return s, nil
}

// cmdCluster is `blowback cluster init|status`.
func cmdCluster(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || (args[0] != "init" && args[0] != "status") {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
			fmt.Fprintln(stderr, "usage: blowback cluster init|status --config FILE [--serial-base N]")
			return nil
		}
		return usageError("usage: blowback cluster init|status --config FILE [--serial-base N]")
	}
	sub := args[0]
	fs := newFlagSet("cluster "+sub, "--config FILE", stderr)
	cfgPath := fs.String("config", "", "TOML config `FILE` with a [cluster] table")
	base := fs.Uint("serial-base", 0, "init: first zone serial (default: now; give the single node's serial when moving to a cluster)")
	if _, err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		return usageError("%v", err)
	}
	if !cfg.Cluster.enabled() {
		return usageError("no [cluster] urls in the config")
	}
	conn, ctx, done, err := clusterCLI(cfg, 60*time.Second)
	if err != nil {
		return err
	}
	defer done()
	if sub == "init" {
		var b uint32
		var err error
		// The cluster may still be electing its JetStream leader: retry.
		for ctx.Err() == nil {
			actx, acancel := context.WithTimeout(ctx, 5*time.Second)
			b, err = conn.Init(actx, uint32(*base))
			acancel()
			if err == nil {
				break
			}
			time.Sleep(500 * time.Millisecond)
		}
		if err != nil {
			return err
		}
		c := conn.Config()
		fmt.Fprintf(stdout, "stream %s (subjects %s.>, %d replicas) ready; serial base %d\n", c.Stream, c.Subject, c.Replicas, b)
		return nil
	}
	sctx, scancel := context.WithTimeout(ctx, 5*time.Second)
	defer scancel()
	st, err := conn.Status(sctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "stream %s: %d messages, first %d, last %d, %d bytes, serial base %d, leader %s, replicas %s\n",
		st.Stream, st.Messages, st.FirstSeq, st.LastSeq, st.Bytes, st.SerialBase, st.Leader, strings.Join(st.Peers, " "))
	for _, c := range st.Consumers {
		fmt.Fprintf(stdout, "consumer %s: applied up to %d, %d behind\n", c.Name, c.AckFloor, st.LastSeq-min(st.LastSeq, c.AckFloor))
	}
	return nil
}

// clusterCLI connects the command line to cfg's cluster (a usage error
// for a bad [cluster] table) with a context that ends after d; done closes
// both.
func clusterCLI(cfg Config, d time.Duration) (*cluster.Conn, context.Context, func(), error) {
	cc, err := cfg.Cluster.clientConfig("blowback-cli")
	if err != nil {
		return nil, nil, nil, usageError("%v", err)
	}
	conn, err := cluster.Connect(cc, slog.New(slog.DiscardHandler))
	if err != nil {
		return nil, nil, nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	return conn, ctx, func() { cancel(); conn.Close() }, nil
}

// clusterAction appends a manual action to the log (offline `blowback
// list/delist` on a cluster member: never written to the local store).
func clusterAction(cfg Config, a store.Action, stdout io.Writer) error {
	conn, ctx, done, err := clusterCLI(cfg, 30*time.Second)
	if err != nil {
		return err
	}
	defer done()
	seq, err := conn.PublishAction(ctx, a)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: %s appended to the log (sequence %d); every replica applies it\n", a.Prefix.Addr(), a.Op, seq)
	return nil
}
