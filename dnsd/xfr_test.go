package dnsd

import (
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/blowback-dnsbl/blowback/zones"
)

const xfrKey = "xfr.bl.example."
const xfrSecret = "c2VjcmV0LWtleS1mb3ItYmxvd2JhY2stdGVzdHMtMzItYnl0ZXM=" // base64

func xfrZone(serial uint32, n int, seed uint64) *zones.Snapshot {
	r := rand.New(rand.NewPCG(seed, 3))
	var es []zones.Entry
	for range n {
		a := netip.AddrFrom4([4]byte{10, byte(r.IntN(256)), byte(r.IntN(256)), byte(r.IntN(256))})
		es = append(es, zones.Entry{Prefix: netip.PrefixFrom(a, 32), Codes: zones.Codes(r.IntN(15) + 1)})
	}
	es = append(es, zones.Entry{Prefix: netip.MustParsePrefix("2001:db8:1:2::/64"), Codes: zones.CodeBounce},
		zones.Entry{Prefix: netip.MustParsePrefix("192.0.2.0/24"), Codes: zones.CodeCallout})
	return zones.Build(zones.Info{Zone: "bl.example", Serial: serial, TXT: `listed $ "quoted" \ back`, TTL: 300 * time.Second}, es)
}

type xfrEnv struct {
	srv  *Server
	addr string
	j    *zones.Journal
	reg  *prometheus.Registry
}

// startXFR serves xfrZone(100, 50, 1) with transfers as cfg says.
func startXFR(t *testing.T, cfg TransferConfig) *xfrEnv {
	t.Helper()
	return serveXFR(t, xfrZone(100, 50, 1), cfg)
}

// serveXFR serves s0 (also the journal's first version) with transfers as
// cfg says (glue for ns1.bl.example unless given).
func serveXFR(t *testing.T, s0 *zones.Snapshot, cfg TransferConfig) *xfrEnv {
	t.Helper()
	srv, addr, reg := startServer(t, Config{NS: []string{"ns1.bl.example", "ns.example.net"}}, s0)
	t.Cleanup(srv.StopTransfer) // before Stop
	j := zones.NewJournal(0)
	j.Record(s0)
	cfg.Journal = j
	if cfg.Glue == nil {
		cfg.Glue = map[string][]netip.Addr{"ns1.bl.example": {netip.MustParseAddr("192.0.2.53")}}
	}
	if err := srv.SetTransfer(cfg, reg); err != nil {
		t.Fatal(err)
	}
	return &xfrEnv{srv, addr, j, reg}
}

// transferIn runs an AXFR or IXFR (serial: the client's) and returns the
// records and the number of messages.
func transferIn(t *testing.T, addr string, qtype uint16, serial uint32, key bool) ([]dns.RR, int, error) {
	t.Helper()
	m := new(dns.Msg)
	if qtype == dns.TypeAXFR {
		m.SetAxfr("bl.example.")
	} else {
		m.SetIxfr("bl.example.", serial, "ns1.bl.example.", "hostmaster.bl.example.")
	}
	tr := &dns.Transfer{}
	if key {
		m.SetTsig(xfrKey, dns.HmacSHA256, 300, time.Now().Unix())
		tr.TsigSecret = map[string]string{xfrKey: xfrSecret}
	}
	ch, err := tr.In(m, addr)
	if err != nil {
		return nil, 0, err
	}
	var rrs []dns.RR
	n := 0
	for env := range ch {
		if env.Error != nil {
			return rrs, n, env.Error
		}
		n++
		rrs = append(rrs, env.RR...)
	}
	return rrs, n, nil
}

// zoneSet is a zone's names and codes, and TXT per owner, from records.
type zoneSet map[string]string

