//go:build linux

package dnsd

import (
	"context"
	"encoding/binary"
	"net"
	"net/netip"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// batched tells whether datagrams move in batches (recvmmsg/sendmmsg).
const batched = true

// reusePort tells whether several sockets can share a port (SO_REUSEPORT,
// Linux >= 3.9 spreads datagrams over them by a hash of the source).
const reusePort = true

func listenOne(addr string, share bool) (*net.UDPConn, error) {
	lc := net.ListenConfig{}
	if share {
		lc.Control = func(network, address string, c syscall.RawConn) error {
			var serr error
			err := c.Control(func(fd uintptr) {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
			})
			if err != nil {
				return err
			}
			return serr
		}
	}
	pc, err := lc.ListenPacket(context.Background(), "udp", addr)
	if err != nil {
		return nil, err
	}
	return pc.(*net.UDPConn), nil
}

// udpWorker serves one socket: recvmmsg a batch, answer each datagram into
// its own send buffer, sendmmsg the answers. The buffers, headers and
// closures are allocated once; the loop itself allocates nothing on the
// fast path. (golang.org/x/net/ipv4's ReadBatch does the same syscalls but
// allocates a net.UDPAddr per datagram, which costs more than it saves.)
type udpWorker struct {
	*packetHandler
	conn   *net.UDPConn
	rc     syscall.RawConn
	closed atomic.Bool

	rbuf  [][]byte
	rhdr  []unix.Mmsghdr
	riov  []unix.Iovec
	rname [][unix.SizeofSockaddrInet6]byte
	wbuf  [][]byte
	wresp [][]byte
	whdr  []unix.Mmsghdr
	wiov  []unix.Iovec
	wname [][unix.SizeofSockaddrInet6]byte
	// With a wildcard bind, the destination address of each query (IP_PKTINFO,
	// IPV6_PKTINFO) becomes the source of its answer: a multi-homed host
	// otherwise answers from whichever address routing picks, and clients
	// drop the answer.
	pktinfo bool
	rctrl   [][ctrlSize]byte
	wctrl   [][ctrlSize]byte

	got, sent, toSend int
	errno             syscall.Errno
	recvFn, sendFn    func(uintptr) bool
}

func newUDPWorker(s *Server, c *net.UDPConn) *udpWorker {
	w := &udpWorker{packetHandler: newPacketHandler(s), conn: c}
	w.rc, _ = c.SyscallConn()
	n := batchSize
	w.rbuf, w.wbuf, w.wresp = make([][]byte, n), make([][]byte, n), make([][]byte, n)
	w.rhdr, w.whdr = make([]unix.Mmsghdr, n), make([]unix.Mmsghdr, n)
	w.riov, w.wiov = make([]unix.Iovec, n), make([]unix.Iovec, n)
	w.rname, w.wname = make([][unix.SizeofSockaddrInet6]byte, n), make([][unix.SizeofSockaddrInet6]byte, n)
	rslab := make([]byte, n*recvSize)
	ws := int(s.cfg.UDPSize)
	wslab := make([]byte, n*ws)
	for i := 0; i < n; i++ {
		w.rbuf[i] = rslab[i*recvSize : (i+1)*recvSize : (i+1)*recvSize]
		w.wbuf[i] = wslab[i*ws : i*ws : (i+1)*ws]
		w.riov[i].Base = &w.rbuf[i][0]
		w.riov[i].SetLen(recvSize)
		w.rhdr[i].Hdr.Iov = &w.riov[i]
		w.rhdr[i].Hdr.SetIovlen(1)
		w.rhdr[i].Hdr.Name = &w.rname[i][0]
		w.whdr[i].Hdr.Iov = &w.wiov[i]
		w.whdr[i].Hdr.SetIovlen(1)
		w.whdr[i].Hdr.Name = &w.wname[i][0]
	}
	if ua, ok := c.LocalAddr().(*net.UDPAddr); ok && ua.IP.IsUnspecified() {
		w.usePktinfo()
	}
	w.recvFn, w.sendFn = w.recvF, w.sendF
	return w
}

// usePktinfo turns on answering from each query's destination address.
func (w *udpWorker) usePktinfo() {
	if w.pktinfo = enablePktinfo(w.rc); !w.pktinfo {
		return
	}
	n := len(w.rhdr)
	w.rctrl, w.wctrl = make([][ctrlSize]byte, n), make([][ctrlSize]byte, n)
	for i := 0; i < n; i++ {
		w.rhdr[i].Hdr.Control = &w.rctrl[i][0]
		w.whdr[i].Hdr.Control = &w.wctrl[i][0]
	}
}

// ctrlSize holds one IPv4 or IPv6 packet-info control message.
const ctrlSize = 64

func enablePktinfo(rc syscall.RawConn) bool {
	on := false
	rc.Control(func(fd uintptr) {
		// Either may fail (an IPv4 socket has no IPv6 options); one is enough.
		if unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_PKTINFO, 1) == nil {
			on = true
		}
		if unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_RECVPKTINFO, 1) == nil {
			on = true
		}
	})
	return on
}

