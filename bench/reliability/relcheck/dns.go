package main

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"

	"github.com/blowback-dnsbl/blowback/internal/tally"
)

const zone = "bl.blowback.test."

// The RFC 5782 §5 test point: always listed with every code.
const testPoint = "2.0.0.127." + zone

// udpFrom is a UDP socket bound to a loopback source.
func udpFrom(src string) (*net.UDPConn, error) {
	return net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(src)})
}

// query asks one question over UDP from src.
func query(src, server string, m *dns.Msg) (*dns.Msg, int, error) {
	cl := dns.Client{Net: "udp", Timeout: 3 * time.Second, UDPSize: 65535,
		Dialer: &net.Dialer{LocalAddr: &net.UDPAddr{IP: net.ParseIP(src)}}}
	r, _, err := cl.Exchange(m, server)
	if err != nil {
		return nil, 0, err
	}
	b, _ := r.Pack()
	return r, len(b), nil
}

func tcpQuery(src, server string, m *dns.Msg) (*dns.Msg, error) {
	cl := dns.Client{Net: "tcp", Timeout: 3 * time.Second,
		Dialer: &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 3 * time.Second}}
	r, _, err := cl.Exchange(m, server)
	return r, err
}

// goodAnswer checks the test point answers all four codes and 127.0.0.1
// is NXDOMAIN, over UDP (or TCP).
func goodAnswer(src, server string, tcp bool) error {
	ask := func(name string) (*dns.Msg, error) {
		m := new(dns.Msg)
		m.SetQuestion(name, dns.TypeA)
		if tcp {
			return tcpQuery(src, server, m)
		}
		r, _, err := query(src, server, m)
		return r, err
	}
	r, err := ask(testPoint)
	if err != nil {
		return err
	}
	if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 4 {
		return fmt.Errorf("test point: rcode %s, %d answers", dns.RcodeToString[r.Rcode], len(r.Answer))
	}
	r, err = ask("1.0.0.127." + zone)
	if err != nil {
		return err
	}
	if r.Rcode != dns.RcodeNameError {
		return fmt.Errorf("127.0.0.1: rcode %s, want NXDOMAIN", dns.RcodeToString[r.Rcode])
	}
	return nil
}

// malformed returns n hostile packets: random bytes, truncations, header
// lies, compression loops, bad labels, responses, odd opcodes and EDNS.
func malformed(n int) [][]byte {
	base := new(dns.Msg)
	base.SetQuestion(testPoint, dns.TypeA)
	base.SetEdns0(1232, false)
	valid, _ := base.Pack()
	var out [][]byte
	rng := mrand.New(mrand.NewPCG(9, 9))
	for i := 0; len(out) < n; i++ {
		var p []byte
		switch i % 10 {
		case 0: // random bytes
			p = make([]byte, rng.IntN(600))
			rand.Read(p)
		case 1: // truncated query
			p = append([]byte(nil), valid[:rng.IntN(len(valid))]...)
		case 2: // header counts lie
			p = append([]byte(nil), valid...)
			binary.BigEndian.PutUint16(p[4:], uint16(rng.IntN(65536)))
			binary.BigEndian.PutUint16(p[6:], uint16(rng.IntN(65536)))
			binary.BigEndian.PutUint16(p[10:], uint16(rng.IntN(65536)))
		case 3: // compression pointer to itself
			p = append([]byte(nil), valid[:12]...)
			p = append(p, 0xc0, 0x0c, 0, 1, 0, 1)
		case 4: // pointer loop between two labels
			p = append([]byte(nil), valid[:12]...)
			p = append(p, 1, 'a', 0xc0, 0x0c, 0, 1, 0, 1)
		case 5: // label longer than 63, name longer than 255
			p = append([]byte(nil), valid[:12]...)
			for range 5 {
				p = append(p, 63)
				p = append(p, []byte(strings.Repeat("a", 63))...)
			}
			p = append(p, 0x7f, 'x', 0, 0, 1, 0, 1)
		case 6: // a response (QR set): must be ignored
			p = append([]byte(nil), valid...)
			p[2] |= 0x80
		case 7: // opcode UPDATE / NOTIFY / 15
			p = append([]byte(nil), valid...)
			p[2] = p[2]&0x87 | byte([]int{4, 5, 15}[rng.IntN(3)])<<3
		case 8: // two OPT records, bogus options
			m := base.Copy()
			o := &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT, Class: 65535}}
			o.Option = append(o.Option, &dns.EDNS0_LOCAL{Code: 65001, Data: make([]byte, rng.IntN(300))}, &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "zz"})
			m.Extra = append(m.Extra, o)
			p, _ = m.Pack()
			if p == nil {
				p = valid
			}
		case 9: // bit flips of a valid query
			p = append([]byte(nil), valid...)
			for range 1 + rng.IntN(6) {
				j := rng.IntN(len(p))
				p[j] ^= byte(1 << rng.IntN(8))
			}
		}
		out = append(out, p)
	}
	return out
}