func (z zoneSet) apply(rrs []dns.RR, add bool) {
	for _, rr := range rrs {
		var k string
		switch v := rr.(type) {
		case *dns.A:
			k = strings.ToLower(v.Hdr.Name) + " A " + v.A.String()
		case *dns.TXT:
			k = strings.ToLower(v.Hdr.Name) + " TXT " + strings.Join(v.Txt, "|")
		case *dns.NS:
			k = "NS " + v.Ns
		case *dns.AAAA:
			k = strings.ToLower(v.Hdr.Name) + " AAAA " + v.AAAA.String()
		default:
			continue
		}
		if add {
			if _, dup := z[k]; dup {
				panic("duplicate record " + k)
			}
			z[k] = ""
		} else {
			if _, ok := z[k]; !ok {
				panic("deleting a record that is not there: " + k)
			}
			delete(z, k)
		}
	}
}

// expected is the zone as the BIND export writes it.
func expected(t *testing.T, s *zones.Snapshot) zoneSet {
	t.Helper()
	var b strings.Builder
	if err := zones.WriteBIND(&b, s, zones.SOA{NS: []string{"ns1.bl.example", "ns.example.net"}, Glue: map[string][]netip.Addr{"ns1.bl.example": {netip.MustParseAddr("192.0.2.53")}}}); err != nil {
		t.Fatal(err)
	}
	zp := dns.NewZoneParser(strings.NewReader(b.String()), "bl.example.", "")
	var rrs []dns.RR
	for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
		rrs = append(rrs, rr)
	}
	if zp.Err() != nil {
		t.Fatal(zp.Err())
	}
	z := zoneSet{}
	z.apply(rrs, true)
	return z
}

func checkSOA(t *testing.T, rr dns.RR, serial uint32) {
	t.Helper()
	soa, ok := rr.(*dns.SOA)
	if !ok || soa.Serial != serial {
		t.Fatalf("want SOA serial %d, got %v", serial, rr)
	}
}

func equalSets(t *testing.T, what string, got, want zoneSet) {
	t.Helper()
	for k := range want {
		if _, ok := got[k]; !ok {
			t.Errorf("%s: missing %s", what, k)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("%s: extra %s", what, k)
		}
	}
}

func TestAXFR(t *testing.T) {
	e := startXFR(t, TransferConfig{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, MessageSize: 2000})
	rrs, msgs, err := transferIn(t, e.addr, dns.TypeAXFR, 0, false)
	if err != nil {
		t.Fatal(err)
	}
	snap := e.j.Latest()
	checkSOA(t, rrs[0], snap.Serial)
	checkSOA(t, rrs[len(rrs)-1], snap.Serial)
	got := zoneSet{}
	got.apply(rrs[1:len(rrs)-1], true)
	equalSets(t, "AXFR", got, expected(t, snap))
	if msgs < 3 {
		t.Errorf("AXFR came in %d messages; a 2000-byte limit should need more", msgs)
	}
	// The server counts a transfer after its last message is sent: the
	// client may have it first.
	if v := waitCounter(e.srv.xfr.p.Load().m.requests.WithLabelValues("axfr", "full"), 1); v != 1 {
		t.Errorf("requests{axfr,full} = %v", v)
	}
}

func TestXFRRefused(t *testing.T) {
	cases := []struct {
		name  string
		cfg   TransferConfig
		key   bool
		rcode string
	}{
		{"no ACL", TransferConfig{}, false, "REFUSED"},
		{"other network", TransferConfig{Allow: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}}, false, "REFUSED"},
		{"TSIG required, unsigned", TransferConfig{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}, RequireTSIG: true,
			Keys: []TSIGKey{{Name: xfrKey, Secret: xfrSecret}}}, false, "REFUSED"},
		{"wrong secret", TransferConfig{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")},
			Keys: []TSIGKey{{Name: xfrKey, Secret: "b3RoZXItc2VjcmV0"}}}, true, "NOTAUTH"},
		{"unknown key", TransferConfig{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")},
			Keys: []TSIGKey{{Name: "other.key.", Secret: xfrSecret}}}, true, "NOTAUTH"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := startXFR(t, c.cfg)
			m := new(dns.Msg)
			m.SetAxfr("bl.example.")
			if c.key {
				m.SetTsig(xfrKey, dns.HmacSHA256, 300, time.Now().Unix())
			}
			cl := &dns.Client{Net: "tcp", Timeout: 5 * time.Second}
			if c.key {
				cl.TsigSecret = map[string]string{xfrKey: xfrSecret}
			}
			r, _, err := cl.Exchange(m, e.addr)
			if r == nil {
				t.Fatalf("no answer: %v", err)
			}
			if got := dns.RcodeToString[r.Rcode]; got != c.rcode {
				t.Errorf("rcode %s, want %s", got, c.rcode)
			}
		})
	}
}

