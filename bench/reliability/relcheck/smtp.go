package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/blowback-dnsbl/blowback/internal/tally"
	"github.com/blowback-dnsbl/blowback/store"
)

// dialFrom connects to addr from the loopback source src.
func dialFrom(src, addr string) (net.Conn, error) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	return d.Dial("tcp", addr)
}

// readReply reads one SMTP reply (all its lines) and returns its last line.
func readReply(r *bufio.Reader) (string, error) {
	for {
		l, err := r.ReadString('\n')
		l = strings.TrimRight(l, "\r\n")
		if err != nil {
			return l, err
		}
		if len(l) < 4 || l[3] != '-' {
			return l, nil
		}
	}
}

// bounce is a DSN to a trap address with its own Message-ID; extra headers
// go in the outer header.
func bounce(id, rcpt, extra string) string {
	return "From: Mail Delivery System <MAILER-DAEMON@mx.example.net>\r\n" +
		"To: " + rcpt + "\r\n" +
		"Subject: Undelivered Mail Returned to Sender\r\n" +
		"Message-ID: <" + id + ">\r\n" + extra +
		"MIME-Version: 1.0\r\n" +
		"Content-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\r\n" +
		"\r\n--B\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n" +
		"\r\n--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.net\r\n\r\n" +
		"Final-Recipient: rfc822; nobody@example.net\r\nAction: failed\r\nStatus: 5.1.1\r\n" +
		"\r\n--B\r\nContent-Type: message/rfc822\r\n\r\nFrom: " + rcpt + "\r\nTo: nobody@example.net\r\n" +
		"Subject: hi\r\nMessage-ID: <orig-" + id + ">\r\n\r\nspam\r\n--B--\r\n"
}

var msgSeq atomic.Int64

func msgID(tag string) string {
	return fmt.Sprintf("%s-%d-%d@mx.example.net", tag, time.Now().UnixNano(), msgSeq.Add(1))
}

// session is a simple SMTP client over one connection.
type session struct {
	c net.Conn
	r *bufio.Reader
}

func openSession(src, addr, helo string, proxy []byte) (*session, string, error) {
	c, err := dialFrom(src, addr)
	if err != nil {
		return nil, "", err
	}
	_ = c.SetDeadline(time.Now().Add(60 * time.Second))
	if proxy != nil {
		if _, err := c.Write(proxy); err != nil {
			c.Close()
			return nil, "", err
		}
	}
	s := &session{c: c, r: bufio.NewReader(c)}
	g, err := readReply(s.r)
	if err != nil || !strings.HasPrefix(g, "220") {
		c.Close()
		return nil, g, fmt.Errorf("greeting %q: %v", g, err)
	}
	if rep, err := s.cmd("EHLO " + helo); err != nil || !strings.HasPrefix(rep, "250") {
		c.Close()
		return nil, rep, fmt.Errorf("EHLO: %q %v", rep, err)
	}
	return s, g, nil
}

func (s *session) cmd(line string) (string, error) {
	_ = s.c.SetDeadline(time.Now().Add(60 * time.Second))
	if _, err := io.WriteString(s.c, line+"\r\n"); err != nil {
		return "", err
	}
	return readReply(s.r)
}

// send runs one transaction; it returns the reply to the final dot (or
// the first refusal).
func (s *session) send(from, rcpt, msg string) (string, error) {
	for _, l := range []string{"MAIL FROM:<" + from + ">", "RCPT TO:<" + rcpt + ">"} {
		rep, err := s.cmd(l)
		if err != nil || !strings.HasPrefix(rep, "250") {
			return rep, err
		}
	}
	rep, err := s.cmd("DATA")
	if err != nil || !strings.HasPrefix(rep, "354") {
		return rep, err
	}
	return s.cmd(strings.TrimSuffix(dotStuff(msg), "\r\n") + "\r\n.")
}

func dotStuff(m string) string {
	m = strings.ReplaceAll(m, "\r\n.", "\r\n..")
	if strings.HasPrefix(m, ".") {
		m = "." + m
	}
	return m
}

func (s *session) close() {
	_, _ = s.cmd("QUIT")
	s.c.Close()
}