func (c *checker) dnsScenarios() {
	n := c.scenarioNode(row{Scenario: "DNS node"}, "dns", filepath.Join(c.work, "dns-data"), c.baseConfig(""))
	if n == nil {
		return
	}
	defer n.stop()
	m0, _ := n.metrics()
	exempt := "127.0.99.1"

	// 1. Malformed packets over UDP and TCP; good queries keep working.
	{
		pkts := malformed(5000)
		conn, err := udpFrom(exempt)
		if err != nil {
			c.add(row{Scenario: "DNS malformed", Errors: err.Error()})
			return
		}
		var replies tally.Counter
		done := make(chan struct{})
		go func() {
			defer close(done)
			buf := make([]byte, 65535)
			for {
				conn.SetReadDeadline(time.Now().Add(2 * time.Second))
				k, _, err := conn.ReadFrom(buf)
				if err != nil {
					return
				}
				var m dns.Msg
				if m.Unpack(buf[:k]) != nil {
					replies.Add("unparseable reply")
					continue
				}
				replies.Add(dns.RcodeToString[m.Rcode])
			}
		}()
		to, _ := net.ResolveUDPAddr("udp", n.dns)
		for i, p := range pkts {
			conn.WriteTo(p, to)
			if i%200 == 0 {
				time.Sleep(5 * time.Millisecond)
			}
		}
		<-done
		conn.Close()
		// TCP: garbage streams and lying length prefixes.
		var tcpRes tally.Counter
		var wg sync.WaitGroup
		for i := range 50 {
			wg.Go(func() {
				tcpRes.Add(dnsTCPHostile(exempt, n.dns, i, pkts[i*97%len(pkts)]))
			})
		}
		wg.Wait()
		qr := qrReplies(exempt, n.dns)
		goodErr := goodAnswer(exempt, n.dns, false)
		goodTCPErr := goodAnswer(exempt, n.dns, true)
		m1, _ := n.metrics()
		p := panics(m1) - panics(m0)
		c.add(row{Scenario: "DNS malformed packets", Load: fmt.Sprintf("%d UDP packets, 50 TCP streams", len(pkts)),
			Faults: "random bytes, truncation, lying counts, pointer loops, long labels, QR=1, UPDATE/NOTIFY, double OPT, bit flips",
			Events: "-", Errors: fmt.Sprintf("UDP replies: %s (%d unanswered); answers to 30 responses (QR=1): %d; TCP: %s; panics %.0f; good UDP %v, TCP %v", replies.String(), len(pkts)-replies.Total(), qr, tcpRes.String(), p, errStr(goodErr), errStr(goodTCPErr)),
			OK: p == 0 && qr == 0 && goodErr == nil && goodTCPErr == nil && replies.Get("unparseable reply") == 0})
	}

	// 2. Huge EDNS sizes: the answer never exceeds what the server uses.
	{
		var worst int
		var sizes []string
		ok := true
		for _, q := range []struct {
			name string
			t    uint16
			size uint16
		}{{testPoint, dns.TypeTXT, 65535}, {testPoint, dns.TypeANY, 65535}, {zone, dns.TypeANY, 65535}, {zone, dns.TypeNS, 65535}, {testPoint, dns.TypeTXT, 0}, {testPoint, dns.TypeA, 100}} {
			m := new(dns.Msg)
			m.SetQuestion(q.name, q.t)
			m.SetEdns0(q.size, true)
			r, size, err := query(exempt, n.dns, m)
			if err != nil {
				ok = false
				sizes = append(sizes, fmt.Sprintf("%s/%s: %v", q.name, dns.TypeToString[q.t], err))
				continue
			}
			worst = max(worst, size)
			adv := 0
			if o := r.IsEdns0(); o != nil {
				adv = int(o.UDPSize())
			}
			// The answer fits the server's own size, and the server
			// advertises its size, not the client's.
			if size > 1232 || adv > 1232 {
				ok = false
			}
			sizes = append(sizes, fmt.Sprintf("%s %s bufsize %d → %d bytes%s, server advertises %d", shortName(q.name), dns.TypeToString[q.t], q.size, size, tc(r), adv))
		}
		c.add(row{Scenario: "DNS huge EDNS sizes", Load: "6 queries with EDNS bufsize 65535/0/100", Faults: "oversized advertised buffer",
			Events: "-", Errors: fmt.Sprintf("largest UDP answer %d bytes (server's udp_size 1232)", worst), OK: ok, Notes: []string{strings.Join(sizes, "; ")}})
	}

	// 3. AXFR from outside the ACL is refused; from inside it works.
	{
		outside, nOut, errOut := axfr("127.0.0.1", n.dns)
		inside, nIn, errIn := axfr("127.0.0.77", n.dns)
		c.add(row{Scenario: "DNS AXFR ACL", Load: "AXFR from 127.0.0.1 (outside) and 127.0.0.77 (allow_transfer)", Faults: "transfer from outside the ACL",
			Events: "-", Errors: fmt.Sprintf("outside: %s, %d records %s; inside: %s, %d records %s", outside, nOut, errStr(errOut), inside, nIn, errStr(errIn)),
			OK: nOut == 0 && outside != "NOERROR" && nIn > 0})
	}

	// 4. Amplification: response/query size ratio for the biggest answers.
	{
		type amp struct {
			what       string
			q, r       int
			ratio      float64
			truncation bool
		}
		var amps []amp
		for _, q := range []struct {
			name string
			t    uint16
		}{{testPoint, dns.TypeA}, {testPoint, dns.TypeTXT}, {testPoint, dns.TypeANY}, {zone, dns.TypeANY}, {zone, dns.TypeSOA}, {zone, dns.TypeNS}, {zone, dns.TypeTXT}, {zone, dns.TypeDNSKEY}, {"1.0.0.127." + zone, dns.TypeTXT}} {
			m := new(dns.Msg)
			m.SetQuestion(q.name, q.t)
			m.SetEdns0(4096, true)
			qb, _ := m.Pack()
			r, size, err := query(exempt, n.dns, m)
			if err != nil {
				continue
			}
			amps = append(amps, amp{shortName(q.name) + " " + dns.TypeToString[q.t], len(qb), size, float64(size) / float64(len(qb)), r.Truncated})
		}
		best := amp{}
		var parts []string
		for _, a := range amps {
			if a.ratio > best.ratio {
				best = a
			}
			parts = append(parts, fmt.Sprintf("%s %d→%d (×%.1f)", a.what, a.q, a.r, a.ratio))
		}
		// RRL: a flood from a non-exempt source is held near the rate.
		sent, full, slipped, secs := rrlFlood("127.0.0.1", n.dns, 3*time.Second, 2000)
		exemptOK := goodAnswer(exempt, n.dns, false)
		rate := float64(full) / secs
		c.add(row{Scenario: "DNS amplification + RRL", Load: fmt.Sprintf("%d queries in %.1fs from 127.0.0.1 (RRL 200/s per /24)", sent, secs),
			Faults: "reflection-style query flood",
			Events: "-", Errors: fmt.Sprintf("max response/query ratio ×%.1f (%s); answered %d full (%.0f/s) + %d truncated slips, %d dropped; exempt client %s", best.ratio, best.what, full, rate, slipped, sent-full-slipped, errStr(exemptOK)),
			OK: rate < 200*1.5+200/secs && exemptOK == nil && best.ratio < 20, Notes: []string{strings.Join(parts, "; ")}})
	}

	// 5. TCP connection flood.
	{
		const flood = 1000
		var held atomic.Int64
		var res tally.Counter
		var wg sync.WaitGroup
		start := time.Now()
		udpDuring := make(chan error, 1)
		go func() {
			time.Sleep(time.Second)
			udpDuring <- goodAnswer(exempt, n.dns, false)
		}()
		for i := range flood {
			wg.Go(func() {
				conn, err := dialFrom(fmt.Sprintf("127.0.90.%d", 1+i%250), n.dns)
				if err != nil {
					res.Add("dial error")
					return
				}
				defer conn.Close()
				held.Add(1)
				conn.SetReadDeadline(time.Now().Add(20 * time.Second))
				b := make([]byte, 1)
				_, err = conn.Read(b)
				held.Add(-1)
				if ne, ok := err.(net.Error); ok && ne.Timeout() {
					res.Add("NOT CLOSED")
				} else {
					res.Add("closed by server")
				}
			})
		}
		wg.Wait()
		elapsed := time.Since(start)
		during := <-udpDuring
		after := goodAnswer(exempt, n.dns, true)
		m1, _ := n.metrics()
		p := panics(m1) - panics(m0)
		c.add(row{Scenario: "DNS TCP connection flood", Load: fmt.Sprintf("%d idle TCP connections (max_tcp_conns 256, tcp_idle 3s)", flood),
			Faults: "connections that never send a query", Events: "-",
			Errors: fmt.Sprintf("%s within %v; UDP during flood %s; TCP after %s; panics %.0f", res.String(), elapsed.Round(100*time.Millisecond), errStr(during), errStr(after), p),
			OK:     res.Get("NOT CLOSED") == 0 && during == nil && after == nil && p == 0})
	}
}

