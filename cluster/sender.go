package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/blowback-dnsbl/blowback/forward"
	"github.com/blowback-dnsbl/blowback/internal/lifecycle"
	"github.com/blowback-dnsbl/blowback/store"
)

// SenderConfig configures a Sender.
type SenderConfig struct {
	Node string // this trap node (the subject's last token)
	// Batch bounds the events in flight at once (default 500).
	Batch int
	// BackoffMin and BackoffMax bound the wait after a failed batch
	// (defaults 250ms and 30s, with jitter).
	BackoffMin, BackoffMax time.Duration
	// Poll is how often an idle sender looks at the spool (default 5s).
	Poll time.Duration
}

// Sender drains a trap's spool into the stream. It implements trap.Sink:
// Ingest spools the event durably (fsync) and returns, so the trap answers
// 250 whether or not the cluster is reachable; the sender publishes spooled
// events with Nats-Msg-Id "ev-<event id>" and removes them from the spool
// only after the stream acknowledged them (stored on a quorum of its
// replicas). A kill -9 between the two re-sends them: the stream drops the
// copies within its deduplication window, replicas' stores beyond it.
type Sender struct {
	cfg     SenderConfig
	conn    *Conn
	spool   *forward.Spool
	log     *slog.Logger
	metrics *senderMetrics

	loop *lifecycle.Loop // the sending goroutine
}

// NewSender returns a sender from sp to the cluster. reg may be nil.
func NewSender(cfg SenderConfig, conn *Conn, sp *forward.Spool, log *slog.Logger, reg registerer) *Sender {
	if cfg.Batch <= 0 {
		cfg.Batch = 500
	}
	if cfg.BackoffMin <= 0 {
		cfg.BackoffMin = 250 * time.Millisecond
	}
	if cfg.BackoffMax < cfg.BackoffMin {
		cfg.BackoffMax = max(30*time.Second, cfg.BackoffMin)
	}
	if cfg.Poll <= 0 {
		cfg.Poll = 5 * time.Second
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Sender{cfg: cfg, conn: conn, spool: sp, log: log.With("pkg", "cluster"),
		metrics: newSenderMetrics(reg, sp), loop: lifecycle.NewLoop()}
}

// Ingest spools ev durably (trap.Sink).
func (s *Sender) Ingest(ctx context.Context, ev *store.Event, raw []byte) error {
	err := s.spool.Put(ctx, ev, raw)
	if err != nil {
		s.metrics.spoolErrors.Inc()
	}
	return err
}

// Start starts the sending loop.
func (s *Sender) Start() {
	s.log.Info("sending evidence to the cluster", "stream", s.conn.cfg.Stream, "backlog", s.spool.Len())
	go s.run()
}

// Stop ends the loop; what is not acknowledged stays spooled.
func (s *Sender) Stop(ctx context.Context) error { return s.loop.Stop(ctx) }

// Drain waits until the spool is empty or ctx ends (tests, benchmarks).
func (s *Sender) Drain(ctx context.Context) error { return s.spool.WaitEmpty(ctx) }

func (s *Sender) run() {
	defer s.loop.Exit()
	var after []byte
	fails := 0
	for {
		select {
		case <-s.loop.Stopping():
			return
		default:
		}
		items, err := s.spool.Peek(after, s.cfg.Batch, 8<<20)
		if errors.Is(err, forward.ErrClosed) {
			return
		}
		if err == nil && len(items) == 0 {
			if after != nil {
				after = nil // events committed out of order may sit behind the cursor
				continue
			}
			s.spool.Wait(s.loop.Stopping(), s.cfg.Poll, true)
			continue
		}
		if err == nil {
			err = s.send(items)
		}
		if err != nil {
			fails++
			wait := forward.Backoff(fails, s.cfg.BackoffMin, s.cfg.BackoffMax)
			s.metrics.failed.Inc()
			s.log.Warn("sending to the cluster failed; evidence stays spooled", "err", err, "attempt", fails,
				"retry_in", wait.Round(time.Millisecond), "backlog", s.spool.Len())
			s.spool.Wait(s.loop.Stopping(), wait, false)
			continue
		}
		if fails > 0 {
			s.log.Info("cluster reachable again", "after_attempts", fails, "backlog", s.spool.Len())
		}
		fails = 0
		after = items[len(items)-1].Key
	}
}

// send publishes items asynchronously, waits for every ack, then removes
// them from the spool.
func (s *Sender) send(items []forward.Item) (err error) {
	defer func() {
		if r := recover(); r != nil {
			s.metrics.panics.Inc()
			err = fmt.Errorf("cluster: panic sending: %v", r)
		}
	}()
	subj := s.conn.eventSubject(s.cfg.Node)
	futs := make([]jetstream.PubAckFuture, 0, len(items))
	for _, it := range items {
		body, err := json.Marshal(eventMsg{Event: it.Event, Raw: it.Raw})
		if err != nil {
			return err
		}
		f, err := s.conn.js.PublishMsgAsync(&nats.Msg{Subject: subj, Data: body}, jetstream.WithMsgID(eventMsgID(it.ID)))
		if err != nil {
			return fmt.Errorf("cluster: publish: %w", err)
		}
		futs = append(futs, f)
	}
	timeout := time.NewTimer(s.conn.cfg.Timeout + time.Duration(len(items))*time.Millisecond)
	defer timeout.Stop()
	dups := 0
	for _, f := range futs {
		select {
		case ack := <-f.Ok():
			if ack.Duplicate {
				dups++
			}
		case err := <-f.Err():
			return fmt.Errorf("cluster: publish: %w", err)
		case <-timeout.C:
			return errors.New("cluster: publish: no ack in time")
		case <-s.loop.Stopping():
			return ErrStopped
		}
	}
	if err := s.spool.Ack(items); err != nil {
		return err
	}
	s.metrics.sent.Add(float64(len(items) - dups))
	s.metrics.dups.Add(float64(dups))
	s.metrics.lastSuccess.SetToCurrentTime()
	return nil
}
