package dnsd

import (
	"net/netip"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/blowback-dnsbl/blowback/internal/testenv"
)

// dialFrom opens a DNS TCP connection to addr from the local address src
// (any of 127.0.0.0/8 works on loopback), closed when the test ends.
func dialFrom(t *testing.T, src, addr string) *dns.Conn {
	t.Helper()
	c, err := testenv.DialFrom(src, addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &dns.Conn{Conn: c}
}

// served asks one query on c and reports whether it was answered (a
// connection closed at accept reads EOF).
func served(c *dns.Conn, name string) bool {
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if err := c.WriteMsg(query(name, dns.TypeA)); err != nil {
		return false
	}
	r, err := c.ReadMsg()
	return err == nil && r.Rcode == dns.RcodeSuccess
}

// TestTCPSlotsPerClient is issue 13 item 3, live: one address opens 300
// connections and keeps them; another client and the address allowed to
// transfer the zone are still served.
func TestTCPSlotsPerClient(t *testing.T) {
	env := startXFR(t, TransferConfig{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.2.1/32")}})
	name := QueryName(netip.MustParseAddr("192.0.2.1"), "bl.example")
	var held int
	for range 300 {
		c := dialFrom(t, "127.0.0.1", env.addr)
		if served(c, name) {
			held++
		}
	}
	if held == 0 || held > env.srv.cfg.MaxTCPConnsPerClient {
		t.Errorf("one client holds %d connections, want 1..%d", held, env.srv.cfg.MaxTCPConnsPerClient)
	}
	if v := metricValue(t, env.reg, "blowback_dns_tcp_rejected_total", "reason", rejectPerClient); v != float64(300-held) {
		t.Errorf("rejected per client: %v, want %d", v, 300-held)
	}
	// Another client (another /24) gets an answer.
	c := dialFrom(t, "127.0.1.1", env.addr)
	if !served(c, name) {
		t.Error("another client is not served while one holds connections")
	}
	// The secondary gets its transfer.
	xc := dialFrom(t, "127.0.2.1", env.addr)
	tr := &dns.Transfer{Conn: xc}
	m := new(dns.Msg)
	m.SetAxfr("bl.example.")
	ch, err := tr.In(m, env.addr)
	if err != nil {
		t.Fatal(err)
	}
	var rrs int
	for e := range ch {
		if e.Error != nil {
			t.Fatalf("AXFR from the allowed address: %v", e.Error)
		}
		rrs += len(e.RR)
	}
	if rrs < 50 {
		t.Errorf("AXFR gave %d records", rrs)
	}
}

// TestTCPReserveForTransfer fills every slot but the reserve from many
// networks: a new client is turned away, the transfer address is not.
func TestTCPReserveForTransfer(t *testing.T) {
	env := startXFR(t, TransferConfig{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.2.1/32")}})
	cfg := env.srv.cfg
	name := QueryName(netip.MustParseAddr("192.0.2.1"), "bl.example")
	open := 0
	for n := 0; open < cfg.MaxTCPConns-cfg.TCPTransferReserve; n++ {
		c := dialFrom(t, netip.AddrFrom4([4]byte{127, 10, byte(n), 1}).String(), env.addr)
		if !served(c, name) {
			t.Fatalf("connection %d (of %d allowed) turned away", open, cfg.MaxTCPConns-cfg.TCPTransferReserve)
		}
		open++
	}
	c := dialFrom(t, "127.0.1.1", env.addr)
	if served(c, name) {
		t.Error("a client got one of the slots kept for transfers")
	}
	xc := dialFrom(t, "127.0.2.1", env.addr)
	if !served(xc, name) {
		t.Error("the transfer address is not served when all other slots are taken")
	}
}

// TestTCPLifetime: a connection that keeps asking is closed once its
// lifetime is over (the idle timeout never fires on it).
func TestTCPLifetime(t *testing.T) {
	_, addr, _ := startServer(t, Config{TCPLifetime: 200 * time.Millisecond, TCPIdle: time.Minute, MaxTCPQueries: -1}, testSnapshot())
	c := dialFrom(t, "127.0.0.1", addr)
	deadline := time.Now().Add(30 * time.Second)
	for n := 0; ; n++ {
		if !served(c, v4name("192.0.2.1")) {
			if n == 0 {
				t.Fatal("first query not answered")
			}
			return // closed by the server
		}
		if time.Now().After(deadline) {
			t.Fatalf("connection still served after %d queries", n)
		}
	}
}

// TestTCPReserveOnlyWithTransfer: without zone transfer, no slot is kept
// back: MaxTCPConns clients from as many networks are all served.
func TestTCPReserveOnlyWithTransfer(t *testing.T) {
	s, addr, _ := startServer(t, Config{MaxTCPConns: 8, TCPTransferReserve: 2}, testSnapshot())
	for n := range s.cfg.MaxTCPConns {
		c := dialFrom(t, netip.AddrFrom4([4]byte{127, 20, byte(n), 1}).String(), addr)
		if !served(c, v4name("192.0.2.1")) {
			t.Fatalf("connection %d of %d turned away", n+1, s.cfg.MaxTCPConns)
		}
	}
}

// TestTCPQueriesPerConnection: a connection answers MaxTCPQueries queries,
// then the server closes it.
func TestTCPQueriesPerConnection(t *testing.T) {
	_, addr, _ := startServer(t, Config{MaxTCPQueries: 3}, testSnapshot())
	c := dialFrom(t, "127.0.0.1", addr)
	for i := range 3 {
		if !served(c, v4name("192.0.2.1")) {
			t.Fatalf("query %d not answered", i+1)
		}
	}
	if served(c, v4name("192.0.2.1")) {
		t.Error("a 4th query answered on a connection limited to 3")
	}
}
