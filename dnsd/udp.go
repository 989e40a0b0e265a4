package dnsd

import (
	"net/netip"
	"time"

	"github.com/miekg/dns"
)

// batchSize is how many datagrams one receive (and one send) call moves.
const batchSize = 64

// bufSize is the capacity of the buffers the tests use: the largest EDNS
// payload we send.
const bufSize = maxUDPSize

// recvSize is the room for one received datagram. Queries are small (a
// DNSBL name, maybe an OPT with a cookie: well under 300 bytes); a larger
// datagram arrives truncated and is dropped (counted as malformed). Send
// buffers are the configured UDP payload size. Small strides keep a
// socket's 64-datagram batch at ~160 KiB instead of half a megabyte.
const recvSize = 1280

// packetHandler is one UDP socket's answering state: its copy of the fast
// path's zone data, scratch space and counters. Not safe for concurrent use.
type packetHandler struct {
	s       *Server
	fz      fastZone
	scratch []byte
	ctr     *counters
}

func newPacketHandler(s *Server) *packetHandler {
	return &packetHandler{s: s, scratch: make([]byte, 0, 512), ctr: s.metrics.newCounters()}
}

// handle answers one datagram from src into out (its buffer is reused) and
// returns the response, or nil to send nothing. now is for RRL.
func (h *packetHandler) handle(pkt []byte, src netip.Addr, out []byte, now time.Time) (resp []byte) {
	defer func() {
		if r := recover(); r != nil {
			h.s.metrics.panics.Inc()
			h.s.log.Error("panic answering query", "panic", r)
			resp = servfail(pkt, out)
		}
	}()
	s := h.s
	if snap := s.cur.Load(); snap != nil {
		s.fastZoneFor(&h.fz, snap)
	}
	var (
		res      fastResult
		ok       bool
		cookieOK bool
	)
	v := allow
	if s.policy != nil {
		v = s.policy.check(src, now)
	}
	if v == allow && (s.cfg.ACL.Empty() || s.cfg.ACL.Allowed(src)) {
		resp, res, ok = s.fastAnswer(pkt, out, &h.fz, &h.scratch, now)
	}
	if ok {
		h.ctr.fast.Add(1)
	} else {
		resp, res, cookieOK = s.slowUDP(pkt, src, out, v)
		if resp == nil {
			return nil
		}
	}
	if s.rrl != nil && !cookieOK {
		switch s.rrl.check(src, now) {
		case rrlDrop:
			s.metrics.rateLimited.WithLabelValues("drop").Inc()
			return nil
		case rrlSlip:
			s.metrics.rateLimited.WithLabelValues("slip").Inc()
			if resp = slipResponse(resp); resp == nil {
				return nil
			}
		}
	}
	h.ctr.count(res.qtype, res.rcode)
	return resp
}

// slowUDP answers a datagram the fast path did not take, through miekg/dns.
func (s *Server) slowUDP(pkt []byte, src netip.Addr, out []byte, v verdict) ([]byte, fastResult, bool) {
	req := new(dns.Msg)
	if err := req.Unpack(pkt); err != nil {
		if len(pkt) < 12 || pkt[2]&0x80 != 0 {
			s.metrics.dropped.WithLabelValues("malformed").Inc()
			return nil, fastResult{}, false
		}
		// RFC 1035 §4.1.1: a query we cannot read gets FORMERR, header only.
		out = append(out[:0], pkt[:12]...)
		out[2] = 0x80 | pkt[2]&0x79 // QR, keep OPCODE and RD
		out[3] = dns.RcodeFormatError
		clear(out[4:12])
		return out, fastResult{0, dns.RcodeFormatError}, false
	}
	m, cookieOK := s.answer(req, src, false, v)
	if m == nil {
		s.metrics.dropped.WithLabelValues("response").Inc()
		return nil, fastResult{}, false
	}
	b, err := m.PackBuffer(out[:cap(out)])
	if err != nil {
		s.log.Debug("pack answer", "err", err)
		return servfail(pkt, out), fastResult{qtypeOf(req), dns.RcodeServerFailure}, false
	}
	return b, fastResult{qtypeOf(req), m.Rcode}, cookieOK
}

// servfail is a header-only SERVFAIL for a query (nil for anything else).
func servfail(pkt, out []byte) []byte {
	if len(pkt) < 12 || pkt[2]&0x80 != 0 {
		return nil
	}
	out = append(out[:0], pkt[:12]...)
	out[2] = 0x80 | pkt[2]&0x79
	out[3] = dns.RcodeServerFailure
	clear(out[4:12])
	return out
}

func qtypeOf(req *dns.Msg) uint16 {
	if len(req.Question) == 1 {
		return req.Question[0].Qtype
	}
	return 0
}