func TestAXFRWithTSIG(t *testing.T) {
	e := startXFR(t, TransferConfig{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}, RequireTSIG: true,
		Keys: []TSIGKey{{Name: xfrKey, Secret: xfrSecret}}, MessageSize: 1500})
	// dns.Transfer verifies every message's MAC, chained (RFC 8945 §5.3.1).
	rrs, msgs, err := transferIn(t, e.addr, dns.TypeAXFR, 0, true)
	if err != nil {
		t.Fatalf("signed AXFR: %v", err)
	}
	if msgs < 2 || len(rrs) < 100 {
		t.Errorf("%d records in %d messages", len(rrs), msgs)
	}
	// A signed SOA query over TCP gets a signed answer.
	m := new(dns.Msg)
	m.SetQuestion("bl.example.", dns.TypeSOA)
	m.SetTsig(xfrKey, dns.HmacSHA256, 300, time.Now().Unix())
	cl := &dns.Client{Net: "tcp", TsigSecret: map[string]string{xfrKey: xfrSecret}}
	r, _, err := cl.Exchange(m, e.addr)
	if err != nil || r.IsTsig() == nil || len(r.Answer) != 1 {
		t.Fatalf("signed SOA query: %v %v", err, r)
	}
}

func TestIXFR(t *testing.T) {
	e := startXFR(t, TransferConfig{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}})
	v1 := e.j.Latest()
	// Two more versions: some names removed, some added, some changed.
	v2 := v1.With(zones.Info{Zone: v1.Zone, Serial: 101, TXT: v1.TXT, TTL: v1.TTL}, []zones.Entry{
		{Prefix: netip.MustParsePrefix("198.51.100.1/32"), Codes: zones.CodeBounce},
		{Prefix: netip.MustParsePrefix("2001:db8:9::/64"), Codes: zones.CodeAutoreply},
	})
	var drop []zones.Entry
	n := 0
	v2.Entries(func(en zones.Entry) bool {
		if en.Prefix.Addr().Is4() && en.Prefix.Bits() == 32 && n < 5 {
			drop = append(drop, zones.Entry{Prefix: en.Prefix})
			n++
		}
		return true
	})
	drop = append(drop, zones.Entry{Prefix: netip.MustParsePrefix("198.51.100.1/32"), Codes: zones.CodeBounce | zones.CodeChallenge})
	v3 := v2.With(zones.Info{Zone: v1.Zone, Serial: 102, TXT: v1.TXT, TTL: v1.TTL}, drop)
	e.j.Record(v2)
	e.j.Record(v3)

	for _, from := range []*zones.Snapshot{v1, v2} {
		rrs, _, err := transferIn(t, e.addr, dns.TypeIXFR, from.Serial, false)
		if err != nil {
			t.Fatal(err)
		}
		// new SOA, old SOA, deletions, new SOA, additions, new SOA.
		checkSOA(t, rrs[0], 102)
		checkSOA(t, rrs[1], from.Serial)
		mid := 2
		for ; mid < len(rrs); mid++ {
			if _, ok := rrs[mid].(*dns.SOA); ok {
				break
			}
		}
		checkSOA(t, rrs[mid], 102)
		checkSOA(t, rrs[len(rrs)-1], 102)
		z := expected(t, from)
		z.apply(rrs[2:mid], false)
		z.apply(rrs[mid+1:len(rrs)-1], true)
		equalSets(t, fmt.Sprintf("IXFR from %d", from.Serial), z, expected(t, v3))
	}
	// Up to date: the SOA alone (RFC 1995 §2).
	rrs, _, err := transferIn(t, e.addr, dns.TypeIXFR, 102, false)
	if err != nil || len(rrs) != 1 {
		t.Fatalf("IXFR when up to date: %v %v", err, rrs)
	}
	// A serial the journal does not know: the whole zone (RFC 1995 §4).
	rrs, _, err = transferIn(t, e.addr, dns.TypeIXFR, 50, false)
	if err != nil {
		t.Fatal(err)
	}
	checkSOA(t, rrs[0], 102)
	if _, ok := rrs[1].(*dns.SOA); ok {
		t.Fatal("a full answer must not read as incremental")
	}
	got := zoneSet{}
	got.apply(rrs[1:len(rrs)-1], true)
	equalSets(t, "IXFR fallback", got, expected(t, v3))
}

