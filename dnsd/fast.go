package dnsd

import (
	"encoding/binary"
	"net/netip"
	"time"

	"github.com/miekg/dns"

	"github.com/blowback-dnsbl/blowback/zones"
)

// fastZone is what the fast path precomputes from one snapshot; each UDP
// socket keeps its own and rebuilds it when the snapshot changes.
type fastZone struct {
	snap    *zones.Snapshot
	zone    []byte // wire form, lower case, with the root label
	ttl     [4]byte
	soaTail []byte // SOA RR after the owner: type, class, TTL, RDLENGTH, RDATA
}

func (s *Server) fastZoneFor(fz *fastZone, snap *zones.Snapshot) *fastZone {
	if fz.snap == snap {
		return fz
	}
	ax := s.apexOf(snap)
	fz.snap = snap
	fz.zone = appendName(fz.zone[:0], ax.zone)
	binary.BigEndian.PutUint32(fz.ttl[:], ax.ttl)
	var rdata []byte
	rdata = appendName(rdata, ax.mname)
	rdata = appendName(rdata, ax.rname)
	for _, v := range []uint32{ax.serial, ax.refresh, ax.retry, ax.expire, ax.minimu} {
		rdata = binary.BigEndian.AppendUint32(rdata, v)
	}
	t := fz.soaTail[:0]
	t = binary.BigEndian.AppendUint16(t, dns.TypeSOA)
	t = binary.BigEndian.AppendUint16(t, dns.ClassINET)
	t = binary.BigEndian.AppendUint32(t, ax.negTTL)
	t = binary.BigEndian.AppendUint16(t, uint16(len(rdata)))
	fz.soaTail = append(t, rdata...)
	return fz
}

// appendName appends a presentation-form absolute name (plain labels, as
// zone and server names are) in wire form.
func appendName(b []byte, name string) []byte {
	for len(name) > 0 && name != "." {
		i := 0
		for i < len(name) && name[i] != '.' {
			i++
		}
		b = append(b, byte(i))
		b = append(b, name[:i]...)
		if i == len(name) {
			break
		}
		name = name[i+1:]
	}
	return append(b, 0)
}

// fastResult describes an answer for the metrics.
type fastResult struct {
	qtype uint16
	rcode int
}

const maxFastLabels = 48