// code is the first 9 characters of a reply ("250 2.0.0") or its code.
func code(rep string) string {
	if len(rep) >= 9 && rep[3] == ' ' && rep[5] == '.' {
		return rep[:9]
	}
	if len(rep) >= 3 {
		return rep[:3]
	}
	if rep == "" {
		return "no reply"
	}
	return rep
}

// goodClient delivers bounces continuously over a persistent session
// (reconnecting when it ends), from a source address that changes per
// phase, and tallies the answers per phase: "other sessions unaffected".
type goodClient struct {
	addr string
	mu   sync.Mutex
	src  string
	res  *tally.Counter
	ack  map[string]int // 250s per source
	stop chan struct{}
	done chan struct{}
}

func newGoodClient(addr string) *goodClient {
	g := &goodClient{addr: addr, ack: map[string]int{}, stop: make(chan struct{}), done: make(chan struct{})}
	return g
}

func (g *goodClient) phase(src string) *tally.Counter {
	t := &tally.Counter{}
	g.mu.Lock()
	g.src, g.res = src, t
	g.mu.Unlock()
	return t
}

func (g *goodClient) run() {
	defer close(g.done)
	var s *session
	cur := ""
	n := 0
	for {
		select {
		case <-g.stop:
			if s != nil {
				s.close()
			}
			return
		case <-time.After(150 * time.Millisecond):
		}
		g.mu.Lock()
		src, res := g.src, g.res
		g.mu.Unlock()
		if src != cur && s != nil {
			s.close()
			s = nil
		}
		cur = src
		if s == nil {
			var err error
			var g0 string
			s, g0, err = openSession(src, g.addr, "mx.good.example", nil)
			if err != nil {
				res.Add("connect: " + code(g0))
				s = nil
				continue
			}
		}
		n++
		rep, err := s.send("", fmt.Sprintf("good%d@trap.blowback.test", n), bounce(msgID("good"), "good@trap.blowback.test", ""))
		if err != nil {
			res.Add("error: " + code(rep))
			s.c.Close()
			s = nil
			continue
		}
		res.Add(code(rep))
		if strings.HasPrefix(rep, "250") {
			g.mu.Lock()
			g.ack[src]++
			g.mu.Unlock()
		}
		if n%200 == 0 { // stay far from the per-connection command limit
			s.close()
			s = nil
		}
	}
}

func (g *goodClient) finish() map[string]int {
	close(g.stop)
	<-g.done
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.ack
}

// outcome is how a hostile session went, as its client saw it.
type outcome struct {
	first    string // code of the first reply after the greeting ("" if none)
	firstErr string // code of the first 4xx/5xx reply
	last     string // code of the last reply
	closed   bool   // the server closed the connection (else the client gave up)
	dur      time.Duration
}

// key names the outcome in a tally: "first error … last reply".
func (o outcome) key() string {
	first := o.firstErr
	if first == "" {
		first = o.first
	}
	switch {
	case !o.closed:
		return "NOT CLOSED"
	case first == "":
		return "closed without a reply"
	case first == o.last:
		return first
	}
	return first + " … " + o.last
}

// hostile runs one session from src: write feeds the connection while
// the reader takes replies until the server closes or wait passes.
func hostile(src, addr string, wait time.Duration, write func(c net.Conn)) outcome {
	start := time.Now()
	c, err := dialFrom(src, addr)
	if err != nil {
		return outcome{first: "dial error", last: "dial error", closed: true}
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(wait))
	if write != nil {
		go write(c)
	}
	r := bufio.NewReader(c)
	var o outcome
	greeted := false
	for {
		l, err := r.ReadString('\n')
		if s := strings.TrimRight(l, "\r\n"); len(s) >= 3 && s[0] >= '2' && s[0] <= '5' && (len(s) == 3 || s[3] == ' ') {
			if !greeted && strings.HasPrefix(s, "220") {
				greeted = true
			} else {
				if o.first == "" {
					o.first = code(s)
				}
				if o.firstErr == "" && (s[0] == '4' || s[0] == '5') {
					o.firstErr = code(s)
				}
				o.last = code(s)
			}
		}
		if err != nil {
			var ne net.Error
			o.closed = !(errors.As(err, &ne) && ne.Timeout())
			o.dur = time.Since(start)
			return o
		}
	}
}

func writeStr(c net.Conn, s string) bool {
	_, err := io.WriteString(c, s)
	return err == nil
}

