package dnsd

import (
	"crypto/subtle"
	"encoding/binary"
	"encoding/hex"
	"math/bits"
	"net/netip"
	"time"

	"github.com/miekg/dns"
)

// cookieJar makes and checks DNS server cookies: RFC 7873, in the
// interoperable form of RFC 9018 §4 (version 1, SipHash-2-4).
type cookieJar struct {
	k0, k1 uint64
	now    func() time.Time
}

func newCookieJar(secret []byte, now func() time.Time) *cookieJar {
	return &cookieJar{k0: binary.LittleEndian.Uint64(secret[:8]), k1: binary.LittleEndian.Uint64(secret[8:16]), now: now}
}

// serverCookie returns the 16-byte server cookie for a client cookie, a
// client address and a time (RFC 9018 §4.2, §4.4).
func (j *cookieJar) serverCookie(client []byte, src netip.Addr, ts uint32) [16]byte {
	var sc [16]byte
	sc[0] = 1 // version
	binary.BigEndian.PutUint32(sc[4:8], ts)
	in := make([]byte, 0, 8+8+16)
	in = append(in, client...)
	in = append(in, sc[:8]...)
	in = append(in, src.Unmap().AsSlice()...)
	binary.LittleEndian.PutUint64(sc[8:], siphash24(j.k0, j.k1, in))
	return sc
}

type cookieResult uint8

const (
	cookieNone      cookieResult = iota
	cookieValid                  // a good server cookie of ours
	cookieNew                    // a client cookie alone, or a stale or foreign server cookie
	cookieMalformed              // a bad length (RFC 7873 §5.2.2: FORMERR)
)

var cookieLabels = [...]string{"", "valid", "new", "malformed"}

// handle reads the COOKIE option of a request and puts ours in the
// response's OPT.
func (j *cookieJar) handle(req, resp *dns.OPT, src netip.Addr) cookieResult {
	var c *dns.EDNS0_COOKIE
	for _, o := range req.Option {
		if x, ok := o.(*dns.EDNS0_COOKIE); ok {
			c = x
			break
		}
	}
	if c == nil || !src.IsValid() {
		return cookieNone
	}
	raw, err := hex.DecodeString(c.Cookie)
	// RFC 7873 §4: 8 bytes of client cookie, then 8 to 32 of server cookie.
	if err != nil || len(raw) < 8 || (len(raw) > 8 && len(raw) < 16) || len(raw) > 40 {
		return cookieMalformed
	}
	client := raw[:8]
	now := uint32(j.now().Unix())
	res := cookieNew
	if len(raw) == 16+8 {
		got := raw[8:]
		ts := binary.BigEndian.Uint32(got[4:8])
		// RFC 9018 §4.3: valid for an hour, up to 5 minutes from the future.
		fresh := int64(now)-int64(ts) <= 3600 && int64(ts)-int64(now) <= 300
		want := j.serverCookie(client, src, ts)
		if got[0] == 1 && fresh && subtle.ConstantTimeCompare(got, want[:]) == 1 {
			res = cookieValid
		}
	}
	sc := j.serverCookie(client, src, now)
	out := append(append(make([]byte, 0, 24), client...), sc[:]...)
	resp.Option = append(resp.Option, &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: hex.EncodeToString(out)})
	return res
}

// siphash24 is SipHash-2-4 (Aumasson, Bernstein 2012) with key (k0, k1).
func siphash24(k0, k1 uint64, p []byte) uint64 {
	v0 := k0 ^ 0x736f6d6570736575
	v1 := k1 ^ 0x646f72616e646f6d
	v2 := k0 ^ 0x6c7967656e657261
	v3 := k1 ^ 0x7465646279746573
	round := func() {
		v0 += v1
		v1 = bits.RotateLeft64(v1, 13)
		v1 ^= v0
		v0 = bits.RotateLeft64(v0, 32)
		v2 += v3
		v3 = bits.RotateLeft64(v3, 16)
		v3 ^= v2
		v0 += v3
		v3 = bits.RotateLeft64(v3, 21)
		v3 ^= v0
		v2 += v1
		v1 = bits.RotateLeft64(v1, 17)
		v1 ^= v2
		v2 = bits.RotateLeft64(v2, 32)
	}
	n := len(p)
	for len(p) >= 8 {
		m := binary.LittleEndian.Uint64(p)
		v3 ^= m
		round()
		round()
		v0 ^= m
		p = p[8:]
	}
	var last [8]byte
	copy(last[:], p)
	last[7] = byte(n)
	m := binary.LittleEndian.Uint64(last[:])
	v3 ^= m
	round()
	round()
	v0 ^= m
	v2 ^= 0xff
	round()
	round()
	round()
	round()
	return v0 ^ v1 ^ v2 ^ v3
}