// fastAnswer answers pkt into out (reused, no allocation) when it is a
// plain query: QUERY opcode, one question of class IN for A, TXT or AAAA at
// a full reversed IPv4 (4 labels) or IPv6 (32 nibbles) name in the zone, no
// other sections but an optional OPT of version 0 without options. ok false
// sends the packet to the slow path, which gives the same answer for
// everything the fast path takes (TestFastEqualsSlow, FuzzPacket).
// With keys on (keys.go), a keyed name <reversed-ip>.<key>.<zone> with a
// known key is answered here too and counted for its key (now is for its
// budget window); every refusal goes to the slow path.
func (s *Server) fastAnswer(pkt, out []byte, fz *fastZone, scratch *[]byte, now time.Time) (resp []byte, res fastResult, ok bool) {
	if len(pkt) < 17 || fz.snap == nil {
		return nil, res, false
	}
	// RFC 1035 §4.1.1 header: QR=0, OPCODE=0, QDCOUNT=1, ANCOUNT=NSCOUNT=0, ARCOUNT<=1.
	if pkt[2]&0xf8 != 0 || pkt[4] != 0 || pkt[5] != 1 || pkt[6]|pkt[7]|pkt[8]|pkt[9]|pkt[10] != 0 || pkt[11] > 1 {
		return nil, res, false
	}
	var labels [maxFastLabels]int
	nl := 0
	off := 12
	for {
		if off >= len(pkt) {
			return nil, res, false
		}
		l := int(pkt[off])
		if l == 0 {
			off++
			break
		}
		if l > 63 || nl == maxFastLabels { // compression pointers and more labels than any DNSBL name
			return nil, res, false
		}
		labels[nl] = off
		nl++
		off += 1 + l
	}
	nameEnd := off
	if nameEnd-12 > 255 || off+4 > len(pkt) {
		return nil, res, false
	}
	qtype := binary.BigEndian.Uint16(pkt[off:])
	if binary.BigEndian.Uint16(pkt[off+2:]) != dns.ClassINET {
		return nil, res, false
	}
	switch qtype {
	case dns.TypeA, dns.TypeTXT, dns.TypeAAAA:
	default:
		return nil, res, false
	}
	off += 4
	qEnd := off
	maxSize := dns.MinMsgSize
	edns, do := false, false
	if pkt[11] == 1 {
		// RFC 6891 §6.1.2: OPT with root owner, version 0 and no options.
		if off+11 != len(pkt) || pkt[off] != 0 || binary.BigEndian.Uint16(pkt[off+1:]) != dns.TypeOPT ||
			pkt[off+6] != 0 || pkt[off+9]|pkt[off+10] != 0 {
			return nil, res, false
		}
		edns, do = true, pkt[off+7]&0x80 != 0
		maxSize = max(int(min(binary.BigEndian.Uint16(pkt[off+3:]), s.cfg.UDPSize)), dns.MinMsgSize)
	} else if off != len(pkt) {
		return nil, res, false
	}
	// The zone must be the name's tail, on a label boundary.
	zs := nameEnd - len(fz.zone)
	nrel := -1
	for i := 0; i < nl; i++ {
		if labels[i] == zs {
			nrel = i
			break
		}
	}
	var key *keyState
	if keys := s.cfg.Keys; keys != nil {
		if nrel == 5 || nrel == 33 {
			kl := labels[nrel-1]
			if key = keys.lookup(pkt[kl+1 : kl+1+int(pkt[kl])]); key == nil || key.spent(keys.windowOf(now)) {
				return nil, res, false
			}
			nrel--
		} else if s.cfg.RequireKey {
			return nil, res, false
		}
	}
	if nrel != 4 && nrel != 32 {
		return nil, res, false
	}
	exact := true
	for i, z := range fz.zone {
		c := pkt[zs+i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
			exact = false
		}
		if c != z {
			return nil, res, false
		}
	}
	var addr netip.Addr
	if nrel == 4 {
		var b [4]byte
		for i := 0; i < 4; i++ {
			v, ok := octetWire(pkt[labels[i]+1 : labels[i]+1+int(pkt[labels[i]])])
			if !ok {
				return nil, res, false
			}
			b[3-i] = v
		}
		addr = netip.AddrFrom4(b)
	} else {
		var b [16]byte
		for i := 0; i < 32; i++ {
			if pkt[labels[i]] != 1 {
				return nil, res, false
			}
			n := hexVal(pkt[labels[i]+1])
			if n == 0xff {
				return nil, res, false
			}
			pos := 31 - i
			if pos%2 == 0 {
				b[pos/2] |= n << 4
			} else {
				b[pos/2] |= n
			}
		}
		addr = netip.AddrFrom16(b)
	}
	snap := fz.snap
	codes, vi := snap.Find(addr)

	out = append(out[:0], pkt[:qEnd]...)
	out[2] = 0x84 | pkt[2]&0x01 // QR, AA, copy RD (RFC 1035 §4.1.1)
	rcode := dns.RcodeSuccess
	var an, ns uint16
	nodata := false
	if codes == 0 && vi == 0 {
		rcode = dns.RcodeNameError
		nodata = true
	} else {
		val := snap.Value(vi)
		switch qtype {
		case dns.TypeA:
			for i := 0; i < 8; i++ {
				if codes&zones.CodeAll&(1<<i) == 0 {
					continue
				}
				out = appendA(out, fz.ttl, [4]byte{127, 0, 0, byte(2 + i)})
				an++
			}
			for _, a := range val.A {
				out = appendA(out, fz.ttl, a.As4())
				an++
			}
		case dns.TypeTXT:
			tmpl := snap.TXT
			if val.OwnTXT {
				tmpl = val.TXT
			}
			if tmpl == "" {
				nodata = true
				break
			}
			t := appendTXT((*scratch)[:0], tmpl, addr)
			*scratch = t
			chunks := max((len(t)+254)/255, 1)
			out = append(out, 0xc0, 12)
			out = binary.BigEndian.AppendUint16(out, dns.TypeTXT)
			out = binary.BigEndian.AppendUint16(out, dns.ClassINET)
			out = append(out, fz.ttl[:]...)
			out = binary.BigEndian.AppendUint16(out, uint16(len(t)+chunks))
			for {
				n := min(len(t), 255)
				out = append(out, byte(n))
				out = append(out, t[:n]...)
				t = t[n:]
				if len(t) == 0 {
					break
				}
			}
			an++
		default:
			nodata = true
		}
	}
	if nodata {
		// RFC 2308 §3: the zone's SOA in the authority section.
		if exact {
			out = append(out, 0xc0|byte(zs>>8), byte(zs))
		} else {
			out = append(out, fz.zone...)
		}
		out = append(out, fz.soaTail...)
		ns = 1
	}
	var ar uint16
	if edns {
		out = append(out, 0)
		out = binary.BigEndian.AppendUint16(out, dns.TypeOPT)
		out = binary.BigEndian.AppendUint16(out, s.cfg.UDPSize)
		out = append(out, 0, 0, 0, 0, 0, 0) // extended RCODE 0, version 0, flags, RDLENGTH 0
		if do {
			out[len(out)-4] = 0x80
		}
		ar = 1
	}
	if len(out) > maxSize {
		return nil, res, false // the slow path truncates
	}
	if key != nil && !key.take(s.cfg.Keys.windowOf(now)) {
		return nil, res, false // over its budget: the slow path refuses
	}
	out[3] = pkt[3]&0x10 | byte(rcode) // copy CD
	binary.BigEndian.PutUint16(out[6:], an)
	binary.BigEndian.PutUint16(out[8:], ns)
	binary.BigEndian.PutUint16(out[10:], ar)
	return out, fastResult{qtype, rcode}, true
}

