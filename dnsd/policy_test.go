package dnsd

import (
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// recorder is a dns.ResponseWriter that keeps the answer (CoreDNS's
// dnstest.Recorder idea), from a given client over TCP.
type recorder struct {
	src net.Addr
	msg *dns.Msg
}

func (r *recorder) LocalAddr() net.Addr         { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 53} }
func (r *recorder) RemoteAddr() net.Addr        { return r.src }
func (r *recorder) WriteMsg(m *dns.Msg) error   { r.msg = m; return nil }
func (r *recorder) Write(b []byte) (int, error) { return len(b), nil }
func (r *recorder) Close() error                { return nil }
func (r *recorder) TsigStatus() error           { return nil }
func (r *recorder) TsigTimersOnly(bool)         {}
func (r *recorder) Hijack()                     {}
func (r *recorder) Network() string             { return "tcp" }

// ask sends m from src through the UDP handler (fast and slow path) and
// through ServeDNS (TCP), and returns both answers.
func ask(t *testing.T, s *Server, src string, m *dns.Msg) (udp, tcp *dns.Msg) {
	t.Helper()
	a := netip.MustParseAddr(src)
	h := newPacketHandler(s)
	resp := h.handle(pack(t, m), a, make([]byte, 0, bufSize), time.Now())
	if resp == nil {
		t.Fatalf("no UDP answer to %v", m.Question)
	}
	udp = new(dns.Msg)
	if err := udp.Unpack(resp); err != nil {
		t.Fatal(err)
	}
	rec := &recorder{src: net.TCPAddrFromAddrPort(netip.AddrPortFrom(a, 5353))}
	s.ServeDNS(rec, m)
	if rec.msg == nil {
		t.Fatalf("no TCP answer to %v", m.Question)
	}
	return udp, rec.msg
}

// ede returns the Extended DNS Error of m, if any.
func ede(m *dns.Msg) *dns.EDNS0_EDE {
	if opt := m.IsEdns0(); opt != nil {
		for _, o := range opt.Option {
			if e, ok := o.(*dns.EDNS0_EDE); ok {
				return e
			}
		}
	}
	return nil
}