// countStored opens a stopped node's store and counts events per client address.
func countStored(dataDir string) (map[netip.Addr]int, int, error) {
	o := store.DefaultOptions()
	o.MinFreeBytes = -1
	st, err := store.Open(filepath.Join(dataDir, "store"), o, nil)
	if err != nil {
		return nil, 0, err
	}
	defer st.Close()
	out := map[netip.Addr]int{}
	total := 0
	err = st.ScanRefs(context.Background(), func(r store.Ref) error {
		out[r.Addr]++
		total++
		return nil
	})
	return out, total, err
}

// smtpScenarios: hostile SMTP clients against one node while a good
// client keeps delivering; the stored evidence is counted at the end.
func (c *checker) smtpScenarios() {
	dir := filepath.Join(c.work, "smtp-data")
	n := c.scenarioNode(row{Scenario: "SMTP node"}, "smtp", dir, c.baseConfig(noCaps))
	if n == nil {
		return
	}
	good := newGoodClient(n.smtp)
	good.phase("127.0.50.1")
	go good.run()
	type result struct {
		name, load, faults string
		src                string         // good client's source during the scenario
		res                *tally.Counter // hostile outcomes
		goodRes            *tally.Counter
		want               func(o outcome) bool // nil: any 4xx/5xx, closed by the server
		bad                atomic.Int64
		maxDur             atomic.Int64
		extra              string
		ok                 bool
	}
	var results []*result
	m0, _ := n.metrics()

	// Scenario runner: count sessions from srcs, each with write.
	run := func(name, load, faults, goodSrc string, count int, src func(i int) string, wait time.Duration, want func(outcome) bool, write func(i int, c net.Conn)) *result {
		r := &result{name: name, load: load, faults: faults, src: goodSrc, res: &tally.Counter{}, want: want}
		if r.want == nil {
			r.want = func(o outcome) bool { return o.closed && o.firstErr != "" }
		}
		r.goodRes = good.phase(goodSrc)
		var wg sync.WaitGroup
		for i := range count {
			wg.Go(func() {
				var w func(net.Conn)
				if write != nil {
					w = func(c net.Conn) { write(i, c) }
				}
				o := hostile(src(i), n.smtp, wait, w)
				r.res.Add(o.key())
				if !r.want(o) {
					r.bad.Add(1)
				}
				for {
					m := r.maxDur.Load()
					if int64(o.dur) <= m || r.maxDur.CompareAndSwap(m, int64(o.dur)) {
						break
					}
				}
			})
		}
		wg.Wait()
		time.Sleep(500 * time.Millisecond) // let the good client get a few more through
		results = append(results, r)
		c.logf("%s: %s; good client %s", name, r.res, r.goodRes)
		return r
	}

	// 1. Idle flood: 2000 connections that never send a byte, from 100
	// addresses (20 each, the per-address limit), watching the node.
	{
		var peakG, peakRSS, g0, rss0 float64
		if m, err := n.metrics(); err == nil {
			g0, rss0 = m["go_goroutines"], m["process_resident_memory_bytes"]
		}
		stopSample := make(chan struct{})
		sampled := make(chan struct{})
		go func() {
			defer close(sampled)
			for {
				if m, err := n.metrics(); err == nil {
					peakG = max(peakG, m["go_goroutines"])
					peakRSS = max(peakRSS, m["process_resident_memory_bytes"])
				}
				select {
				case <-stopSample:
					return
				case <-time.After(500 * time.Millisecond):
				}
			}
		}()
		r := run("SMTP idle flood", "2000 idle connections from 100 sources", "no bytes sent; stress read timeout 5s", "127.0.50.2",
			2000, func(i int) string { return fmt.Sprintf("127.1.%d.1", i/20) }, 60*time.Second, nil, nil)
		close(stopSample)
		<-sampled
		// Goroutines come back once the flood is gone.
		var gAfter float64
		deadline := time.Now().Add(20 * time.Second)
		for time.Now().Before(deadline) {
			if m, err := n.metrics(); err == nil {
				gAfter = m["go_goroutines"]
				if gAfter <= g0+50 {
					break
				}
			}
			time.Sleep(500 * time.Millisecond)
		}
		r.extra = fmt.Sprintf("goroutines %.0f → peak %.0f → %.0f after; RSS %s → peak %s", g0, peakG, gAfter, mib(rss0), mib(peakRSS))
		r.ok = gAfter <= g0+50 && peakG < 3*2000+500 && peakRSS < 1<<30
	}
	// 2. Slowloris: a command line trickled one byte a second.
	run("SMTP slowloris", "50 clients, 1 byte/s for up to 150s", "a command line that never completes (read_timeout 20s, session_timeout 120s)", "127.0.50.3",
		50, func(i int) string { return fmt.Sprintf("127.2.0.%d", 1+i/10) }, 120*time.Second,
		// The line never completes: the first reply must be the timeout,
		// not an answer to a fragment of the line.
		func(o outcome) bool { return o.closed && o.first == "421 4.4.2" },
		func(_ int, c net.Conn) {
			// "EHLO " and then a name that never ends, one byte a second
			// (at most 150 bytes: the scenario is bounded).
			line := "EHLO " + strings.Repeat("slow", 40)
			for _, b := range []byte(line[:150]) {
				if _, err := c.Write([]byte{b}); err != nil {
					return
				}
				time.Sleep(time.Second)
			}
		})
	// 3. Oversize messages.
	big := strings.Repeat(strings.Repeat("x", 998)+"\r\n", 3<<10) // 3 MiB, limit 2 MiB
	run("SMTP oversize", "10 messages of 3 MiB (limit 2 MiB)", "message over max_message_bytes", "127.0.50.4",
		10, func(int) string { return "127.3.0.1" }, 90*time.Second, nil, func(_ int, c net.Conn) {
			writeStr(c, "EHLO big.example.net\r\nMAIL FROM:<>\r\nRCPT TO:<big@trap.blowback.test>\r\nDATA\r\n")
			time.Sleep(200 * time.Millisecond)
			writeStr(c, big)
			writeStr(c, ".\r\nQUIT\r\n")
		})
	// 4. Endless line.
	run("SMTP endless line", "10 clients, 1 MiB without a newline", "line over max_line_length", "127.0.50.5",
		10, func(int) string { return "127.4.0.1" }, 60*time.Second, nil, func(_ int, c net.Conn) {
			writeStr(c, "EHLO ")
			chunk := strings.Repeat("x", 64<<10)
			for range 16 {
				if !writeStr(c, chunk) {
					return
				}
			}
		})
	// 5. Binary junk.
	run("SMTP binary junk", "10 clients, 64 KiB random bytes each", "non-SMTP input", "127.0.50.6",
		10, func(int) string { return "127.5.0.1" }, 60*time.Second, nil, func(_ int, c net.Conn) {
			b := make([]byte, 64<<10)
			rand.Read(b)
			c.Write(b)
		})
	// 6. Pipelining abuse: thousands of commands sent without reading a reply.
	run("SMTP pipelining abuse", "10 clients × 20000 pipelined RCPTs, replies unread", "command/error limits", "127.0.50.7",
		10, func(int) string { return "127.6.0.1" }, 60*time.Second, nil, func(i int, c net.Conn) {
			writeStr(c, "EHLO pipe.example.net\r\nMAIL FROM:<x@example.com>\r\n")
			rcpt := "RCPT TO:<victim@example.com>\r\n"
			if i%2 == 1 {
				rcpt = "RCPT TO:<x@trap.blowback.test>\r\n"
			}
			writeStr(c, strings.Repeat(rcpt, 20000))
		})
	// 7. TLS handshake garbage after STARTTLS.
	run("SMTP TLS garbage", "10 clients: STARTTLS, then junk records", "bad TLS handshake", "127.0.50.8",
		10, func(int) string { return "127.7.0.1" }, 60*time.Second, nil, func(_ int, c net.Conn) {
			writeStr(c, "EHLO tls.example.net\r\n")
			time.Sleep(200 * time.Millisecond)
			writeStr(c, "STARTTLS\r\n")
			time.Sleep(200 * time.Millisecond)
			junk := make([]byte, 4096)
			rand.Read(junk)
			c.Write(append([]byte("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"), junk...))
		})
	// 8. PROXY header from an untrusted peer, claiming 192.0.2.66.
	spoof := "PROXY TCP4 192.0.2.66 198.51.100.1 4444 25\r\n"
	run("SMTP PROXY spoof", "20 clients from an untrusted peer", "PROXY v1 header claiming 192.0.2.66", "127.0.50.9",
		20, func(int) string { return "127.8.0.1" }, 30*time.Second, nil, func(i int, c net.Conn) {
			writeStr(c, spoof+"EHLO spoof.example.net\r\nMAIL FROM:<>\r\nRCPT TO:<s@trap.blowback.test>\r\nDATA\r\n"+bounce(msgID("spoof"), "s@trap.blowback.test", "")+".\r\nQUIT\r\n")
		})
	// A trusted proxy's header is used (the other half of the rule).
	proxied := 0
	for i := range 5 {
		s, _, err := openSession("127.0.9.1", n.smtp, "proxied.example.net", []byte("PROXY TCP4 198.51.100.99 198.51.100.1 5555 25\r\n"))
		if err != nil {
			continue
		}
		if rep, _ := s.send("", fmt.Sprintf("p%d@trap.blowback.test", i), bounce(msgID("proxied"), "p@trap.blowback.test", "")); strings.HasPrefix(rep, "250") {
			proxied++
		}
		s.close()
	}

	acks := good.finish()
	m1, _ := n.metrics()
	stopErr := n.stop()
	stored, total, err := countStored(dir)
	if err != nil {
		c.add(row{Scenario: "SMTP store", Errors: err.Error()})
		return
	}
	nErr, errMsgs := n.logErrors()
	allAcked := proxied
	for _, a := range acks {
		allAcked += a
	}
	for _, r := range results {
		a := acks[r.src]
		s := stored[netip.MustParseAddr(r.src)]
		goodOK := r.goodRes.Total() > 0 && r.goodRes.Get("250 2.0.0") == r.goodRes.Total()
		clear := r.bad.Load() == 0
		if r.name != "SMTP idle flood" {
			r.ok = true
		}
		row := row{Scenario: r.name, Load: r.load, Faults: r.faults,
			Events: fmt.Sprintf("good client %d/%d / stored %d", a, r.goodRes.Total(), s),
			Errors: fmt.Sprintf("replies (first error … last): %s; longest session %v", r.res.String(), time.Duration(r.maxDur.Load()).Round(100*time.Millisecond)),
			OK:     r.ok && clear && goodOK && a == s}
		if r.extra != "" {
			row.Notes = append(row.Notes, r.extra)
		}
		if !goodOK {
			row.Notes = append(row.Notes, "good client saw: "+r.goodRes.String())
		}
		c.add(row)
	}
	spoofed := stored[netip.MustParseAddr("192.0.2.66")]
	viaProxy := stored[netip.MustParseAddr("198.51.100.99")]
	c.add(row{Scenario: "SMTP evidence source", Load: "20 spoofed PROXY sessions, 5 via trusted proxy 127.0.9.1",
		Faults: "untrusted PROXY header", Events: fmt.Sprintf("192.0.2.66: %d stored (want 0); 198.51.100.99 via trusted proxy: %d acked / %d stored", spoofed, proxied, viaProxy),
		OK: spoofed == 0 && viaProxy == proxied && proxied == 5})
	p := panics(m1) - panics(m0)
	c.add(row{Scenario: "SMTP node overall", Load: fmt.Sprintf("%.0f connections accepted", m1["blowback_trap_connections_total"]),
		Faults: "all of the above", Events: fmt.Sprintf("%d acknowledged / %d stored", allAcked, total),
		Errors: fmt.Sprintf("panics %.0f; log errors %d %s; stop: %v; limit hits: %s", p, nErr, errMsgs, stopErr, limitHits(m1)),
		OK:     p == 0 && total == allAcked && stopErr == nil && nErr == 0})
}

