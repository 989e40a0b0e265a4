//go:build linux

package main

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
	"runtime"
	"runtime/debug"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

type config struct {
	server  string
	port    int
	queries [][]byte
	rate    int
	seconds float64
	warm    float64
	sockets int
	timeout time.Duration
	tick    time.Duration
}

type result struct {
	tally                  // what the receiver counted
	sent, lost             int
	steadySent, steadyLost int
	behindMax              int64   // ns the sender was at most behind its schedule
	cpuPct                 float64 // this process's CPU, % of one core over the run
}

// sock is one client socket and its queries in flight, by DNS ID: sentAt
// holds the send time (CLOCK_REALTIME ns, the clock of SO_TIMESTAMPNS) or 0
// when the ID is free; query the index of the query sent with it.
type sock struct {
	fd       int
	nextID   uint16
	inFlight atomic.Int64
	sentAt   [1 << 16]atomic.Int64
	query    [1 << 16]atomic.Int32
}

// steadyBit marks, in sock.query, a query due after the warm-up: the
// warm-up is the first seconds of the schedule, whenever a query behind
// it went out.
const steadyBit = 1 << 30

func (s *sock) steady(id uint16) bool { return s.query[id].Load()&steadyBit != 0 }

// tally is what the receiver counted: late answers came after the timeout
// (their queries count as lost), noKernelTS ones were timed by the clock
// for want of a kernel timestamp, latencies (ns) are of the answers to
// queries due after the warm-up.
type tally struct {
	answered, wrong, late, noKernelTS int
	latencies                         []int64
	rcodes                            [16]int
}

// realtime is CLOCK_REALTIME through the vDSO (unix.ClockGettime would be
// a system call each time).
func realtime() int64 { return time.Now().UnixNano() }

func run(c config) (*result, error) {
	if c.rate <= 0 || c.seconds <= 0 || c.sockets <= 0 || c.warm < 0 || c.warm >= c.seconds {
		return nil, fmt.Errorf("need -Q > 0, -l > -w >= 0, -c > 0")
	}
	if wrap := float64(c.sockets) * 65536 / float64(c.rate); wrap < 2*c.timeout.Seconds() {
		return nil, fmt.Errorf("%d sockets reuse a DNS ID after %.1f s at %d QPS, under twice the %v timeout: use -c %d or more",
			c.sockets, wrap, c.rate, c.timeout, int(2*c.timeout.Seconds()*float64(c.rate)/65536)+1)
	}
	addr, err := netip.ParseAddr(c.server)
	if err != nil {
		return nil, err
	}
	var sa unix.Sockaddr
	family := unix.AF_INET
	if addr.Is4() {
		sa = &unix.SockaddrInet4{Port: c.port, Addr: addr.As4()}
	} else {
		family = unix.AF_INET6
		sa = &unix.SockaddrInet6{Port: c.port, Addr: addr.As16()}
	}
	socks := make([]*sock, c.sockets)
	for i := range socks {
		fd, err := unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return nil, err
		}
		defer unix.Close(fd)
		// Outside Go's netpoller: the receiver is a thread of its own (receive).
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1); err != nil {
			return nil, fmt.Errorf("SO_TIMESTAMPNS: %v", err)
		}
		// A large receive buffer, so that this tool drops no answer: past
		// net.core.rmem_max only with CAP_NET_ADMIN (SO_RCVBUFFORCE).
		if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 8<<20) != nil {
			_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 8<<20)
		}
		if err := unix.Connect(fd, sa); err != nil {
			return nil, err
		}
		socks[i] = &sock{fd: fd}
	}
	// A P each for the sender, the receiver and the rest: both loop in raw
	// system calls (raw.go) and never give theirs back.
	runtime.GOMAXPROCS(3)

	// No collections while sending: the heap is the queries (collected
	// once here) and the latencies; a GC worker would take the core from
	// the sender and the receiver.
	runtime.GC()
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	var ru0 unix.Rusage
	_ = unix.Getrusage(unix.RUSAGE_SELF, &ru0)
	wall0 := time.Now()
	start := realtime() + int64(10*time.Millisecond)
	warmEnd := start + int64(c.warm*1e9)
	end := start + int64(c.seconds*1e9)

	var done atomic.Bool
	r := &result{}
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	defer unix.Close(epfd)
	for i, s := range socks {
		if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, s.fd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(i)}); err != nil {
			return nil, err
		}
	}
	received := make(chan struct{})
	go func() {
		defer close(received)
		receive(epfd, socks, c, &done, &r.tally)
	}()

	send(socks, c, start, warmEnd, end, r)
	// Wait for the answers still due, at most the timeout.
	deadline := time.Now().Add(c.timeout)
	for time.Now().Before(deadline) && inFlight(socks) > 0 {
		time.Sleep(time.Millisecond)
	}
	done.Store(true)
	<-received
	for _, s := range socks {
		for id := range s.sentAt {
			if t := s.sentAt[id].Swap(0); t != 0 {
				r.lost++
				if s.steady(uint16(id)) {
					r.steadyLost++
				}
			}
		}
	}
	var ru1 unix.Rusage
	_ = unix.Getrusage(unix.RUSAGE_SELF, &ru1)
	cpu := time.Duration(ru1.Utime.Nano() + ru1.Stime.Nano() - ru0.Utime.Nano() - ru0.Stime.Nano())
	r.cpuPct = 100 * cpu.Seconds() / time.Since(wall0).Seconds()
	return r, nil
}

