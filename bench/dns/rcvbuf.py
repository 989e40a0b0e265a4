#!/usr/bin/env python3
"""rcvbuf.py PID PORT BYTES: set SO_RCVBUF on the UDP socket bound to PORT
in process PID (Linux >= 5.6, root: pidfd_getfd borrows the socket; the
option is on the socket, so the server sees it). run.sh -B uses it to give
rbldnsd, which sets its own 128 KiB buffer, the receive buffer blowback
asks for. Prints how many sockets it changed."""
import ctypes
import os
import socket
import sys

SYS_PIDFD_GETFD = 438

pid, port, size = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
libc = ctypes.CDLL(None, use_errno=True)
pidfd = os.pidfd_open(pid)
changed = 0
for name in os.listdir(f"/proc/{pid}/fd"):
    fd = libc.syscall(SYS_PIDFD_GETFD, pidfd, int(name), 0)
    if fd < 0:
        continue
    try:
        s = socket.socket(fileno=fd)
    except OSError:
        os.close(fd)
        continue
    try:
        if s.type == socket.SOCK_DGRAM and s.getsockname()[1] == port:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)
            changed += 1
    except OSError:
        pass
    s.close()
print(changed)
