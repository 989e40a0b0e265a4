package dnsd

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"

	"github.com/blowback-dnsbl/blowback/internal/lifecycle"
)

// notifier sends NOTIFY (RFC 1996) to the secondaries when the zone
// changes: at most one round per NotifyInterval, each secondary retried
// with a growing interval until it answers (RFC 1996 §3.6) or the retries
// are spent. A round always announces the latest version.
type notifier struct {
	s   *Server
	t   *transfer
	ch  chan struct{}
	ctx context.Context
	end context.CancelFunc
	wg  sync.WaitGroup
}

func newNotifier(s *Server, t *transfer) *notifier {
	if t.cfg.NotifyInterval <= 0 {
		t.cfg.NotifyInterval = 5 * time.Second
	}
	if t.cfg.NotifyRetries <= 0 {
		t.cfg.NotifyRetries = 5
	}
	if t.cfg.NotifyTimeout <= 0 {
		t.cfg.NotifyTimeout = 2 * time.Second
	}
	ctx, end := context.WithCancel(context.Background())
	return &notifier{s: s, t: t, ch: make(chan struct{}, 1), ctx: ctx, end: end}
}

func (n *notifier) start() {
	n.wg.Add(1)
	go n.loop()
}

func (n *notifier) stop() {
	n.end()
	n.wg.Wait()
}

// kick asks for a round; kicks during a round or the pause after it merge.
func (n *notifier) kick() {
	select {
	case n.ch <- struct{}{}:
	default:
	}
}

func (n *notifier) loop() {
	defer n.wg.Done()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-n.ch:
		}
		n.round()
		select {
		case <-n.ctx.Done():
			return
		case <-time.After(n.t.cfg.NotifyInterval):
		}
	}
}

func (n *notifier) round() {
	defer lifecycle.Recover(n.t.log, n.t.m.panics, "panic sending NOTIFY")
	snap := n.t.cfg.Journal.Latest()
	if snap == nil {
		return
	}
	ax := n.s.apexOf(snap)
	soa := ax.soa(ax.zone, ax.soaTTL)
	var wg sync.WaitGroup
	for _, target := range n.t.cfg.Notify {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() {
				if r := recover(); r != nil {
					n.t.m.panics.Inc()
					n.t.log.Error("panic sending NOTIFY", "panic", r, "target", target)
				}
			}()
			result := n.send(target, soa)
			n.t.m.notify.WithLabelValues(result).Inc()
		}()
	}
	wg.Wait()
}

// send notifies one secondary; it returns the metric result.
func (n *notifier) send(target string, soa *dns.SOA) string {
	c := &dns.Client{Net: "udp", Timeout: n.t.cfg.NotifyTimeout}
	var key *TSIGKey
	if name := n.t.cfg.NotifyKey; name != "" {
		k := n.t.keys[strings.ToLower(dns.Fqdn(name))]
		key = &k
		c.TsigSecret = map[string]string{k.Name: k.Secret}
	}
	wait := time.Second
	for try := 1; ; try++ {
		// A fresh message each try: signing takes the TSIG stub off it.
		m := new(dns.Msg)
		m.SetNotify(soa.Hdr.Name)
		m.Answer = []dns.RR{soa} // RFC 1996 §3.7: the new SOA may be included
		if key != nil {
			m.SetTsig(key.Name, key.Algorithm, 300, time.Now().Unix())
		}
		r, _, err := c.ExchangeContext(n.ctx, m, target)
		if err == nil {
			if r.Rcode != dns.RcodeSuccess || r.Opcode != dns.OpcodeNotify {
				n.t.log.Warn("NOTIFY answered with an error", "target", target, "serial", soa.Serial, "rcode", dns.RcodeToString[r.Rcode])
				return "error"
			}
			n.t.log.Debug("NOTIFY acknowledged", "target", target, "serial", soa.Serial, "tries", try)
			return "ok"
		}
		if try >= n.t.cfg.NotifyRetries || n.ctx.Err() != nil {
			n.t.log.Warn("NOTIFY not acknowledged", "target", target, "serial", soa.Serial, "tries", try, "err", err)
			return "timeout"
		}
		select {
		case <-n.ctx.Done():
			return "timeout"
		case <-time.After(wait):
		}
		wait = min(2*wait, 30*time.Second)
	}
}
