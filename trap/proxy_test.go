package trap

import (
	"bufio"
	"bytes"
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func TestParseProxyHeader(t *testing.T) {
	ap := netip.MustParseAddrPort
	for _, c := range []struct {
		in   string
		want proxyHeader // zero Version: an error is expected
	}{
		{"PROXY TCP4 192.0.2.7 198.51.100.1 40000 25\r\n", proxyHeader{Version: 1, Src: ap("192.0.2.7:40000"), Dst: ap("198.51.100.1:25")}},
		{"PROXY TCP6 2001:db8::7 2001:db8::1 65535 0\r\n", proxyHeader{Version: 1, Src: ap("[2001:db8::7]:65535"), Dst: ap("[2001:db8::1]:0")}},
		{"PROXY UNKNOWN\r\n", proxyHeader{Version: 1, Local: true}},
		{"PROXY UNKNOWN ffff:f...f ffff:f...f 65535 65535\r\n", proxyHeader{Version: 1, Local: true}},
		{"PROXY TCP4 192.0.2.7 198.51.100.1 40000 25\n", proxyHeader{}},    // LF alone
		{"PROXY TCP4 2001:db8::7 198.51.100.1 1 2\r\n", proxyHeader{}},     // family mismatch
		{"PROXY TCP6 192.0.2.7 2001:db8::1 1 2\r\n", proxyHeader{}},        // family mismatch
		{"PROXY TCP4 192.0.2.7 198.51.100.1 65536 25\r\n", proxyHeader{}},  // port range
		{"PROXY TCP4 192.0.2.7 198.51.100.1 025 25\r\n", proxyHeader{}},    // leading zero
		{"PROXY TCP4 192.0.2.7 198.51.100.1 -1 25\r\n", proxyHeader{}},     // sign
		{"PROXY TCP4 192.0.2.7  198.51.100.1 1 25\r\n", proxyHeader{}},     // double space
		{"PROXY TCP4 192.0.2.7 198.51.100.1 1\r\n", proxyHeader{}},         // missing field
		{"PROXY UDP4 192.0.2.7 198.51.100.1 1 2\r\n", proxyHeader{}},       // not TCP
		{"PROXY TCP6 fe80::1%eth0 fe80::2 1 2\r\n", proxyHeader{}},         // zone
		{"PROXY TCP4 " + strings.Repeat("1", 120) + "\r\n", proxyHeader{}}, // over 107 bytes
		{"EHLO mx.example.net\r\n", proxyHeader{}},
		{"", proxyHeader{}},
		{string(appendProxyV2(nil, proxyHeader{Src: ap("192.0.2.7:40000"), Dst: ap("198.51.100.1:25")}, nil)),
			proxyHeader{Version: 2, Src: ap("192.0.2.7:40000"), Dst: ap("198.51.100.1:25")}},
		{string(appendProxyV2(nil, proxyHeader{Src: ap("[2001:db8::7]:1"), Dst: ap("[2001:db8::1]:25")}, []byte{0x04, 0, 1, 'x'})),
			proxyHeader{Version: 2, Src: ap("[2001:db8::7]:1"), Dst: ap("[2001:db8::1]:25")}},
		{string(appendProxyV2(nil, proxyHeader{Local: true}, nil)), proxyHeader{Version: 2, Local: true}},
		{string(proxyV2Sig) + "\x31\x11\x00\x0c" + strings.Repeat("\x00", 12), proxyHeader{}},  // version 3
		{string(proxyV2Sig) + "\x22\x11\x00\x0c" + strings.Repeat("\x00", 12), proxyHeader{}},  // command 2
		{string(proxyV2Sig) + "\x21\x12\x00\x0c" + strings.Repeat("\x00", 12), proxyHeader{}},  // DGRAM
		{string(proxyV2Sig) + "\x21\x31\x00\xd8" + strings.Repeat("\x00", 216), proxyHeader{}}, // AF_UNIX
		{string(proxyV2Sig) + "\x21\x11\x00\x08" + strings.Repeat("\x00", 8), proxyHeader{}},   // short block
		{string(proxyV2Sig) + "\x21\x11\x00\x0c" + strings.Repeat("\x00", 5), proxyHeader{}},   // truncated
		{string(proxyV2Sig) + "\x21\x11\xff\xff", proxyHeader{}},                               // over the body limit
		{"\r\n\r\n\x00\r\nQUIX\n\x21\x11\x00\x00", proxyHeader{}},                              // bad signature
	} {
		h, err := readProxyHeader(bufio.NewReader(strings.NewReader(c.in)))
		if c.want.Version == 0 {
			if err == nil || !errors.Is(err, ErrProxyHeader) {
				t.Errorf("%q: got %+v, %v; want ErrProxyHeader", c.in, h, err)
			}
			continue
		}
		if err != nil || h != c.want {
			t.Errorf("%q: got %+v, %v; want %+v", c.in, h, err, c.want)
		}
	}
}

// The reader never consumes past the header: what follows stays for SMTP.
func TestProxyHeaderLeavesRest(t *testing.T) {
	for _, hdr := range [][]byte{
		appendProxyV1(nil, proxyHeader{Src: netip.MustParseAddrPort("192.0.2.7:1"), Dst: netip.MustParseAddrPort("192.0.2.8:25")}),
		appendProxyV2(nil, proxyHeader{Src: netip.MustParseAddrPort("192.0.2.7:1"), Dst: netip.MustParseAddrPort("192.0.2.8:25")}, nil),
	} {
		br := bufio.NewReader(bytes.NewReader(append(hdr, "EHLO x\r\n"...)))
		if _, err := readProxyHeader(br); err != nil {
			t.Fatal(err)
		}
		rest, _ := br.ReadString('\n')
		if rest != "EHLO x\r\n" {
			t.Errorf("rest %q", rest)
		}
	}
}

// FuzzProxyHeader: never panics; whatever parses re-encodes to a header that
// parses to the same thing.
func FuzzProxyHeader(f *testing.F) {
	f.Add([]byte("PROXY TCP4 192.0.2.7 198.51.100.1 40000 25\r\n"))
	f.Add([]byte("PROXY TCP6 2001:db8::7 2001:db8::1 1 2\r\n"))
	f.Add([]byte("PROXY UNKNOWN\r\n"))
	f.Add(appendProxyV2(nil, proxyHeader{Src: netip.MustParseAddrPort("192.0.2.7:1"), Dst: netip.MustParseAddrPort("192.0.2.8:25")}, []byte{1, 0, 2, 'h', '2'}))
	f.Add(appendProxyV2(nil, proxyHeader{Src: netip.MustParseAddrPort("[::ffff:192.0.2.7]:1"), Dst: netip.MustParseAddrPort("[2001:db8::1]:25")}, nil))
	f.Add(appendProxyV2(nil, proxyHeader{Local: true}, nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := readProxyHeader(bufio.NewReader(bytes.NewReader(b)))
		if err != nil {
			if !errors.Is(err, ErrProxyHeader) {
				t.Fatalf("error not wrapping ErrProxyHeader: %v", err)
			}
			return
		}
		if !h.Local && (!h.Src.Addr().IsValid() || !h.Dst.Addr().IsValid() || h.Src.Addr().Is4() != h.Dst.Addr().Is4() && h.Version == 1) {
			t.Fatalf("parsed header without addresses: %+v", h)
		}
		var enc []byte
		if h.Version == 1 {
			enc = appendProxyV1(nil, h)
		} else {
			if !h.Local && h.Src.Addr().Is4() != h.Dst.Addr().Is4() {
				return // v2 carries one family for both; mixed comes only from v4-mapped input
			}
			enc = appendProxyV2(nil, h, nil)
		}
		h2, err := readProxyHeader(bufio.NewReader(bytes.NewReader(enc)))
		if err != nil || h2 != h {
			t.Fatalf("round trip of %+v: %+v, %v", h, h2, err)
		}
	})
}

// Integration: PROXY headers over real sockets, from trusted and untrusted
// peers.
func TestProxyProtocol(t *testing.T) {
	src := netip.MustParseAddrPort("192.0.2.7:40000")
	dst := netip.MustParseAddrPort("198.51.100.1:25")
	v1 := appendProxyV1(nil, proxyHeader{Src: src, Dst: dst})
	v2 := appendProxyV2(nil, proxyHeader{Src: src, Dst: dst}, []byte{0x04, 0, 3, 'a', 'b', 'c'})
	v2local := appendProxyV2(nil, proxyHeader{Local: true}, nil)
	trusted := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/30")} // 127.0.0.1-3; 127.0.0.9 is not
	for _, c := range []struct {
		name   string
		local  string
		header []byte
		split  bool   // header and EHLO in separate writes (else one)
		wantIP string // evidence address; "" = the session is refused
		reply  string // first reply after the header
	}{
		{"trusted v1", "127.0.0.2", v1, false, "192.0.2.7", "220 "},
		{"trusted v1 split", "127.0.0.2", v1, true, "192.0.2.7", "220 "},
		{"trusted v2", "127.0.0.2", v2, true, "192.0.2.7", "220 "},
		{"trusted v2 LOCAL uses the TCP peer", "127.0.0.2", v2local, true, "127.0.0.2", "220 "},
		{"trusted without header", "127.0.0.2", []byte("EHLO mx.example.net\r\n"), true, "", "EOF"},
		{"trusted with a broken header", "127.0.0.2", []byte("PROXY TCP4 192.0.2.7 x 1 2\r\n"), true, "", "EOF"},
		{"untrusted v1 spoof", "127.0.0.9", v1, true, "", "421 4.7.0"},
		{"untrusted v2 spoof", "127.0.0.9", v2, true, "", "421 4.7.0"},
		{"untrusted plain SMTP", "127.0.0.9", nil, true, "127.0.0.9", "220 "},
	} {
		t.Run(c.name, func(t *testing.T) {
			sink := &FakeSink{}
			s := startTrap(t, Config{ProxyTrusted: trusted}, sink)
			cl := dialFrom(t, s.Addr().String(), c.local)
			isTrusted := s.trusted(netip.MustParseAddr(c.local))
			if !isTrusted { // the trap speaks first to a direct client
				if got := cl.reply(); !strings.HasPrefix(got, "220 ") {
					t.Fatalf("greeting %q", got)
				}
			}
			cl.send(string(c.header))
			if !c.split && c.wantIP != "" {
				cl.send("EHLO mx.example.net\r\n")
			}
			if isTrusted || c.wantIP == "" {
				if got := cl.reply(); !strings.HasPrefix(got, c.reply) {
					t.Fatalf("after header: %q, want %q", got, c.reply)
				}
			}
			if c.wantIP == "" {
				if got := cl.reply(); got != "EOF" {
					t.Fatalf("connection not closed: %q", got)
				}
				waitIdle(t, s)
				if len(sink.Snapshot()) != 0 {
					t.Fatal("evidence recorded for a refused session")
				}
				return
			}
			if c.split {
				cl.want("EHLO mx.example.net", "250")
			} else if got := cl.reply(); !strings.HasPrefix(got, "250") {
				t.Fatalf("EHLO: %q", got)
			}
			if got := cl.message("", "x@trap.blowback.test", testDSN); !strings.HasPrefix(got, "250") {
				t.Fatalf("DATA: %q", got)
			}
			evs := waitEvents(t, sink, 1)
			if evs[0].ClientIP != netip.MustParseAddr(c.wantIP) {
				t.Errorf("evidence names %v, want %s", evs[0].ClientIP, c.wantIP)
			}
			noPanics(t, s)
		})
	}
}

// Per-client limits apply to the address a trusted proxy reports, not to
// the proxy.
func TestProxyPerClientLimit(t *testing.T) {
	s := startTrap(t, Config{ProxyTrusted: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}, MaxConnsPerIP: 1}, nil)
	hdr := func(src string) string {
		return string(appendProxyV1(nil, proxyHeader{Src: netip.MustParseAddrPort(src), Dst: netip.MustParseAddrPort("198.51.100.1:25")}))
	}
	a := dialFrom(t, s.Addr().String(), "127.0.0.1")
	a.send(hdr("192.0.2.7:1"))
	if got := a.reply(); !strings.HasPrefix(got, "220 ") {
		t.Fatalf("first client: %q", got)
	}
	b := dialFrom(t, s.Addr().String(), "127.0.0.1")
	b.send(hdr("192.0.2.8:1"))
	if got := b.reply(); !strings.HasPrefix(got, "220 ") {
		t.Fatalf("second client through the same proxy: %q", got)
	}
	c := dialFrom(t, s.Addr().String(), "127.0.0.1")
	c.send(hdr("192.0.2.7:2"))
	if got := c.reply(); !strings.HasPrefix(got, "421 4.7.0") {
		t.Fatalf("first client again: %q", got)
	}
}
