//go:build linux

package dnsd

import (
	"encoding/binary"
	"net"
	"net/netip"
	"os"
	"runtime"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// batched tells whether datagrams move in batches (recvmmsg/sendmmsg).
const batched = true

// blockingUDP: the socket readers block in recvmmsg on their own threads
// (see udpWorker), so they need a P each plus one for everything else.
const blockingUDP = true

// udpSock is a bound UDP socket outside the Go netpoller: a blocking file
// descriptor that one udpWorker reads with recvmmsg.
type udpSock struct {
	fd   int
	addr *net.UDPAddr
}

func (u *udpSock) LocalAddr() net.Addr { return u.addr }

// receiveBuffer is a socket's receive buffer as the kernel keeps it
// (SO_RCVBUF read back: twice what was asked, capped by rmem_max).
func receiveBuffer(u *udpSock) int {
	n, _ := unix.GetsockoptInt(u.fd, unix.SOL_SOCKET, unix.SO_RCVBUF)
	return n
}
func (u *udpSock) Close() error { return unix.Close(u.fd) }

// listenUDP opens n sockets on addr sharing the port with SO_REUSEPORT
// (Linux spreads datagrams over them by a hash of the source). An empty
// host is dual-stack, as in package net. rcvbuf is each socket's SO_RCVBUF.
func listenUDP(addr string, n, rcvbuf int) ([]*udpSock, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, err
	}
	var socks []*udpSock
	fail := func(err error) ([]*udpSock, error) {
		for _, s := range socks {
			s.Close()
		}
		return nil, err
	}
	port := ua.Port
	for len(socks) < n {
		s, err := listenOne(host == "", ua.IP, port, n > 1, rcvbuf)
		if err != nil {
			return fail(err)
		}
		socks = append(socks, s)
		port = s.addr.Port
	}
	return socks, nil
}

func listenOne(dual bool, ip net.IP, port int, share bool, rcvbuf int) (*udpSock, error) {
	fam := unix.AF_INET
	var sa unix.Sockaddr
	switch ip4 := ip.To4(); {
	case dual:
		fam, sa = unix.AF_INET6, &unix.SockaddrInet6{Port: port}
	case ip4 != nil:
		sa = &unix.SockaddrInet4{Port: port, Addr: [4]byte(ip4)}
	default:
		fam, sa = unix.AF_INET6, &unix.SockaddrInet6{Port: port, Addr: [16]byte(ip.To16())}
	}
	fd, err := unix.Socket(fam, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil && dual {
		fam, sa = unix.AF_INET, &unix.SockaddrInet4{Port: port}
		fd, err = unix.Socket(fam, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	}
	if err != nil {
		return nil, os.NewSyscallError("socket", err)
	}
	fail := func(what string, err error) (*udpSock, error) {
		unix.Close(fd)
		return nil, os.NewSyscallError(what, err)
	}
	if fam == unix.AF_INET6 {
		v6only := 1
		if dual {
			v6only = 0
		}
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, v6only); err != nil {
			return fail("setsockopt", err)
		}
	}
	if share {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); err != nil {
			return fail("setsockopt", err)
		}
	}
	// Room for bursts while the server is off the CPU (Config.UDPReceiveBuffer;
	// capped by net.core.rmem_max).
	unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, rcvbuf)
	unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, 4<<20)
	if err := unix.Bind(fd, sa); err != nil {
		return fail("bind", err)
	}
	got, err := unix.Getsockname(fd)
	if err != nil {
		return fail("getsockname", err)
	}
	s := &udpSock{fd: fd}
	switch a := got.(type) {
	case *unix.SockaddrInet4:
		s.addr = &net.UDPAddr{IP: net.IP(a.Addr[:]).To16(), Port: a.Port}
	case *unix.SockaddrInet6:
		s.addr = &net.UDPAddr{IP: net.IP(a.Addr[:]), Port: a.Port}
	}
	return s, nil
}