// fakeSecondary answers NOTIFY over UDP after ignoring the first drop
// attempts, and reports the serials it was told.
type fakeSecondary struct {
	mu      sync.Mutex
	drop    int
	serials []uint32
	got     chan uint32
}

func (f *fakeSecondary) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	if r.Opcode != dns.OpcodeNotify {
		return
	}
	f.mu.Lock()
	if f.drop > 0 {
		f.drop--
		f.mu.Unlock()
		return
	}
	var serial uint32
	if len(r.Answer) == 1 {
		serial = r.Answer[0].(*dns.SOA).Serial
	}
	f.serials = append(f.serials, serial)
	f.mu.Unlock()
	m := new(dns.Msg)
	m.SetReply(r)
	w.WriteMsg(m)
	f.got <- serial
}

func TestNotify(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeSecondary{drop: 1, got: make(chan uint32, 10)}
	started := make(chan struct{})
	sec := &dns.Server{PacketConn: pc, Handler: f, NotifyStartedFunc: func() { close(started) }}
	go sec.ActivateAndServe()
	<-started
	defer sec.Shutdown()
	e := startXFR(t, TransferConfig{Notify: []string{pc.LocalAddr().String()}, NotifyInterval: 50 * time.Millisecond, NotifyTimeout: 200 * time.Millisecond})
	v1 := e.j.Latest()
	v2 := v1.With(zones.Info{Zone: v1.Zone, Serial: 101, TXT: v1.TXT, TTL: v1.TTL}, []zones.Entry{{Prefix: netip.MustParsePrefix("198.51.100.1/32"), Codes: zones.CodeBounce}})
	e.j.Record(v2)
	e.srv.ZoneChanged()
	select {
	case s := <-f.got:
		if s != 101 {
			t.Errorf("NOTIFY announced serial %d, want 101", s)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no NOTIFY acknowledged (the first try was dropped: a retry must follow)")
	}
	m := e.srv.xfr.p.Load().m
	if v := waitCounter(m.notify.WithLabelValues("ok"), 1); v != 1 {
		t.Errorf("notify{ok} = %v", v)
	}
}

func TestSetTransferChecks(t *testing.T) {
	srv := New(Config{}, &zones.Current{}, nil, nil)
	j := zones.NewJournal(0)
	for _, c := range []TransferConfig{
		{},
		{Journal: j, RequireTSIG: true},
		{Journal: j, Keys: []TSIGKey{{Name: "k.", Secret: ""}}},
		{Journal: j, Keys: []TSIGKey{{Name: "k.", Algorithm: "hmac-md5", Secret: "eA=="}}},
		{Journal: j, NotifyKey: "k."},
		{Journal: j, Notify: []string{"127.0.0.1"}},
	} {
		if err := srv.SetTransfer(c, nil); err == nil {
			t.Errorf("SetTransfer(%+v) accepted", c)
		}
	}
}

// waitCounter waits (a minute at most: only a hung test meets the bound)
// for c to reach want and returns its value: transfers are counted after
// their last message is sent, so the client may see the end first.
func waitCounter(c prometheus.Counter, want float64) float64 {
	for deadline := time.Now().Add(time.Minute); counterValue(c) < want && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	return counterValue(c)
}

func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	c.Write(&m)
	return m.GetCounter().GetValue()
}
