// Package cluster makes a replicated log the source of truth: evidence
// events and manual actions are messages on one NATS JetStream stream
// (replicated, R3), published with their id as Nats-Msg-Id so the stream
// drops duplicates; every central replica is a durable consumer that applies
// the stream in order to its own badger store (its materialised view) and
// publishes zones, exports and pages from it.
//
// One stream, several subjects, so that there is one total order:
//
//	<prefix>.event.<node>   an evidence event (JSON eventMsg), Msg-Id "ev-<event id>"
//	<prefix>.action         a manual list/delist (JSON store.Action), Msg-Id "act-<action id>"
//	<prefix>.admin          an admin change that is not a listing action: an allowlist
//	                        change or a node revocation (JSON adminMsg), Msg-Id "adm-<id>"
//	<prefix>.tick           the policy clock: advances time while no evidence arrives,
//	                        Msg-Id "tick-<period>" (one per period whichever replica sends it)
//
// Determinism (STYLE.md habit 18): a replica's clock is the largest stream
// timestamp it applied, in whole seconds; manual actions take that time; a
// batch is applied, the units it touched are re-scored at the batch's clock,
// units whose decision is due for review are swept at the same clock, and a
// snapshot is published with serial = stream's serial base + last applied
// stream sequence. Scoring decisions hold until their Review time (scoring's
// TestPropertyReview), so after the same prefix every replica holds
// scoring.Decide(unit, evidence, actions, clock) for every unit, whatever its
// batch boundaries were: the same zone, serial and exports.
package cluster

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/blowback-dnsbl/blowback/listing"
	"github.com/blowback-dnsbl/blowback/store"
)

// Errors.
var (
	ErrConfig  = errors.New("cluster: bad configuration")
	ErrNoBase  = errors.New("cluster: stream has no serial base (create it with `blowback cluster init`)")
	ErrStopped = errors.New("cluster: stopped")
)

// metaSerialBase is the stream metadata key holding the zone serial base.
const metaSerialBase = "blowback_serial_base"

// Config configures a connection to the cluster.
type Config struct {
	URLs []string // nats://host:4222, ...
	// Stream is the stream name (default BLOWBACK); Subject its subject
	// prefix (default blowback).
	Stream  string
	Subject string
	// Replicas of the stream (default 3); MaxAge its retention (0: forever);
	// Duplicates the deduplication window (default 10 minutes).
	Replicas   int
	MaxAge     time.Duration
	Duplicates time.Duration
	// Name is this client's name in the servers' monitoring.
	Name string
	// Credentials: a .creds file, or user/password, or a token; TLS for
	// tls:// URLs or servers that require it.
	CredsFile string
	User      string
	Password  string
	Token     string
	TLS       *tls.Config
	// Timeout bounds one publish or fetch round trip; default 5s.
	Timeout time.Duration
}

func (c *Config) defaults() {
	if c.Stream == "" {
		c.Stream = "BLOWBACK"
	}
	if c.Subject == "" {
		c.Subject = "blowback"
	}
	if c.Replicas == 0 {
		c.Replicas = 3
	}
	if c.Duplicates == 0 {
		c.Duplicates = 10 * time.Minute
	}
	if c.Timeout == 0 {
		c.Timeout = 5 * time.Second
	}
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	if len(c.URLs) == 0 {
		return fmt.Errorf("%w: no NATS URLs", ErrConfig)
	}
	if c.Replicas < 0 || c.Replicas > 5 {
		return fmt.Errorf("%w: replicas must be 1 to 5", ErrConfig)
	}
	if strings.ContainsAny(c.Subject, " *>\t") || strings.HasSuffix(c.Subject, ".") {
		return fmt.Errorf("%w: subject prefix %q", ErrConfig, c.Subject)
	}
	return nil
}

// Conn is a connection to the cluster's JetStream.
type Conn struct {
	cfg Config
	nc  *nats.Conn
	js  jetstream.JetStream
	log *slog.Logger
}

// Connect connects to the cluster. It returns at once even when no server
// answers yet (the connection keeps retrying in the background): a trap
// keeps accepting mail into its spool meanwhile.
func Connect(cfg Config, log *slog.Logger) (*Conn, error) {
	cfg.defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("pkg", "cluster")
	opts := []nats.Option{
		nats.Name(cfg.Name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.ReconnectJitter(100*time.Millisecond, time.Second),
		nats.RetryOnFailedConnect(true),
		nats.Timeout(cfg.Timeout),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			log.Warn("disconnected from the cluster", "err", err)
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) { log.Info("reconnected to the cluster", "server", nc.ConnectedUrlRedacted()) }),
	}
	switch {
	case cfg.CredsFile != "":
		opts = append(opts, nats.UserCredentials(cfg.CredsFile))
	case cfg.User != "":
		opts = append(opts, nats.UserInfo(cfg.User, cfg.Password))
	case cfg.Token != "":
		opts = append(opts, nats.Token(cfg.Token))
	}
	if cfg.TLS != nil {
		opts = append(opts, nats.Secure(cfg.TLS))
	}
	nc, err := nats.Connect(strings.Join(cfg.URLs, ","), opts...)
	if err != nil {
		return nil, fmt.Errorf("cluster: connect: %w", err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("cluster: jetstream: %w", err)
	}
	return &Conn{cfg: cfg, nc: nc, js: js, log: log}, nil
}