// udpWorker serves one socket: a blocking recvmmsg (MSG_WAITFORONE) for a
// batch, each datagram answered into its own send buffer, one sendmmsg for
// the answers. The socket is not in the Go netpoller: waiting in the kernel
// costs one syscall and one wake-up per batch, where the netpoller costs an
// EAGAIN read, two epoll_waits and, on a busy runtime, thread hand-offs
// (measured at 50k QPS: 3x the context switches). The reader's thread sits
// in the syscall holding no P the rest of the runtime needs: Start keeps
// GOMAXPROCS at least one above the number of sockets. Buffers and headers
// are allocated once; the loop allocates nothing on the fast path.
//
// When every reader has a P of its own (GOMAXPROCS above the number of
// sockets), the reader keeps it across its system calls (ownP): it calls
// recvmmsg and sendmmsg as raw system calls, which the scheduler does not
// see. Through the runtime's syscall path every wait in recvmmsg handed the
// P back: the monitor thread (sysmon) then woke a few thousand times a
// second on the reader's core to take it, and the reader, back from the
// kernel, had to get a P again, sometimes on another thread (measured at
// 50k QPS on one core: 35k context switches in 5 s where rbldnsd has 14k,
// and 10% more CPU; see docs/dns.md "Tail latency"). A raw system call is
// invisible to a stop-the-world, so the socket has a receive timeout: the
// runtime's preemption signal then ends the wait with EINTR (signal(7):
// socket calls with a timeout are never restarted) and the reader stops at
// its next function call; the timeout itself bounds the wait should a
// signal be missed.
// (golang.org/x/net/ipv4's ReadBatch does the same syscalls through the
// netpoller and allocates a net.UDPAddr per datagram.)
type udpWorker struct {
	*packetHandler
	sock   *udpSock
	fd     uintptr
	closed atomic.Bool
	// ownP: the reader keeps its P in its system calls (raw syscalls; see
	// above), decided before each wait: only while GOMAXPROCS is above the
	// number of readers (readers), and only with the receive timeout set
	// (canOwnP).
	ownP, canOwnP bool
	readers       int

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
	// stamps: the kernel gives each datagram its receive time
	// (SO_TIMESTAMPNS), for blowback_dns_udp_queue_delay_seconds.
	stamps bool

	sent, toSend int
}

func newUDPWorker(s *Server, c *udpSock) *udpWorker {
	w := &udpWorker{packetHandler: newPacketHandler(s), sock: c, fd: uintptr(c.fd)}
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
	if c.addr.IP.IsUnspecified() {
		w.usePktinfo()
	}
	if unix.SetsockoptInt(c.fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1) == nil {
		w.stamps = true
		if w.rctrl == nil {
			w.rctrl = make([][ctrlSize]byte, n)
			for i := 0; i < n; i++ {
				w.rhdr[i].Hdr.Control = &w.rctrl[i][0]
			}
		}
	}
	return w
}

// usePktinfo turns on answering from each query's destination address.
func (w *udpWorker) usePktinfo() {
	if w.pktinfo = enablePktinfo(int(w.fd)); !w.pktinfo {
		return
	}
	n := len(w.rhdr)
	w.rctrl, w.wctrl = make([][ctrlSize]byte, n), make([][ctrlSize]byte, n)
	for i := 0; i < n; i++ {
		w.rhdr[i].Hdr.Control = &w.rctrl[i][0]
		w.whdr[i].Hdr.Control = &w.wctrl[i][0]
	}
}

// ctrlSize holds the control messages of one datagram: an IPv4 or IPv6
// packet info and a receive timestamp.
const ctrlSize = 128

// rxStamp returns the kernel's receive time (unix ns) from a datagram's
// control data, 0 when there is none.
func rxStamp(r []byte) int64 {
	hl := unix.CmsgLen(0)
	for off := 0; off+hl <= len(r); {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&r[off]))
		l := int(h.Len)
		if l < hl || off+l > len(r) {
			return 0
		}
		if h.Level == unix.SOL_SOCKET && h.Type == unix.SCM_TIMESTAMPNS && l-hl >= int(unsafe.Sizeof(unix.Timespec{})) {
			ts := (*unix.Timespec)(unsafe.Pointer(&r[off+hl]))
			return ts.Nano()
		}
		off += unix.CmsgSpace(l - hl)
	}
	return 0
}

func enablePktinfo(fd int) bool {
	// Either may fail (an IPv4 socket has no IPv6 options); one is enough.
	on4 := unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_PKTINFO, 1) == nil
	on6 := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_RECVPKTINFO, 1) == nil
	return on4 || on6
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