func errStr(err error) string {
	if err == nil {
		return "ok"
	}
	return "ERROR " + err.Error()
}

func tc(r *dns.Msg) string {
	if r.Truncated {
		return " TC"
	}
	return ""
}

func shortName(n string) string {
	if n == zone {
		return "apex"
	}
	return strings.TrimSuffix(n, "."+zone)
}

// dnsTCPHostile sends junk over one TCP connection and reports how it ended.
func dnsTCPHostile(src, server string, i int, pkt []byte) string {
	conn, err := dialFrom(src, server)
	if err != nil {
		return "dial error"
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(15 * time.Second))
	switch i % 3 {
	case 0: // length prefix larger than what follows
		conn.Write([]byte{0xff, 0xff})
		conn.Write(pkt)
	case 1: // a malformed packet, framed correctly
		conn.Write(binary.BigEndian.AppendUint16(nil, uint16(len(pkt))))
		conn.Write(pkt)
	case 2: // random stream
		b := make([]byte, 8192)
		rand.Read(b)
		conn.Write(b)
	}
	b := make([]byte, 65535)
	for {
		_, err := conn.Read(b)
		if err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				return "NOT CLOSED"
			}
			return "closed by server"
		}
	}
}

// axfr asks for the zone from src; it returns the rcode of the first
// message and the records received.
func axfr(src, server string) (string, int, error) {
	conn, err := dialFrom(src, server)
	if err != nil {
		return "", 0, err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	tr := &dns.Transfer{Conn: &dns.Conn{Conn: conn}}
	m := new(dns.Msg)
	m.SetAxfr(zone)
	ch, err := tr.In(m, server)
	if err != nil {
		return "", 0, err
	}
	rcode, records := "", 0
	for env := range ch {
		if env.Error != nil {
			if rcode == "" {
				rcode = strings.TrimPrefix(env.Error.Error(), "dns: ")
			}
			continue
		}
		if rcode == "" {
			rcode = "NOERROR"
		}
		records += len(env.RR)
	}
	return rcode, records, nil
}

// rrlFlood sends queries for the test point at about qps from src for d
// and counts full answers and truncated (slipped) ones.
func rrlFlood(src, server string, d time.Duration, qps int) (sent, full, slipped int, secs float64) {
	conn, err := udpFrom(src)
	if err != nil {
		return 0, 0, 0, 1
	}
	defer conn.Close()
	to, _ := net.ResolveUDPAddr("udp", server)
	var fullN, slipN atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 4096)
		for {
			conn.SetReadDeadline(time.Now().Add(time.Second))
			k, _, err := conn.ReadFrom(buf)
			if err != nil {
				return
			}
			var m dns.Msg
			if m.Unpack(buf[:k]) != nil {
				continue
			}
			if m.Truncated && len(m.Answer) == 0 {
				slipN.Add(1)
			} else {
				fullN.Add(1)
			}
		}
	}()
	m := new(dns.Msg)
	m.SetQuestion(testPoint, dns.TypeA)
	start := time.Now()
	tick := time.Second / time.Duration(qps/100)
	for time.Since(start) < d {
		for range 100 {
			m.Id = dns.Id()
			b, _ := m.Pack()
			conn.WriteTo(b, to)
			sent++
		}
		time.Sleep(tick)
	}
	secs = time.Since(start).Seconds()
	<-done
	return sent, int(fullN.Load()), int(slipN.Load()), secs
}

// qrReplies sends 30 DNS responses (QR=1, several opcodes, with and
// without EDNS) and counts the replies: answering a response lets two
// servers bounce packets at each other forever.
func qrReplies(src, server string) int {
	conn, err := udpFrom(src)
	if err != nil {
		return -1
	}
	defer conn.Close()
	to, _ := net.ResolveUDPAddr("udp", server)
	for i := range 30 {
		m := new(dns.Msg)
		m.SetQuestion(testPoint, dns.TypeA)
		m.Opcode = []int{dns.OpcodeQuery, dns.OpcodeNotify, dns.OpcodeUpdate}[i%3]
		m.Response = true
		if i%2 == 0 {
			m.SetEdns0(1232, false)
		}
		b, _ := m.Pack()
		conn.WriteTo(b, to)
	}
	n := 0
	buf := make([]byte, 4096)
	for {
		conn.SetReadDeadline(time.Now().Add(time.Second))
		if _, _, err := conn.ReadFrom(buf); err != nil {
			return n
		}
		n++
	}
}
