package zones

import (
	"cmp"
	"encoding/binary"
	"net/netip"
	"slices"
)

// Lookup returns the codes for an address (0: not listed). IPv6 addresses
// are looked up by their /64 (and the longer prefixes and /128 exclusions
// of rbldnsd files); IPv4-mapped IPv6 addresses as IPv4.
func (s *Snapshot) Lookup(a netip.Addr) Codes {
	c, _ := s.Find(a)
	return c
}

// Find returns the codes and the value index (see Value) for an address;
// the address is listed when either is non-zero.
func (s *Snapshot) Find(a netip.Addr) (Codes, uint32) {
	a = a.Unmap()
	if a.Is4() {
		b := a.As4()
		return s.Find4(binary.BigEndian.Uint32(b[:]))
	}
	b := a.As16()
	return s.Find6(binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:]))
}

// Lookup4 is Lookup for an IPv4 address as a big-endian integer.
func (s *Snapshot) Lookup4(k uint32) Codes {
	c, _ := s.Find4(k)
	return c
}

// Find4 is Find for an IPv4 address as a big-endian integer.
func (s *Snapshot) Find4(k uint32) (Codes, uint32) {
	switch k {
	case 0x7f000002:
		return CodeAll, 0 // RFC 5782 §5
	case 0x7f000001:
		return 0, 0 // RFC 5782 §5
	}
	sg, inSeg := findSeg(s.r4, uint64(k))
	if inSeg && sg.excl {
		return 0, 0
	}
	if s.idx4 == nil {
		return orSeg(sg, inSeg)
	}
	lo, hi := int(s.idx4[k>>16]), int(s.idx4[k>>16+1])
	if i, ok := slices.BinarySearch(s.v4[lo:hi], uint16(k)); ok {
		return entryAt(s.v4c, s.v4v, lo+i)
	}
	return orSeg(sg, inSeg)
}

// entryAt is exact entry i of a family: its codes, and its value (0 when
// the family has none).
func entryAt(codes []Codes, vals []uint32, i int) (Codes, uint32) {
	if vals == nil {
		return codes[i], 0
	}
	return codes[i], vals[i]
}

// orSeg is what the range segment found gives an address that no exact
// entry holds: its codes, or nothing outside every segment.
func orSeg(sg seg, inSeg bool) (Codes, uint32) {
	if inSeg {
		return sg.codes, sg.val
	}
	return 0, 0
}

func findSeg(r []seg, k uint64) (seg, bool) {
	if len(r) == 0 {
		return seg{}, false
	}
	if i := segFrom(r, k); i < len(r) && r[i].lo <= k {
		return r[i], true
	}
	return seg{}, false
}

// segFrom is the index of the first segment of r (sorted, no overlaps)
// with hi >= k, len(r) when none is.
func segFrom(r []seg, k uint64) int {
	i, j := 0, len(r)
	for i < j {
		h := int(uint(i+j) >> 1)
		if r[h].hi < k {
			i = h + 1
		} else {
			j = h
		}
	}
	return i
}

// Lookup6 is Lookup for an IPv6 /64 as a big-endian integer of its first 8
// bytes; it sees /64-and-wider entries only.
func (s *Snapshot) Lookup6(k uint64) Codes {
	c, _ := s.find64(k)
	return c
}

// Find6 is Find for an IPv6 address given as its two big-endian halves.
func (s *Snapshot) Find6(hi, lo uint64) (Codes, uint32) {
	if len(s.l6) > 0 {
		i, _ := slices.BinarySearchFunc(s.l6, hi, func(l long6, k uint64) int { return cmp.Compare(l.hi, k) })
		best := -1
		for j := i; j < len(s.l6) && s.l6[j].hi == hi; j++ {
			l := s.l6[j]
			if !l.contains(hi, lo) {
				continue
			}
			if l.excl {
				return 0, 0
			}
			if best < 0 {
				best = j // most specific first
			}
		}
		if best >= 0 {
			if sg, ok := findSeg(s.r6, hi); ok && sg.excl {
				return 0, 0
			}
			return s.l6[best].codes, s.l6[best].val
		}
	}
	return s.find64(hi)
}

func (s *Snapshot) find64(k uint64) (Codes, uint32) {
	sg, inSeg := findSeg(s.r6, k)
	if inSeg && sg.excl {
		return 0, 0
	}
	if i, ok := slices.BinarySearch(s.v6, k); ok {
		return entryAt(s.v6c, s.v6v, i)
	}
	return orSeg(sg, inSeg)
}