// replyControl writes into w the control message that makes an answer's
// source the address its query was sent to (from r, the query's control
// data), and returns its length; 0 when r has no packet info.
func replyControl(r, w []byte) int {
	hl := unix.CmsgLen(0)
	for off := 0; off+hl <= len(r); {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&r[off]))
		l := int(h.Len)
		if l < hl || off+l > len(r) {
			return 0
		}
		data := r[off+hl : off+l]
		switch {
		case h.Level == unix.IPPROTO_IP && h.Type == unix.IP_PKTINFO && len(data) >= unix.SizeofInet4Pktinfo:
			in := (*unix.Inet4Pktinfo)(unsafe.Pointer(&data[0]))
			n := unix.CmsgSpace(unix.SizeofInet4Pktinfo)
			clear(w[:n])
			oh := (*unix.Cmsghdr)(unsafe.Pointer(&w[0]))
			oh.Level, oh.Type = unix.IPPROTO_IP, unix.IP_PKTINFO
			oh.SetLen(unix.CmsgLen(unix.SizeofInet4Pktinfo))
			out := (*unix.Inet4Pktinfo)(unsafe.Pointer(&w[hl]))
			out.Spec_dst = in.Addr // the source; routing picks the interface
			return n
		case h.Level == unix.IPPROTO_IPV6 && h.Type == unix.IPV6_PKTINFO && len(data) >= unix.SizeofInet6Pktinfo:
			in := (*unix.Inet6Pktinfo)(unsafe.Pointer(&data[0]))
			n := unix.CmsgSpace(unix.SizeofInet6Pktinfo)
			clear(w[:n])
			oh := (*unix.Cmsghdr)(unsafe.Pointer(&w[0]))
			oh.Level, oh.Type = unix.IPPROTO_IPV6, unix.IPV6_PKTINFO
			oh.SetLen(unix.CmsgLen(unix.SizeofInet6Pktinfo))
			out := (*unix.Inet6Pktinfo)(unsafe.Pointer(&w[hl]))
			out.Addr, out.Ifindex = in.Addr, in.Ifindex // link-local needs the interface
			return n
		}
		off += unix.CmsgSpace(l - hl)
	}
	return 0
}

func (w *udpWorker) close() {
	w.closed.Store(true)
	w.conn.Close()
}

func (w *udpWorker) recvF(fd uintptr) bool {
	for i := range w.rhdr {
		w.rhdr[i].Hdr.Namelen = unix.SizeofSockaddrInet6
		w.rhdr[i].Hdr.Flags = 0
		if w.pktinfo {
			w.rhdr[i].Hdr.SetControllen(ctrlSize)
		}
	}
	for {
		r, _, e := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&w.rhdr[0])), uintptr(len(w.rhdr)), unix.MSG_DONTWAIT, 0, 0)
		switch e {
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false // wait until readable
		}
		w.got, w.errno = int(r), e
		return true
	}
}

func (w *udpWorker) sendF(fd uintptr) bool {
	for w.sent < w.toSend {
		r, _, e := unix.Syscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&w.whdr[w.sent])), uintptr(w.toSend-w.sent), unix.MSG_DONTWAIT, 0, 0)
		switch e {
		case 0:
			w.sent += int(r)
		case unix.EINTR:
		case unix.EAGAIN:
			return false // wait until writable
		default:
			// The first datagram failed (e.g. an unreachable source): skip it.
			w.s.metrics.dropped.WithLabelValues("send_error").Inc()
			w.sent++
		}
	}
	return true
}

func (w *udpWorker) run() {
	for {
		err := w.rc.Read(w.recvFn)
		if err != nil || w.closed.Load() {
			return
		}
		if w.errno != 0 || w.got <= 0 {
			if w.errno == unix.EBADF {
				return
			}
			continue
		}
		now := time.Now()
		out := 0
		for i := 0; i < w.got; i++ {
			h := &w.rhdr[i]
			if h.Hdr.Flags&unix.MSG_TRUNC != 0 {
				w.s.metrics.dropped.WithLabelValues("malformed").Inc()
				continue
			}
			src := sockaddrAddr(w.rname[i][:h.Hdr.Namelen])
			resp := w.handle(w.rbuf[i][:h.Len], src, w.wbuf[out][:0], now)
			if resp == nil {
				continue
			}
			w.wresp[out] = resp
			w.wname[out] = w.rname[i]
			w.whdr[out].Hdr.Namelen = h.Hdr.Namelen
			w.wiov[out].Base = &resp[0]
			w.wiov[out].SetLen(len(resp))
			if w.pktinfo {
				w.whdr[out].Hdr.SetControllen(replyControl(w.rctrl[i][:h.Hdr.Controllen], w.wctrl[out][:]))
				if w.whdr[out].Hdr.Controllen == 0 {
					w.whdr[out].Hdr.Control = nil
				} else {
					w.whdr[out].Hdr.Control = &w.wctrl[out][0]
				}
			}
			out++
		}
		if out > 0 {
			w.sent, w.toSend = 0, out
			if err := w.rc.Write(w.sendFn); err != nil {
				return
			}
		}
		w.s.metrics.duration.Observe(time.Since(now).Seconds())
	}
}

// sockaddrAddr reads the address of a struct sockaddr_in or sockaddr_in6.
func sockaddrAddr(b []byte) netip.Addr {
	if len(b) < 8 {
		return netip.Addr{}
	}
	switch binary.NativeEndian.Uint16(b) {
	case unix.AF_INET:
		return netip.AddrFrom4([4]byte(b[4:8]))
	case unix.AF_INET6:
		if len(b) >= 24 {
			return netip.AddrFrom16([16]byte(b[8:24])).Unmap()
		}
	}
	return netip.Addr{}
}