func limitHits(m map[string]float64) string {
	var parts []string
	for k, v := range m {
		if strings.HasPrefix(k, "blowback_trap_limit_hits_total{") && v > 0 {
			parts = append(parts, fmt.Sprintf("%s=%.0f", strings.TrimSuffix(strings.TrimPrefix(k, `blowback_trap_limit_hits_total{limit="`), `"}`), v))
		}
	}
	slices.Sort(parts)
	return strings.Join(parts, " ")
}

// relayForms are RCPT addresses an open-relay test tries; trap says
// whether the address is at a trap domain by RFC 5321 (the domain after
// the last '@' outside a quoted local part, source routes ignored per
// §4.1.1.3 and Appendix C). Only those may get 250; nothing is ever
// relayed, the trap sends no mail.
var relayForms = []struct {
	rcpt string
	trap bool
}{
	{"victim@example.com", false},
	{"victim%example.com@trap.blowback.test", true}, // percent hack: local part at the trap
	{"victim%trap.blowback.test@example.com", false},
	{"victim@example.com%trap.blowback.test", false},
	{"example.com!victim@trap.blowback.test", true}, // bang path in the local part
	{"trap.blowback.test!victim@example.com", false},
	{"example.com!victim", false},
	{"@trap.blowback.test:victim@example.com", false}, // source route: the mailbox is victim@example.com
	{"@example.com:victim@trap.blowback.test", true},
	{"@trap.blowback.test,@trap2.blowback.test:victim@example.com", false},
	{`"victim@example.com"@trap.blowback.test`, true},
	{`"victim@trap.blowback.test"@example.com`, false},
	{`"victim"@example.com`, false},
	{`"victim\"@trap.blowback.test"@example.com`, false},
	{"victim@example.com@trap.blowback.test", false}, // two '@' unquoted: invalid
	{"victim@trap.blowback.test@example.com", false},
	{"victim@[127.0.0.1]", false},
	{"victim@[IPv6:::1]", false},
	{"victim@127.0.0.1", false},
	{"victim@localhost", false},
	{"victim@trap.blowback.test.", true}, // trailing dot: same domain
	{"victim@example.com.", false},
	{"VICTIM@TRAP.BLOWBACK.TEST", true},
	{"victim@EXAMPLE.COM", false},
	{"victim@sub.trap.blowback.test", false},
	{"victim@trap.blowback.test.example.com", false},
	{"victim@xtrap.blowback.test", false},
	{"victim@trap2.blowback.test", true},
	{"victim@trap.blowback.test\x00.example.com", false},
	{"victim@ｔrap.blowback.test", false}, // fullwidth t
	{"postmaster", false},
	{"victim", false},
	{"victim@", false},
	{"@example.com", false},
}

