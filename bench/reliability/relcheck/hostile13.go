package main

import (
	"bufio"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/miekg/dns"

	"github.com/blowback-dnsbl/blowback/internal/tally"
)

// Issue 13, item 4 and item 2 (store side): slow senders inside DATA, many
// addresses in one prefix, and one unit flooding the store.

// noCaps turns the store's per-unit and per-network caps off, for the scenarios whose
// invariant is "every 250 is stored one by one" (a good client sending
// for minutes from one address would pass the cap).
const noCaps = "\n[store]\nunit_max_events = 0\nunit_max_raw_mb = 0\nnet_max_events = 0\nnet_max_raw_mb = 0\n"

// proxyV1 is a PROXY v1 header from a trusted proxy (127.0.9.0/24 in
// baseConfig) naming src.
func proxyV1(src netip.Addr) []byte {
	fam, dst := "TCP4", "198.51.100.1"
	if src.Is6() {
		fam, dst = "TCP6", "2001:db8:ffff::25"
	}
	return []byte(fmt.Sprintf("PROXY %s %s %s 4444 25\r\n", fam, src, dst))
}

// firstLine connects from src (through a trusted proxy when proxy is not
// nil) and returns the connection and its first reply line.
func firstLine(src, addr string, proxy []byte) (net.Conn, string) {
	c, err := dialFrom(src, addr)
	if err != nil {
		return nil, "dial error"
	}
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	if proxy != nil {
		if _, err := c.Write(proxy); err != nil {
			c.Close()
			return nil, "write error"
		}
	}
	l, err := bufio.NewReader(c).ReadString('\n')
	if err != nil && l == "" {
		c.Close()
		return nil, "closed without a reply"
	}
	return c, code(strings.TrimRight(l, "\r\n"))
}

// hostile13Scenarios: slow DATA and per-prefix caps, on one node.
func (c *checker) hostile13Scenarios() {
	dir := filepath.Join(c.work, "hostile13-data")
	n := c.scenarioNode(row{Scenario: "SMTP slow DATA"}, "hostile13", dir, c.baseConfig(noCaps))
	if n == nil {
		return
	}
	defer n.stop()
	good := newGoodClient(n.smtp)
	goodRes := good.phase("127.0.51.1")
	go good.run()

	// Slow DATA: 50 addresses × 20 connections (each address in its own
	// /24, so only the per-address cap applies), each through MAIL, RCPT
	// and DATA, then one byte every 2 s. Before issue 13 all of them held
	// their slots until data_timeout (one deadline for the whole DATA).
	{
		const addrs, per = 50, 20
		var res tally.Counter
		var bad, longest atomic.Int64
		var wg sync.WaitGroup
		start := time.Now()
		for i := range addrs * per {
			src := fmt.Sprintf("127.10.%d.1", i/per)
			wg.Go(func() {
				o := hostile(src, n.smtp, 100*time.Second, func(c net.Conn) {
					if !writeStr(c, "EHLO slow.example.net\r\nMAIL FROM:<>\r\nRCPT TO:<slow@trap.blowback.test>\r\nDATA\r\n") {
						return
					}
					msg := bounce(msgID("slow"), "slow@trap.blowback.test", "")
					for j := range min(len(msg), 50) { // at most 100 s
						time.Sleep(2 * time.Second)
						if _, err := c.Write([]byte{msg[j]}); err != nil {
							return
						}
					}
				})
				res.Add(o.key())
				if !o.closed || o.firstErr != "421 4.4.2" {
					bad.Add(1)
				}
				for {
					m := longest.Load()
					if int64(o.dur) <= m || longest.CompareAndSwap(m, int64(o.dur)) {
						break
					}
				}
			})
		}
		// How many slots the attack still holds 40 s in (the rate check
		// cuts at data_rate_grace + data_rate_window = 20 s).
		time.Sleep(time.Until(start.Add(40 * time.Second)))
		m40, _ := n.metrics()
		held := m40["blowback_trap_connections_active"]
		wg.Wait()
		m, _ := n.metrics()
		goodOK := goodRes.Total() > 0 && goodRes.Get("250 2.0.0") == goodRes.Total()
		c.add(row{Scenario: "SMTP slow DATA",
			Load:   fmt.Sprintf("%d addresses × %d connections, DATA trickled 1 byte / 2 s", addrs, per),
			Faults: "sender inside DATA far below data_min_rate (500 B/s over 10 s windows after 10 s), data_timeout 60s",
			Events: fmt.Sprintf("good client %d/%d acknowledged", goodRes.Get("250 2.0.0"), goodRes.Total()),
			Errors: fmt.Sprintf("replies (first error … last): %s; longest session %v; connections still open 40 s in: %.0f of %d; limit hits data_rate=%.0f idle_timeout=%.0f",
				res.String(), time.Duration(longest.Load()).Round(100*time.Millisecond), held, addrs*per,
				m[`blowback_trap_limit_hits_total{limit="data_rate"}`], m[`blowback_trap_limit_hits_total{limit="idle_timeout"}`]),
			OK: bad.Load() == 0 && goodOK && held < 50})
	}

	// Many addresses in one prefix: 50 addresses × 20 connections in one
	// IPv4 /24, and 200 IPv6 /64s of one /48 through the trusted proxy.
	// At most max_connections_per_24 / _per_48 (100 each) get a greeting;
	// another prefix still does while they are held.
	goodRes = good.phase("127.0.51.2")
	{
		type try struct {
			src   string
			proxy []byte
		}
		var v4, v6 []try
		for i := range 1000 {
			v4 = append(v4, try{src: fmt.Sprintf("127.11.0.%d", 1+i/20)})
		}
		for i := range 200 {
			a := netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0x00, 0x48, byte(i >> 8), byte(i), 15: 1})
			v6 = append(v6, try{src: "127.0.9.1", proxy: proxyV1(a)})
		}
		var mu sync.Mutex
		var held []net.Conn
		open := func(tries []try) *tally.Counter {
			var t tally.Counter
			var wg sync.WaitGroup
			for _, tr := range tries {
				wg.Go(func() {
					conn, first := firstLine(tr.src, n.smtp, tr.proxy)
					t.Add(first)
					if conn != nil {
						mu.Lock()
						held = append(held, conn)
						mu.Unlock()
					}
				})
			}
			wg.Wait()
			return &t
		}
		r4 := open(v4)
		r6 := open(v6)
		// Other prefixes while those are held.
		_, other4 := firstLine("127.11.1.1", n.smtp, nil)
		_, other6 := firstLine("127.0.9.1", n.smtp, proxyV1(netip.MustParseAddr("2001:db8:49::1")))
		m, _ := n.metrics()
		for _, h := range held {
			h.Close()
		}
		time.Sleep(500 * time.Millisecond)
		goodOK := goodRes.Total() > 0 && goodRes.Get("250 2.0.0") == goodRes.Total()
		c.add(row{Scenario: "SMTP many addresses in one prefix",
			Load:   "1000 connections from 50 addresses of one IPv4 /24; 200 connections from 200 /64s of one IPv6 /48 (via trusted PROXY)",
			Faults: "per-address caps dodged by address count (max_connections_per_ip 20)",
			Events: fmt.Sprintf("good client %d/%d acknowledged", goodRes.Get("250 2.0.0"), goodRes.Total()),
			Errors: fmt.Sprintf("/24: %s; /48: %s; another /24: %s, another /48: %s; limit hits conns_per_24=%.0f conns_per_48=%.0f",
				r4, r6, other4, other6, m[`blowback_trap_limit_hits_total{limit="conns_per_24"}`], m[`blowback_trap_limit_hits_total{limit="conns_per_48"}`]),
			OK: r4.Get("220") <= 100 && r4.Get("220") > 0 && r4.Get("220")+r4.Get("421 4.7.0") == 1000 &&
				r6.Get("220") <= 100 && r6.Get("220") > 0 && r6.Get("220")+r6.Get("421 4.7.0") == 200 &&
				other4 == "220" && other6 == "220" && goodOK})
	}
	good.finish()
}