// Close closes the connection.
func (c *Conn) Close() { c.nc.Close() }

// Config returns the configuration with defaults applied.
func (c *Conn) Config() Config { return c.cfg }

func (c *Conn) streamConfig(base uint32) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        c.cfg.Stream,
		Description: "blowback evidence and actions (the source of truth; replicas apply it in order)",
		Subjects:    []string{c.cfg.Subject + ".>"},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    c.cfg.Replicas,
		MaxAge:      c.cfg.MaxAge,
		Duplicates:  c.cfg.Duplicates,
		Discard:     jetstream.DiscardOld,
		AllowDirect: true,
		Metadata:    map[string]string{metaSerialBase: strconv.FormatUint(uint64(base), 10)},
	}
}

// Init creates the stream, or updates its settings keeping its serial
// base. base is the first zone serial (e.g. the single node's last serial
// when a list moves to a cluster, so that serials keep increasing); 0 means
// the current time. It returns the stream's serial base.
func (c *Conn) Init(ctx context.Context, base uint32) (uint32, error) {
	if s, err := c.js.Stream(ctx, c.cfg.Stream); err == nil {
		if b, err := serialBase(s.CachedInfo().Config.Metadata); err == nil {
			base = b
		}
	} else if !errors.Is(err, jetstream.ErrStreamNotFound) {
		return 0, fmt.Errorf("cluster: stream %s: %w", c.cfg.Stream, err)
	}
	if base == 0 {
		base = uint32(time.Now().Unix())
	}
	if _, err := c.js.CreateOrUpdateStream(ctx, c.streamConfig(base)); err != nil {
		return 0, fmt.Errorf("cluster: create stream %s: %w", c.cfg.Stream, err)
	}
	return base, nil
}

// SerialBase reads the stream's serial base.
func (c *Conn) SerialBase(ctx context.Context) (uint32, error) {
	s, err := c.js.Stream(ctx, c.cfg.Stream)
	if err != nil {
		return 0, fmt.Errorf("cluster: stream %s: %w", c.cfg.Stream, err)
	}
	return serialBase(s.CachedInfo().Config.Metadata)
}

func serialBase(md map[string]string) (uint32, error) {
	v, ok := md[metaSerialBase]
	if !ok {
		return 0, ErrNoBase
	}
	b, err := strconv.ParseUint(v, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("%w: %v", ErrNoBase, err)
	}
	return uint32(b), nil
}

// Subjects.
func (c *Conn) eventSubject(node string) string { return c.cfg.Subject + ".event." + token(node) }
func (c *Conn) actionSubject() string           { return c.cfg.Subject + ".action" }
func (c *Conn) tickSubject() string             { return c.cfg.Subject + ".tick" }
func (c *Conn) adminSubject() string            { return c.cfg.Subject + ".admin" }

// token makes s usable as one subject token.
func token(s string) string {
	if s == "" {
		return "_"
	}
	b := []byte(s)
	for i, c := range b {
		if c <= ' ' || c == '.' || c == '*' || c == '>' || c >= 0x7f {
			b[i] = '_'
		}
	}
	return string(b)
}

// eventMsg is the body of an event message.
type eventMsg struct {
	Event json.RawMessage `json:"event"`
	Raw   []byte          `json:"raw,omitempty"`
}

// actionMsg is the body of an action message.
type actionMsg struct {
	ID     string `json:"id"`
	Action store.Action
}

// adminMsg is the body of an admin message: one of its parts is set.
type adminMsg struct {
	ID     string               `json:"id"`
	Allow  *listing.AllowChange `json:"allow,omitempty"`
	Revoke *Revocation          `json:"revoke,omitempty"`
}

// Revocation is a trap node's token revocation as the log carries it: the
// SHA-256 of the tokens the receiving replica revoked; every replica
// revokes those and the node's tokens in its own configuration.
type Revocation struct {
	Node   string   `json:"node"`
	SHA256 []string `json:"sha256"`
	Reason string   `json:"reason,omitempty"`
}

func eventMsgID(id store.EventID) string { return "ev-" + id.String() }