// close wakes the reader (shutdown interrupts a blocked recvmmsg, even on
// an unconnected socket) and makes it return; run closes the descriptor.
// keepP lets the reader keep its P in its system calls (see udpWorker)
// while GOMAXPROCS is above readers, the number of socket readers.
func (w *udpWorker) keepP(readers int) {
	tv := unix.NsecToTimeval(ownPWait.Nanoseconds())
	w.canOwnP = unix.SetsockoptTimeval(int(w.fd), unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv) == nil
	w.readers = readers
}

// ownPWait bounds one wait in recvmmsg when the reader keeps its P: the
// longest a stop-the-world could wait for it, should the preemption signal
// not end the wait.
const ownPWait = 50 * time.Millisecond

func (w *udpWorker) close() {
	w.closed.Store(true)
	unix.Shutdown(int(w.fd), unix.SHUT_RDWR)
}

// recv blocks until at least one datagram is there and returns how many
// (up to a batch) were read.
func (w *udpWorker) recv() (int, syscall.Errno) {
	// GOMAXPROCS may have been lowered since the last wait (by the program,
	// or by the runtime following a new CPU limit).
	w.ownP = w.canOwnP && runtime.GOMAXPROCS(0) > w.readers
	for i := range w.rhdr {
		w.rhdr[i].Hdr.Namelen = unix.SizeofSockaddrInet6
		w.rhdr[i].Hdr.Flags = 0
		if w.pktinfo || w.stamps {
			w.rhdr[i].Hdr.SetControllen(ctrlSize)
		}
	}
	sys := syscall.Syscall6
	if w.ownP {
		sys = syscall.RawSyscall6
	}
	r, _, e := sys(unix.SYS_RECVMMSG, w.fd, uintptr(unsafe.Pointer(&w.rhdr[0])), uintptr(len(w.rhdr)), unix.MSG_WAITFORONE, 0, 0)
	return int(r), e
}

func (w *udpWorker) send() {
	sys := syscall.Syscall6
	if w.ownP {
		sys = syscall.RawSyscall6
	}
	for w.sent < w.toSend {
		r, _, e := sys(unix.SYS_SENDMMSG, w.fd, uintptr(unsafe.Pointer(&w.whdr[w.sent])), uintptr(w.toSend-w.sent), 0, 0, 0)
		switch e {
		case 0:
			w.sent += int(r)
		case unix.EINTR, unix.EAGAIN, unix.ENOBUFS:
			if w.closed.Load() {
				return
			}
		default:
			// The first datagram failed (e.g. an unreachable source): skip it.
			w.s.metrics.dropped.WithLabelValues("send_error").Inc()
			w.sent++
		}
	}
}

func (w *udpWorker) run() {
	defer w.sock.Close()
	for {
		got, errno := w.recv()
		if w.closed.Load() {
			return
		}
		if errno != 0 || got <= 0 {
			if errno == unix.EBADF {
				return
			}
			continue
		}
		now := time.Now()
		nowNs := now.UnixNano()
		out := 0
		for i := 0; i < got; i++ {
			h := &w.rhdr[i]
			if h.Hdr.Flags&unix.MSG_TRUNC != 0 {
				w.s.metrics.dropped.WithLabelValues("malformed").Inc()
				continue
			}
			if w.stamps {
				if ts := rxStamp(w.rctrl[i][:h.Hdr.Controllen]); ts > 0 {
					w.ctr.wait.observe(nowNs - ts)
				}
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
			if out == flushEvery && i+1 < got {
				// A long batch (a backlog after the thread was off the
				// CPU): the first answers go out now instead of waiting
				// for the whole batch to be answered.
				w.sent, w.toSend = 0, out
				w.send()
				out = 0
			}
		}
		if out > 0 {
			w.sent, w.toSend = 0, out
			w.send()
		}
		w.s.metrics.duration.Observe(time.Since(now).Seconds())
	}
}

// flushEvery is how many answers of one receive batch are sent at most
// together: a full 64-datagram batch takes ~60-100 µs to answer, which the
// first query of it would otherwise wait on top of its time in the queue.
const flushEvery = 16

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