func appendA(out []byte, ttl [4]byte, a [4]byte) []byte {
	out = append(out, 0xc0, 12, 0, byte(dns.TypeA), 0, byte(dns.ClassINET))
	out = append(out, ttl[:]...)
	out = append(out, 0, 4)
	return append(out, a[:]...)
}

func octetWire(l []byte) (byte, bool) {
	if len(l) == 0 || len(l) > 3 || (len(l) > 1 && l[0] == '0') {
		return 0, false
	}
	n := 0
	for _, c := range l {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	if n > 255 {
		return 0, false
	}
	return byte(n), true
}

// questionEnd returns the offset after the question of a DNS message, or -1.
func questionEnd(m []byte) int {
	if len(m) < 12 || binary.BigEndian.Uint16(m[4:]) != 1 {
		return -1
	}
	off := 12
	for {
		if off >= len(m) {
			return -1
		}
		l := int(m[off])
		switch {
		case l == 0:
			off++
			if off+4 > len(m) {
				return -1
			}
			return off + 4
		case l&0xc0 == 0xc0:
			off += 2
			if off+4 > len(m) {
				return -1
			}
			return off + 4
		case l > 63:
			return -1
		}
		off += 1 + l
	}
}

// slipResponse turns a response into a bare truncated one (header and
// question, TC set): what RRL "slips" instead of dropping, so a real client
// retries over TCP.
func slipResponse(resp []byte) []byte {
	qe := questionEnd(resp)
	if qe < 0 {
		return nil
	}
	resp = resp[:qe]
	resp[2] |= 0x02 // TC
	clear(resp[6:12])
	return resp
}