func TestPolicy(t *testing.T) {
	resolvers := []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24"), netip.MustParsePrefix("2001:db8:53::/48")}
	keys, _ := testKeys(t, KeyInfo{Key: "goodkey123", Budget: 0}, KeyInfo{Key: "smallkey12", Budget: 1})
	listed := v4name("192.0.2.1")
	type want struct {
		rcode int
		a     string // the A record, "" for none
		txt   string // part of the TXT, "" for none
		ede   string // part of the EDE text, "" for none
	}
	cases := []struct {
		name   string
		cfg    Config
		src    string
		q      *dns.Msg
		repeat int // asked this many times first (budgets)
		want   want
	}{
		{"off: public resolver answered", Config{}, "203.0.113.8", query(listed, dns.TypeA, edns(1232, false)), 0,
			want{dns.RcodeSuccess, "127.0.0.2", "", ""}},
		{"resolver refused", Config{Policy: Policy{Refuse: resolvers}}, "203.0.113.8", query(listed, dns.TypeA, edns(1232, false)), 0,
			want{dns.RcodeRefused, "", "", "public resolvers are refused; query from your own resolver (seen from 203.0.113.8)"}},
		{"resolver refused, no EDNS: no EDE", Config{Policy: Policy{Refuse: resolvers}}, "203.0.113.8", query(listed, dns.TypeA), 0,
			want{dns.RcodeRefused, "", "", ""}},
		{"resolver refused, unlisted name too", Config{Policy: Policy{Refuse: resolvers}}, "2001:db8:53::1", query(v4name("192.0.2.2"), dns.TypeA, edns(1232, false)), 0,
			want{dns.RcodeRefused, "", "", "seen from 2001:db8:53::1"}},
		{"resolver gets the apex", Config{Policy: Policy{Refuse: resolvers}}, "203.0.113.8", query(zone+".", dns.TypeSOA), 0,
			want{dns.RcodeSuccess, "", "", ""}},
		{"other client answered", Config{Policy: Policy{Refuse: resolvers}}, "198.18.0.1", query(listed, dns.TypeA, edns(1232, false)), 0,
			want{dns.RcodeSuccess, "127.0.0.2", "", ""}},
		{"resolver code", Config{Policy: Policy{Refuse: resolvers, Answer: AnswerCode}}, "203.0.113.8", query(listed, dns.TypeA, edns(1232, false)), 0,
			want{dns.RcodeSuccess, "127.255.255.254", "", "seen from 203.0.113.8"}},
		{"resolver code, TXT", Config{Policy: Policy{Refuse: resolvers, Answer: AnswerCode}}, "203.0.113.8", query(listed, dns.TypeTXT), 0,
			want{dns.RcodeSuccess, "", "public resolvers are refused", ""}},
		{"resolver code, AAAA: NODATA", Config{Policy: Policy{Refuse: resolvers, Answer: AnswerCode}}, "203.0.113.8", query(listed, dns.TypeAAAA), 0,
			want{dns.RcodeSuccess, "", "", ""}},
		{"exempt", Config{Policy: Policy{Refuse: resolvers, Exempt: []netip.Prefix{netip.MustParsePrefix("203.0.113.8/32")}}}, "203.0.113.8", query(listed, dns.TypeA), 0,
			want{dns.RcodeSuccess, "127.0.0.2", "", ""}},
		{"within budget", Config{Policy: Policy{Budget: 4}}, "198.18.0.1", query(listed, dns.TypeA), 1,
			want{dns.RcodeSuccess, "127.0.0.2", "", ""}},
		{"over budget", Config{Policy: Policy{Budget: 3}}, "198.18.0.1", query(listed, dns.TypeA, edns(1232, false)), 3,
			want{dns.RcodeRefused, "", "", "query budget exceeded (seen from 198.18.0.1)"}},
		{"over budget, code", Config{Policy: Policy{Budget: 3, Answer: AnswerCode}}, "198.18.0.1", query(listed, dns.TypeA, edns(1232, false)), 3,
			want{dns.RcodeSuccess, "127.255.255.255", "", "query budget exceeded"}},
		{"keys on, not required: plain name", Config{Keys: keys}, "198.18.0.1", query(listed, dns.TypeA), 0,
			want{dns.RcodeSuccess, "127.0.0.2", "", ""}},
		{"keyed name, good key", Config{Keys: keys, RequireKey: true}, "198.18.0.1", query(keyedName("192.0.2.1", "goodkey123"), dns.TypeA, edns(1232, false)), 0,
			want{dns.RcodeSuccess, "127.0.0.2", "", ""}},
		{"keyed name, good key, any case", Config{Keys: keys, RequireKey: true}, "198.18.0.1", query(keyedName("192.0.2.1", "GoodKey123"), dns.TypeA), 0,
			want{dns.RcodeSuccess, "127.0.0.2", "", ""}},
		{"keyed name, good key, TXT", Config{Keys: keys, RequireKey: true}, "198.18.0.1", query(keyedName("192.0.2.1", "goodkey123"), dns.TypeTXT), 0,
			want{dns.RcodeSuccess, "", "Listed: 192.0.2.1", ""}},
		{"keyed name, good key, IPv6", Config{Keys: keys, RequireKey: true}, "198.18.0.1", query(keyedName("2001:db8:1:2::5", "goodkey123"), dns.TypeA), 0,
			want{dns.RcodeSuccess, "127.0.0.2", "", ""}},
		{"keyed name, good key, unlisted", Config{Keys: keys, RequireKey: true}, "198.18.0.1", query(keyedName("192.0.2.2", "goodkey123"), dns.TypeA), 0,
			want{dns.RcodeNameError, "", "", ""}},
		{"key required", Config{Keys: keys, RequireKey: true, Policy: Policy{Answer: AnswerCode}}, "198.18.0.1", query(listed, dns.TypeA, edns(1232, false)), 0,
			want{dns.RcodeSuccess, "127.255.255.253", "", "needs a key"}},
		{"unknown key", Config{Keys: keys, Policy: Policy{Answer: AnswerCode}}, "198.18.0.1", query(keyedName("192.0.2.1", "nosuchkey1"), dns.TypeA, edns(1232, false)), 0,
			want{dns.RcodeSuccess, "127.255.255.253", "", "unknown key (seen from 198.18.0.1)"}},
		{"unknown key, refused", Config{Keys: keys}, "198.18.0.1", query(keyedName("192.0.2.1", "nosuchkey1"), dns.TypeA), 0,
			want{dns.RcodeRefused, "", "", ""}},
		{"key over its budget", Config{Keys: keys, Policy: Policy{Answer: AnswerCode}}, "198.18.0.1", query(keyedName("192.0.2.1", "smallkey12"), dns.TypeA, edns(1232, false)), 1,
			want{dns.RcodeSuccess, "127.255.255.253", "", "key over its query budget"}},
		{"key name alone: NODATA", Config{Keys: keys, RequireKey: true}, "198.18.0.1", query("goodkey123."+zone+".", dns.TypeA), 0,
			want{dns.RcodeSuccess, "", "", ""}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cur := serving(testSnapshot())
			s := New(c.cfg, cur, nil, nil)
			if err := s.cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			for range c.repeat {
				ask(t, s, c.src, c.q)
			}
			udp, tcp := ask(t, s, c.src, c.q)
			for _, got := range []*dns.Msg{udp, tcp} {
				if got.Rcode != c.want.rcode {
					t.Errorf("rcode %s, want %s\n%v", dns.RcodeToString[got.Rcode], dns.RcodeToString[c.want.rcode], got)
				}
				var a, txt string
				for _, rr := range got.Answer {
					switch v := rr.(type) {
					case *dns.A:
						if a == "" {
							a = v.A.String()
						}
					case *dns.TXT:
						txt = strings.Join(v.Txt, "")
					}
				}
				if a != c.want.a {
					t.Errorf("A %q, want %q", a, c.want.a)
				}
				if c.want.txt == "" && txt != "" || !strings.Contains(txt, c.want.txt) {
					t.Errorf("TXT %q, want %q", txt, c.want.txt)
				}
				e := ede(got)
				switch {
				case c.want.ede == "" && e != nil:
					t.Errorf("unexpected EDE %v", e)
				case c.want.ede != "" && (e == nil || e.InfoCode != dns.ExtendedErrorCodeProhibited || !strings.Contains(e.ExtraText, c.want.ede)):
					t.Errorf("EDE %v, want Prohibited with %q", e, c.want.ede)
				}
			}
		})
	}
	// Counts: UDP and TCP alike. smallkey12 (budget 1) was answered once
	// and refused three times.
	for _, st := range keys.Top(0) {
		if st.Key == "smallkey12" && (st.Queries != 1 || st.Refused != 3) {
			t.Errorf("smallkey12 counts %+v", st)
		}
		if st.Key == "goodkey123" && st.Queries != 12 {
			t.Errorf("goodkey123 counted %d queries, want 12 (6 cases, UDP and TCP)", st.Queries)
		}
	}
}

func TestParsePrefixList(t *testing.T) {
	got, err := ParsePrefixList(strings.NewReader("# public resolvers\n8.8.8.0/24\n  9.9.9.9  # quad9\n\n2001:4860::/32\n::ffff:1.1.1.0/120\n1.2.3.4/16\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"8.8.8.0/24", "9.9.9.9/32", "2001:4860::/32", "1.1.1.0/24", "1.2.0.0/16"}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i].String() != want[i] {
			t.Errorf("line %d: %v, want %s", i, got[i], want[i])
		}
	}
	for _, bad := range []string{"8.8.8.0/33\n", "resolver\n", "::ffff:1.2.3.4/64\n"} {
		if _, err := ParsePrefixList(strings.NewReader(bad)); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}