// PublishEvent appends one event and returns after the cluster's ack.
func (c *Conn) PublishEvent(ctx context.Context, ev *store.Event, raw []byte) (uint64, error) {
	if err := ev.Validate(); err != nil {
		return 0, err
	}
	js, err := json.Marshal(ev)
	if err != nil {
		return 0, err
	}
	body, err := json.Marshal(eventMsg{Event: js, Raw: raw})
	if err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	ack, err := c.js.Publish(ctx, c.eventSubject(ev.Node), body, jetstream.WithMsgID(eventMsgID(ev.ID)))
	if err != nil {
		return 0, fmt.Errorf("cluster: publish event: %w", err)
	}
	return ack.Sequence, nil
}

// PublishAction appends a manual action under a fresh id and returns the
// stream sequence after the cluster's ack. A retry after a lost ack reuses
// the id, so the stream keeps it once.
func (c *Conn) PublishAction(ctx context.Context, a store.Action) (uint64, error) {
	id := store.NewEventID().String()
	body, err := json.Marshal(actionMsg{ID: id, Action: a})
	if err != nil {
		return 0, err
	}
	seq, err := c.publishRetry(ctx, c.actionSubject(), body, "act-"+id)
	if err != nil {
		return 0, fmt.Errorf("cluster: publish action: %w", err)
	}
	return seq, nil
}

// publishRetry publishes body under msgID, up to three tries of
// cfg.Timeout each; the stream dedupes on msgID, so a retry after a lost
// ack is kept once. It returns the stream sequence, or the last error.
func (c *Conn) publishRetry(ctx context.Context, subj string, body []byte, msgID string) (uint64, error) {
	var last error
	for attempt := 0; attempt < 3; attempt++ {
		actx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
		ack, err := c.js.Publish(actx, subj, body, jetstream.WithMsgID(msgID))
		cancel()
		if err == nil {
			return ack.Sequence, nil
		}
		last = err
		if ctx.Err() != nil {
			break
		}
	}
	return 0, last
}

// PublishAdmin appends an admin message under its id (retried with the
// same id, so the stream keeps it once) and returns its stream sequence.
func (c *Conn) PublishAdmin(ctx context.Context, m adminMsg) (uint64, error) {
	if m.ID == "" {
		m.ID = store.NewEventID().String()
	}
	body, err := json.Marshal(m)
	if err != nil {
		return 0, err
	}
	seq, err := c.publishRetry(ctx, c.adminSubject(), body, "adm-"+m.ID)
	if err != nil {
		return 0, fmt.Errorf("cluster: publish admin change: %w", err)
	}
	return seq, nil
}

// PublishAllow appends an allowlist change (offline `blowback allow` on a
// cluster member).
func (c *Conn) PublishAllow(ctx context.Context, a listing.AllowChange) (uint64, error) {
	return c.PublishAdmin(ctx, adminMsg{ID: a.ID, Allow: &a})
}

// PublishTick appends a clock tick for the period holding now; replicas
// that tick in the same period make one message (deduplicated by id).
func (c *Conn) PublishTick(ctx context.Context, now time.Time, period time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	n := now.UnixNano() / int64(period)
	_, err := c.js.Publish(ctx, c.tickSubject(), nil, jetstream.WithMsgID("tick-"+strconv.FormatInt(n, 10)))
	return err
}

// StreamLastSeq returns the stream's last sequence.
func (c *Conn) StreamLastSeq(ctx context.Context) (uint64, error) {
	s, err := c.js.Stream(ctx, c.cfg.Stream)
	if err != nil {
		return 0, err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return 0, err
	}
	return info.State.LastSeq, nil
}

// Status describes the stream and its consumers (`blowback cluster status`).
type Status struct {
	Stream                      string
	Messages, FirstSeq, LastSeq uint64
	Bytes                       uint64
	SerialBase                  uint32
	Leader                      string
	Peers                       []string
	Consumers                   []ConsumerStatus
}

// ConsumerStatus is one replica's durable consumer.
type ConsumerStatus struct {
	Name     string
	AckFloor uint64 // last stream sequence the replica acknowledged (applied)
}

// Status reads the stream's state.
func (c *Conn) Status(ctx context.Context) (Status, error) {
	s, err := c.js.Stream(ctx, c.cfg.Stream)
	if err != nil {
		return Status{}, fmt.Errorf("cluster: stream %s: %w", c.cfg.Stream, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		return Status{}, err
	}
	st := Status{Stream: info.Config.Name, Messages: info.State.Msgs, FirstSeq: info.State.FirstSeq, LastSeq: info.State.LastSeq,
		Bytes: info.State.Bytes}
	st.SerialBase, _ = serialBase(info.Config.Metadata)
	if ci := info.Cluster; ci != nil {
		st.Leader = ci.Leader
		for _, p := range ci.Replicas {
			st.Peers = append(st.Peers, fmt.Sprintf("%s(current=%v)", p.Name, p.Current))
		}
	}
	l := s.ListConsumers(ctx)
	for ci := range l.Info() {
		st.Consumers = append(st.Consumers, ConsumerStatus{Name: ci.Name, AckFloor: ci.AckFloor.Stream})
	}
	return st, l.Err()
}