// dirUsage is the space the files under dir take (allocated blocks).
func dirUsage(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		if fi, err := d.Info(); err == nil {
			if st, ok := fi.Sys().(*syscall.Stat_t); ok {
				n += st.Blocks * 512
			} else {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

// incompressible is ~190 KB of base64 text from random bytes.
func incompressible() string {
	b := make([]byte, 140<<10)
	rand.Read(b)
	s := base64.StdEncoding.EncodeToString(b)
	var out strings.Builder
	for len(s) > 76 {
		out.WriteString(s[:76] + "\r\n")
		s = s[76:]
	}
	return out.String() + s + "\r\n"
}

// listedCodes asks the node's DNS for ip's A records.
func listedCodes(server string, ip netip.Addr) []string {
	m := new(dns.Msg)
	m.SetQuestion(reverse(ip.String()), dns.TypeA)
	r, _, err := query("127.0.99.1", server, m)
	if err != nil {
		return []string{err.Error()}
	}
	var out []string
	for _, rr := range r.Answer {
		if a, ok := rr.(*dns.A); ok {
			out = append(out, a.A.String())
		}
	}
	slices.Sort(out)
	return out
}

// unitFloodScenario: one unit floods the store with big bounces, another
// pipelines callouts, a third delivers normally; the store's per-unit caps
// (defaults: 500 events and 16 MiB of raw messages per unit per hour) keep
// the disk bounded, both floods are still listed, the third is untouched.
// The units come through the trusted proxy (TEST-NET-3 addresses).
func (c *checker) unitFloodScenario() {
	r := row{Scenario: "Store: one unit floods", Faults: "one source fills the disk with 1 MB-class bounces; pipelined MAIL/RCPT/RSET callouts"}
	dir := filepath.Join(c.work, "unitflood-data")
	n := c.scenarioNode(r, "unitflood", dir, c.baseConfig(""))
	if n == nil {
		return
	}
	flood, probe, legit := netip.MustParseAddr("203.0.113.7"), netip.MustParseAddr("203.0.113.8"), netip.MustParseAddr("203.0.113.9")
	du0 := dirUsage(dir)
	const dur = 20 * time.Second
	stop := make(chan struct{})
	var offered, acked atomic.Int64
	var replies tally.Counter
	var wg sync.WaitGroup
	body := incompressible()
	for w := range 4 {
		wg.Go(func() {
			var s *session
			for i := 0; ; i++ {
				select {
				case <-stop:
					if s != nil {
						s.close()
					}
					return
				default:
				}
				if s == nil {
					var err error
					if s, _, err = openSession("127.0.9.1", n.smtp, "flood.example.net", proxyV1(flood)); err != nil {
						s = nil
						replies.Add("connect failed")
						time.Sleep(100 * time.Millisecond)
						continue
					}
				}
				msg := strings.Replace(bounce(msgID(fmt.Sprintf("flood%d", w)), "flood@trap.blowback.test", ""), "spam\r\n", body, 1)
				rep, err := s.send("", fmt.Sprintf("f%d@trap.blowback.test", i%500), msg)
				replies.Add(code(rep))
				if err != nil {
					s.c.Close()
					s = nil
					continue
				}
				offered.Add(int64(len(msg)))
				if strings.HasPrefix(rep, "250") {
					acked.Add(1)
				}
				if i%200 == 199 {
					s.close()
					s = nil
				}
			}
		})
	}
	// Callouts: 10 connections each pipelining MAIL/RCPT/RSET until the
	// command limit closes them.
	var probeRes tally.Counter
	for range 10 {
		wg.Go(func() {
			c, err := dialFrom("127.0.9.1", n.smtp)
			if err != nil {
				probeRes.Add("dial error")
				return
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(60 * time.Second))
			writeStr(c, string(proxyV1(probe))+"EHLO probe.example.net\r\n"+
				strings.Repeat("MAIL FROM:<>\r\nRCPT TO:<p@trap.blowback.test>\r\nRSET\r\n", 2000))
			br := bufio.NewReader(c)
			last := ""
			for {
				l, err := br.ReadString('\n')
				if s := strings.TrimRight(l, "\r\n"); s != "" {
					last = s
				}
				if err != nil {
					break
				}
			}
			probeRes.Add(code(last))
		})
	}
	time.Sleep(dur)
	close(stop)
	wg.Wait()
	// A normal sender afterwards: untouched by the others' caps.
	legitAcked := 0
	if s, _, err := openSession("127.0.9.1", n.smtp, "mx.legit.example", proxyV1(legit)); err == nil {
		for i := range 20 {
			if rep, _ := s.send("", fmt.Sprintf("l%d@trap.blowback.test", i), bounce(msgID("legit"), "l@trap.blowback.test", "")); strings.HasPrefix(rep, "250") {
				legitAcked++
			}
		}
		s.close()
	}
	// Both floods listed (the first event of each kind is always stored).
	var floodCodes, probeCodes []string
	for range 50 {
		floodCodes, probeCodes = listedCodes(n.dns, flood), listedCodes(n.dns, probe)
		if len(floodCodes) > 0 && len(probeCodes) > 0 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	m, _ := n.metrics()
	stopErr := n.stop()
	du := dirUsage(dir) - du0
	stored, _, err := countStored(dir)
	r.Load = fmt.Sprintf("4 sessions from one address for %v (%.0f MiB offered, %d acked); 10 connections × 2000 pipelined callouts; then 20 bounces from a third address",
		dur, float64(offered.Load())/(1<<20), acked.Load())
	r.Events = fmt.Sprintf("flooder %d stored (cap 500 per hour of event time; a run across an hour boundary may store twice that), callouts %d stored (10 connections), normal sender %d acked / %d stored",
		stored[flood], stored[probe], legitAcked, stored[legit])
	r.Errors = fmt.Sprintf("data dir grew %.1f MiB; listed: flooder %v, prober %v; replies: %s; probes ended %s; limit hits callouts=%.0f; panics %.0f; stop %s; store %s",
		float64(du)/(1<<20), floodCodes, probeCodes, replies.String(), probeRes.String(),
		m[`blowback_trap_limit_hits_total{limit="callouts"}`], panics(m), errStr(stopErr), errStr(err))
	r.OK = err == nil && stopErr == nil && panics(m) == 0 && acked.Load() > 0 &&
		stored[flood] <= 2*(500+8) && stored[probe] >= 1 && stored[probe] <= 10 && legitAcked == 20 && stored[legit] == 20 &&
		du < 40<<20 && strings.Join(floodCodes, ",") == "127.0.0.2" && strings.Join(probeCodes, ",") == "127.0.0.4" &&
		replies.Get("452 4.3.1") == 0
	c.add(r)
}