// Entries calls fn for every entry: IPv4 singles, IPv4 ranges, IPv6 singles,
// IPv6 ranges, longer IPv6 prefixes, each in address order. Ranges come
// back as the disjoint prefixes they were flattened into. It stops when fn
// returns false.
func (s *Snapshot) Entries(fn func(Entry) bool) {
	val := func(v uint32) *Value {
		if v == 0 {
			return nil
		}
		return &s.vals[v]
	}
	h := 0
	for i, lo := range s.v4 {
		for int(s.idx4[h+1]) <= i {
			h++
		}
		var v uint32
		if s.v4v != nil {
			v = s.v4v[i]
		}
		if !fn(Entry{Prefix: netip.PrefixFrom(addr4(uint32(h)<<16|uint32(lo)), 32), Codes: s.v4c[i], Value: val(v)}) {
			return
		}
	}
	for _, r := range s.r4 {
		for _, p := range rangePrefixes4(uint32(r.lo), uint32(r.hi)) {
			if !fn(Entry{Prefix: p, Codes: r.codes, Exclude: r.excl, Value: val(r.val)}) {
				return
			}
		}
	}
	for i, k := range s.v6 {
		var v uint32
		if s.v6v != nil {
			v = s.v6v[i]
		}
		if !fn(Entry{Prefix: netip.PrefixFrom(addr6(k), 64), Codes: s.v6c[i], Value: val(v)}) {
			return
		}
	}
	for _, r := range s.r6 {
		for _, p := range rangePrefixes6(r.lo, r.hi) {
			if !fn(Entry{Prefix: p, Codes: r.codes, Exclude: r.excl, Value: val(r.val)}) {
				return
			}
		}
	}
	for _, l := range s.l6 {
		var b [16]byte
		binary.BigEndian.PutUint64(b[:8], l.hi)
		binary.BigEndian.PutUint64(b[8:], l.lo)
		if !fn(Entry{Prefix: netip.PrefixFrom(netip.AddrFrom16(b), l.bits), Codes: l.codes, Exclude: l.excl, Value: val(l.val)}) {
			return
		}
	}
}

func addr4(k uint32) netip.Addr {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], k)
	return netip.AddrFrom4(b)
}

func addr6(k uint64) netip.Addr {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], k)
	return netip.AddrFrom16(b)
}

// rangePrefixes4 splits [lo,hi] into CIDR prefixes (ranges built from one
// prefix come back as that prefix).
func rangePrefixes4(lo, hi uint32) []netip.Prefix {
	var out []netip.Prefix
	for {
		bits := 32
		for bits > 0 {
			size := uint64(1) << (32 - (bits - 1))
			if uint64(lo)%size != 0 || uint64(lo)+size-1 > uint64(hi) {
				break
			}
			bits--
		}
		out = append(out, netip.PrefixFrom(addr4(lo), bits))
		next := uint64(lo) + uint64(1)<<(32-bits)
		if next > uint64(hi) {
			return out
		}
		lo = uint32(next)
	}
}

func rangePrefixes6(lo, hi uint64) []netip.Prefix {
	var out []netip.Prefix
	for {
		bits := 64
		for bits > 0 {
			sh := 64 - (bits - 1)
			if sh == 64 {
				if lo != 0 || hi != ^uint64(0) {
					break
				}
			} else {
				size := uint64(1) << sh
				if lo%size != 0 || lo+size-1 > hi || lo+size-1 < lo {
					break
				}
			}
			bits--
		}
		out = append(out, netip.PrefixFrom(addr6(lo), bits))
		if bits == 0 {
			return out
		}
		next := lo + uint64(1)<<(64-bits)
		if next == 0 || next > hi {
			return out
		}
		lo = next
	}
}

// Under4 reports whether any listed IPv4 address lies in [lo,hi]: whether a
// partial reversed name is an empty non-terminal (RFC 8020 makes an
// NXDOMAIN there mean "nothing below", which QNAME-minimising resolvers
// trust). The test point 127.0.0.2 counts.
func (s *Snapshot) Under4(lo, hi uint32) bool {
	if lo <= 0x7f000002 && 0x7f000002 <= hi {
		return true
	}
	if i := s.lowerBound4(lo); i < len(s.v4) && s.key4(i) <= hi {
		return true
	}
	return segUnder(s.r4, uint64(lo), uint64(hi))
}

func segUnder(r []seg, lo, hi uint64) bool {
	for i := segFrom(r, lo); i < len(r) && r[i].lo <= hi; i++ {
		if !r[i].excl {
			return true
		}
	}
	return false
}

// Under6 is Under4 for IPv6 /64 units in [lo,hi]; the IPv6 test point
// ::FFFF:7F00:2 counts.
func (s *Snapshot) Under6(lo, hi uint64) bool {
	if lo == 0 {
		return true // ::ffff:7f00:2 lies in ::/64
	}
	i, _ := slices.BinarySearch(s.v6, lo)
	if i < len(s.v6) && s.v6[i] <= hi {
		return true
	}
	for _, l := range s.l6 {
		if !l.excl && l.hi >= lo && l.hi <= hi {
			return true
		}
	}
	return segUnder(s.r6, lo, hi)
}