// relayScenario tries every address form, one session each, and checks
// that no address outside the trap domains gets 250.
func (c *checker) relayScenario() {
	n := c.scenarioNode(row{Scenario: "SMTP open relay"}, "relay", filepath.Join(c.work, "relay-data"), c.baseConfig(""))
	if n == nil {
		return
	}
	defer n.stop()
	var relayed, trapRefused []string
	var res tally.Counter
	for i, f := range relayForms {
		src := fmt.Sprintf("127.0.80.%d", 1+i%200)
		s, g, err := openSession(src, n.smtp, "relay.example.net", nil)
		if err != nil {
			res.Add("connect " + code(g))
			continue
		}
		rep, err := s.cmd("MAIL FROM:<tester@example.org>")
		if err == nil && strings.HasPrefix(rep, "250") {
			rep, err = s.cmd("RCPT TO:<" + f.rcpt + ">")
		}
		s.close()
		res.Add(code(rep))
		accepted := err == nil && strings.HasPrefix(rep, "250")
		switch {
		case accepted && !f.trap:
			relayed = append(relayed, fmt.Sprintf("%q", f.rcpt))
		case !accepted && f.trap:
			trapRefused = append(trapRefused, fmt.Sprintf("%q→%s", f.rcpt, code(rep)))
		}
	}
	r := row{Scenario: "SMTP open relay", Load: fmt.Sprintf("%d address forms, one session each", len(relayForms)),
		Faults: "percent hack, bang paths, source routes, quoted local parts, IP literals, trailing dots, case, NUL, other domains",
		Events: "-", Errors: fmt.Sprintf("replies: %s; non-trap accepted: %d", res.String(), len(relayed)),
		OK: len(relayed) == 0}
	if len(relayed) > 0 {
		r.Notes = append(r.Notes, "ACCEPTED non-trap recipients: "+strings.Join(relayed, ", "))
	}
	if len(trapRefused) > 0 {
		r.Notes = append(r.Notes, "trap-domain forms refused (not a relay, noted): "+strings.Join(trapRefused, ", "))
	}
	c.add(r)
}
