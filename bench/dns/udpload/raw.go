//go:build linux

package main

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// The sender and the receiver are locked to threads of their own and call
// the kernel directly, not through the runtime's system call path. Through
// it every blocking wait (nanosleep, epoll_pwait) handed the goroutine's P
// back and the monitor thread woke to take it: at 50k QPS that doubled the
// context switches and the CPU this tool used. A raw call is invisible to
// the scheduler; nothing here needs a stop-the-world while sending (no GC
// runs, see run), and a preemption signal ends a wait with EINTR.

func rawNanosleep(ts *unix.Timespec) {
	unix.RawSyscall(unix.SYS_NANOSLEEP, uintptr(unsafe.Pointer(ts)), 0, 0)
}

func rawWrite(fd int, b []byte) {
	unix.RawSyscall(unix.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
}

func rawEpollWait(epfd int, events []unix.EpollEvent, msec int) (int, error) {
	n, _, e := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(epfd), uintptr(unsafe.Pointer(&events[0])), uintptr(len(events)), uintptr(msec), 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

func rawRecvmsg(fd int, p, oob []byte, flags int) (n, oobn int, err error) {
	iov := unix.Iovec{Base: &p[0]}
	iov.SetLen(len(p))
	msg := unix.Msghdr{Iov: &iov, Control: &oob[0]}
	msg.Iovlen = 1
	msg.SetControllen(len(oob))
	r, _, e := unix.RawSyscall(unix.SYS_RECVMSG, uintptr(fd), uintptr(unsafe.Pointer(&msg)), uintptr(flags))
	if e != 0 {
		return 0, 0, e
	}
	return int(r), int(msg.Controllen), nil
}
