//go:build linux

package dnsd

import (
	"context"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/miekg/dns"
	"golang.org/x/sys/unix"
)

func TestReplyControl(t *testing.T) {
	hl := unix.CmsgLen(0)
	r := make([]byte, unix.CmsgSpace(unix.SizeofInet4Pktinfo))
	h := (*unix.Cmsghdr)(unsafe.Pointer(&r[0]))
	h.Level, h.Type = unix.IPPROTO_IP, unix.IP_PKTINFO
	h.SetLen(unix.CmsgLen(unix.SizeofInet4Pktinfo))
	in := (*unix.Inet4Pktinfo)(unsafe.Pointer(&r[hl]))
	in.Ifindex, in.Addr, in.Spec_dst = 3, [4]byte{192, 0, 2, 53}, [4]byte{192, 0, 2, 1}
	w := make([]byte, ctrlSize)
	if n := replyControl(r, w); n != len(r) {
		t.Fatalf("IPv4 control length %d", n)
	}
	out := (*unix.Inet4Pktinfo)(unsafe.Pointer(&w[hl]))
	if out.Spec_dst != [4]byte{192, 0, 2, 53} || out.Ifindex != 0 || out.Addr != [4]byte{} {
		t.Errorf("IPv4 reply pktinfo %+v: want the query's destination as the source", *out)
	}

	r6 := make([]byte, unix.CmsgSpace(unix.SizeofInet6Pktinfo))
	h = (*unix.Cmsghdr)(unsafe.Pointer(&r6[0]))
	h.Level, h.Type = unix.IPPROTO_IPV6, unix.IPV6_PKTINFO
	h.SetLen(unix.CmsgLen(unix.SizeofInet6Pktinfo))
	in6 := (*unix.Inet6Pktinfo)(unsafe.Pointer(&r6[hl]))
	in6.Addr, in6.Ifindex = netip.MustParseAddr("2001:db8::53").As16(), 2
	if n := replyControl(r6, w); n != len(r6) {
		t.Fatalf("IPv6 control length %d", n)
	}
	out6 := (*unix.Inet6Pktinfo)(unsafe.Pointer(&w[hl]))
	if out6.Addr != in6.Addr || out6.Ifindex != 2 {
		t.Errorf("IPv6 reply pktinfo %+v", *out6)
	}
	if n := replyControl(r[:5], w); n != 0 {
		t.Errorf("short control: %d", n)
	}
	if n := replyControl(nil, w); n != 0 {
		t.Errorf("no control: %d", n)
	}
}

// A socket with packet info on (as a wildcard bind has) still answers.
func TestPktinfoSocket(t *testing.T) {
	cur := serving(testSnapshot())
	s := New(Config{}, cur, nil, nil)
	conns, err := listenUDP("127.0.0.1:0", 1, 4<<20)
	if err != nil {
		t.Fatal(err)
	}
	w := newUDPWorker(s, conns[0])
	w.usePktinfo()
	if !w.pktinfo {
		t.Fatal("IP_PKTINFO not enabled")
	}
	done := make(chan struct{})
	go func() { w.run(); close(done) }()
	defer func() { w.close(); <-done }()
	c, err := net.Dial("udp", conns[0].LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	dc := &dns.Conn{Conn: c}
	for i := 0; i < 3; i++ {
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if err := dc.WriteMsg(query(v4name("192.0.2.1"), dns.TypeA)); err != nil {
			t.Fatal(err)
		}
		r, err := dc.ReadMsg()
		if err != nil || len(r.Answer) != 2 {
			t.Fatalf("answer %v, %v", r, err)
		}
	}
}

// TestQueueDelay: every UDP query read is timed from its kernel receive
// timestamp (blowback_dns_udp_queue_delay_seconds).
func TestQueueDelay(t *testing.T) {
	_, addr, reg := startServer(t, Config{}, testSnapshot())
	for range 5 {
		exchange(t, addr, "udp", query(v4name("192.0.2.1"), dns.TypeA))
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "blowback_dns_udp_queue_delay_seconds" {
			h := mf.Metric[0].Histogram
			if h.GetSampleCount() != 5 {
				t.Errorf("%d delays observed, want 5", h.GetSampleCount())
			}
			if s := h.GetSampleSum(); s <= 0 || s > 60 {
				t.Errorf("sum of delays %v s", s)
			}
			return
		}
	}
	t.Fatal("no blowback_dns_udp_queue_delay_seconds")
}

// TestReceiveBuffer: Config.UDPReceiveBuffer reaches every UDP socket
// (the kernel keeps twice what was asked), and the default is 4 MiB.
func TestReceiveBuffer(t *testing.T) {
	for _, c := range []struct{ ask, want int }{{64 << 10, 128 << 10}, {0, 2 * min(4<<20, rmemMax(t))}} {
		s := New(Config{UDPReceiveBuffer: c.ask, UDPSockets: 2}, serving(testSnapshot()), nil, nil)
		if err := s.Start("127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		for i, w := range s.udp {
			if got := receiveBuffer(w.sock); got != c.want {
				t.Errorf("UDPReceiveBuffer %d: socket %d keeps %d, want %d", c.ask, i, got, c.want)
			}
		}
		s.Stop(context.Background())
	}
}

func rmemMax(t *testing.T) int {
	b, err := os.ReadFile("/proc/sys/net/core/rmem_max")
	if err != nil {
		t.Skip("no /proc/sys/net/core/rmem_max:", err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	return n
}
