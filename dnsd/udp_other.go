//go:build !linux

package dnsd

import (
	"net"
	"sync/atomic"
	"time"
)

const (
	batched     = false
	blockingUDP = false
)

type udpSock = net.UDPConn

// listenUDP opens one socket (no SO_REUSEPORT spreading here).
func listenUDP(addr string, _, rcvbuf int) ([]*udpSock, error) {
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		return nil, err
	}
	c := pc.(*net.UDPConn)
	c.SetReadBuffer(rcvbuf)
	c.SetWriteBuffer(4 << 20)
	return []*udpSock{c}, nil
}

// udpWorker serves one socket a datagram at a time (no recvmmsg here).
type udpWorker struct {
	*packetHandler
	conn   *net.UDPConn
	closed atomic.Bool
	rbuf   []byte
	wbuf   []byte
}

func newUDPWorker(s *Server, c *net.UDPConn) *udpWorker {
	return &udpWorker{packetHandler: newPacketHandler(s), conn: c, rbuf: make([]byte, bufSize), wbuf: make([]byte, 0, bufSize)}
}

// keepP: readers here go through the netpoller.
func (w *udpWorker) keepP(int) {}

func (w *udpWorker) close() {
	w.closed.Store(true)
	w.conn.Close()
}

func (w *udpWorker) run() {
	for {
		n, src, err := w.conn.ReadFromUDPAddrPort(w.rbuf)
		if err != nil {
			if w.closed.Load() {
				return
			}
			continue
		}
		now := time.Now()
		resp := w.handle(w.rbuf[:n], src.Addr().Unmap(), w.wbuf[:0], now)
		if resp != nil {
			w.conn.WriteToUDPAddrPort(resp, src)
		}
		w.s.metrics.duration.Observe(time.Since(now).Seconds())
	}
}

// receiveBuffer is not read back here (0: unknown).
func receiveBuffer(*udpSock) int { return 0 }