func inFlight(socks []*sock) int64 {
	var n int64
	for _, s := range socks {
		n += s.inFlight.Load()
	}
	return n
}

// send keeps the schedule: query i is due at start + i/rate, whatever came
// back. It wakes every tick (timer slack 1 ns; the default 50 µs would add
// to it) and sends what is due back to back, so at 50k QPS and a 100 µs
// tick five queries go out together; a wake-up per query would cost more
// of the core than the sending. When behind (off the CPU), it catches up
// the same way, as dnsperf does. Each query is timed from its own send.
func send(socks []*sock, c config, start, warmEnd, end int64, r *result) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	_ = unix.Prctl(unix.PR_SET_TIMERSLACK, 1, 0, 0, 0)
	interval := 1e9 / float64(c.rate)
	buf := make([]byte, 512)
	for i := 0; ; i++ {
		due := start + int64(float64(i)*interval)
		if due >= end {
			return
		}
		now := realtime()
		if d := due - now; d > 0 {
			ts := unix.NsecToTimespec(max(d, int64(c.tick)))
			rawNanosleep(&ts)
		} else if -d > r.behindMax {
			r.behindMax = -d
		}
		s := socks[i%len(socks)]
		id := s.nextID
		s.nextID++
		if old := s.sentAt[id].Swap(0); old != 0 {
			s.inFlight.Add(-1)
			// Unanswered for the whole ID space: lost (run refuses a
			// socket count that wraps within twice the timeout).
			r.lost++
			if s.steady(id) {
				r.steadyLost++
			}
		}
		qi := i % len(c.queries)
		q := append(buf[:0], c.queries[qi]...)
		binary.BigEndian.PutUint16(q, id)
		steady := due >= warmEnd
		if steady {
			s.query[id].Store(int32(qi) | steadyBit)
		} else {
			s.query[id].Store(int32(qi))
		}
		t := realtime()
		s.sentAt[id].Store(t)
		s.inFlight.Add(1)
		// Not sent (a full send buffer, or ECONNREFUSED from an earlier
		// ICMP) it gets no answer: it stays in flight and counts as lost.
		rawWrite(s.fd, q)
		r.sent++
		if steady {
			r.steadySent++
		}
	}
}

// receive reads the sockets' answers until done, timing each by the
// kernel's receive timestamp. One thread for all sockets: it waits in
// epoll and then reads each ready socket dry, so a burst of answers costs
// one wake-up (a context switch costs ~5 µs on this VM).
func receive(epfd int, socks []*sock, c config, done *atomic.Bool, t *tally) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	buf := make([]byte, 4096)
	oob := make([]byte, unix.CmsgSpace(int(unsafe.Sizeof(unix.Timespec{})))*2)
	events := make([]unix.EpollEvent, len(socks))
	for !done.Load() {
		n, err := rawEpollWait(epfd, events, 50)
		if err != nil {
			continue // EINTR
		}
		for _, ev := range events[:n] {
			s := socks[ev.Fd]
			for {
				n, oobn, err := rawRecvmsg(s.fd, buf, oob, unix.MSG_DONTWAIT)
				if err == unix.EAGAIN {
					break
				}
				if err != nil {
					continue // EINTR, ECONNREFUSED
				}
				t.answer(s, c, buf[:n], oob[:oobn])
			}
		}
	}
}

func (t *tally) answer(s *sock, c config, buf, oob []byte) {
	rx := kernelTime(oob)
	if rx == 0 {
		rx = realtime()
		t.noKernelTS++
	}
	if len(buf) < 12 {
		t.wrong++
		return
	}
	id := binary.BigEndian.Uint16(buf)
	sent := s.sentAt[id].Load()
	if sent == 0 {
		t.wrong++ // not in flight: a duplicate, or after the count
		return
	}
	qv := s.query[id].Load()
	q := c.queries[qv&^steadyBit]
	if buf[2]&0x80 == 0 || len(buf) < len(q) || !bytes.Equal(buf[12:len(q)], q[12:]) {
		t.wrong++ // not an answer, or to another question
		return
	}
	lat := rx - sent
	if lat > int64(c.timeout) {
		t.late++ // left in flight: counted lost, as dnsperf would
		return
	}
	if !s.sentAt[id].CompareAndSwap(sent, 0) {
		return
	}
	s.inFlight.Add(-1)
	t.answered++
	t.rcodes[buf[3]&0x0f]++
	if qv&steadyBit != 0 {
		t.latencies = append(t.latencies, lat)
	}
}

// kernelTime is the SCM_TIMESTAMPNS in a datagram's control messages,
// without allocating (unix.ParseSocketControlMessage would, per datagram).
func kernelTime(oob []byte) int64 {
	for len(oob) >= unix.SizeofCmsghdr {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
		if h.Len < unix.SizeofCmsghdr || int(h.Len) > len(oob) {
			return 0
		}
		data := oob[unix.CmsgLen(0):h.Len]
		if h.Level == unix.SOL_SOCKET && h.Type == unix.SCM_TIMESTAMPNS && len(data) >= int(unsafe.Sizeof(unix.Timespec{})) {
			return (*unix.Timespec)(unsafe.Pointer(&data[0])).Nano()
		}
		oob = oob[min(len(oob), unix.CmsgSpace(int(h.Len)-unix.CmsgLen(0))):]
	}
	return 0
}
