package listing

import (
	"encoding/binary"
	"net/netip"

	"github.com/blowback-dnsbl/blowback/zones"
)

// slot is what the engine keeps per listed unit: 8 bytes.
type slot struct {
	exp   uint32 // unix seconds (rounded up) when to re-score (Decision.Review); 0: never
	codes zones.Codes
}

// listedSet is the set of listed units, keyed compactly: IPv4 /32 by its
// 32-bit address, IPv6 /64 by its upper 64 bits. At a million IPv4 units it
// takes about a fifth of a map[netip.Prefix]entry (see BenchmarkListedSetMemory).
type listedSet struct {
	v4 map[uint32]slot
	v6 map[uint64]slot
}

func newListedSet(n4, n6 int) *listedSet {
	return &listedSet{v4: make(map[uint32]slot, n4), v6: make(map[uint64]slot, n6)}
}

// unitKey splits a unit into its map key.
func unitKey(u netip.Prefix) (k4 uint32, k6 uint64, is4 bool) {
	a := u.Addr().Unmap()
	if a.Is4() {
		b := a.As4()
		return binary.BigEndian.Uint32(b[:]), 0, true
	}
	b := a.As16()
	return 0, binary.BigEndian.Uint64(b[:8]), false
}

func unit4(k uint32) netip.Prefix {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], k)
	return netip.PrefixFrom(netip.AddrFrom4(b), 32)
}

func unit6(k uint64) netip.Prefix {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], k)
	return netip.PrefixFrom(netip.AddrFrom16(b), 64)
}

func (l *listedSet) get(u netip.Prefix) (slot, bool) {
	k4, k6, is4 := unitKey(u)
	if is4 {
		s, ok := l.v4[k4]
		return s, ok
	}
	s, ok := l.v6[k6]
	return s, ok
}

func (l *listedSet) set(u netip.Prefix, s slot) {
	k4, k6, is4 := unitKey(u)
	if is4 {
		l.v4[k4] = s
	} else {
		l.v6[k6] = s
	}
}

func (l *listedSet) del(u netip.Prefix) {
	k4, k6, is4 := unitKey(u)
	if is4 {
		delete(l.v4, k4)
	} else {
		delete(l.v6, k6)
	}
}

func (l *listedSet) len() int { return len(l.v4) + len(l.v6) }

func (l *listedSet) each(fn func(netip.Prefix, slot)) {
	for k, s := range l.v4 {
		fn(unit4(k), s)
	}
	for k, s := range l.v6 {
		fn(unit6(k), s)
	}
}
