package zones

import (
	"cmp"
	"encoding/binary"
	"net/netip"
	"slices"
	"strconv"
)

// This file turns a snapshot into what every export writes: the addresses
// blowback answers for, as disjoint runs with their effective codes
// ("spans"), and from those the owner names of a DNS zone ("names").
//
// A snapshot may hold overlapping ranges, exclusions and single entries
// inside ranges; Lookup unions the codes of everything that covers an
// address unless an exclusion covers it, and pins the RFC 5782 §5 test
// points. rbldnsd (longest match wins, exclusions per dataset) and DNS
// wildcards (RFC 4592: an existing name hides the wildcard) resolve overlaps
// differently, so the exports never write overlaps: they write the flattened
// spans, which every consumer reads the same way.

// fkey is an address key: IPv4 as uint32, IPv6 as its /64 (uint64).
type fkey interface{ ~uint32 | ~uint64 }

// fseg is an elementary run of the range layer with its effective codes.
type fseg[K fkey] struct {
	lo, hi K
	codes  Codes // effective codes of the ranges (0 when excluded)
	excl   bool  // an exclusion covers it: singles inside are not listed
	pinned bool  // a test point: codes are fixed whatever else is listed
}

type frange[K fkey] struct {
	lo, hi K
	codes  Codes
	excl   bool
}

// flatSegments flattens ranges (which may overlap) plus pinned points into
// sorted, disjoint segments. Gaps (nothing applies) are left out.
func flatSegments[K fkey](ranges []frange[K], pins []frange[K]) []fseg[K] {
	// An event changes the state from address at on: a range starts at lo
	// and ends at hi+1 (never, for a range reaching the top).
	type ev struct {
		at    K
		d     int
		codes Codes
		excl  bool
		pin   bool
	}
	var evs []ev
	push := func(r frange[K], pin bool) {
		evs = append(evs, ev{r.lo, 1, r.codes, r.excl, pin})
		if r.hi != ^K(0) {
			evs = append(evs, ev{r.hi + 1, -1, r.codes, r.excl, pin})
		}
	}
	for _, r := range ranges {
		push(r, false)
	}
	for _, p := range pins {
		push(p, true)
	}
	if len(evs) == 0 {
		return nil
	}
	slices.SortStableFunc(evs, func(a, b ev) int { return cmp.Compare(a.at, b.at) })
	var cnt [numCodes]int
	var excl, pinN int
	var pinCodes Codes
	var out []fseg[K]
	add := func(lo, hi K) {
		var s fseg[K]
		switch {
		case pinN > 0:
			s = fseg[K]{codes: pinCodes, pinned: true}
		case excl > 0:
			s = fseg[K]{excl: true}
		default:
			for i := range numCodes {
				if cnt[i] > 0 {
					s.codes |= 1 << i
				}
			}
			if s.codes == 0 {
				return
			}
		}
		s.lo, s.hi = lo, hi
		if n := len(out); n > 0 && !s.pinned && !out[n-1].pinned && out[n-1].hi+1 == lo && out[n-1].codes == s.codes && out[n-1].excl == s.excl {
			out[n-1].hi = hi
			return
		}
		out = append(out, s)
	}
	prev := evs[0].at
	for i := 0; i < len(evs); {
		at := evs[i].at
		if at > prev {
			add(prev, at-1)
		}
		for ; i < len(evs) && evs[i].at == at; i++ {
			e := evs[i]
			switch {
			case e.pin:
				pinN += e.d
				pinCodes = e.codes
			case e.excl:
				excl += e.d
			default:
				for b := range numCodes {
					if e.codes&(1<<b) != 0 {
						cnt[b] += e.d
					}
				}
			}
		}
		prev = at
	}
	add(prev, ^K(0)) // what still holds runs to the top
	return out
}

// flattener merges sorted singles into the range segments and emits
// disjoint spans with their effective codes.
type flattener[K fkey] struct {
	segs    []fseg[K]
	j       int
	pos     K    // first address not yet emitted
	done    bool // pos passed the top of the key space
	stopped bool
	emit    func(lo, hi K, c Codes) bool
}

func (f *flattener[K]) out(lo, hi K, c Codes) {
	if f.stopped || c == 0 || lo > hi {
		return
	}
	if !f.emit(lo, hi, c) {
		f.stopped = true
	}
}

// upto emits the segments (from pos on) that end before k.
func (f *flattener[K]) upto(k K) {
	for f.j < len(f.segs) && f.segs[f.j].hi < k {
		s := f.segs[f.j]
		if !f.done && s.hi >= f.pos {
			f.out(max(s.lo, f.pos), s.hi, s.codes)
		}
		f.j++
	}
}

func (f *flattener[K]) advance(k K) {
	if k == ^K(0) {
		f.done = true
		return
	}
	f.pos = k + 1
}

// single adds one single-fkey entry; keys must come in ascending order.
func (f *flattener[K]) single(k K, c Codes) {
	if f.stopped {
		return
	}
	f.upto(k)
	if f.j < len(f.segs) && f.segs[f.j].lo <= k {
		s := f.segs[f.j]
		// As Find: a pinned test point and an exclusion win, otherwise the
		// single entry overrides the range it lies in.
		eff := c
		if s.pinned || s.excl {
			eff = s.codes
		}
		if eff == s.codes {
			return // the segment already says it all
		}
		f.out(max(s.lo, f.pos), k-1, s.codes)
		f.out(k, k, eff)
		f.advance(k)
		return
	}
	f.out(k, k, c)
}

func (f *flattener[K]) finish() {
	f.upto(^K(0))
	if f.j < len(f.segs) {
		s := f.segs[f.j]
		if !f.done {
			f.out(max(s.lo, f.pos), s.hi, s.codes)
		}
	}
}

// The IPv6 fkey ::/64 holds the IPv4-mapped test points; the exports never
// list it as a whole (blowback answers ::ffff:0:0/96 from the IPv4 set), so
// it is pinned unlisted and ::ffff:7f00:2 is written on its own.
var testPoint6 = netip.AddrFrom16([16]byte{10: 0xff, 11: 0xff, 12: 127, 15: 2})

// spans calls fn4 for every IPv4 span (as big-endian integers, inclusive)
// and fn6 for every IPv6 span (in /64 units), in ascending order. A callback
// returning false stops the walk.
func (s *Snapshot) spans(fn4 func(lo, hi uint32, c Codes) bool, fn6 func(lo, hi uint64, c Codes) bool) {
	// Entries yields IPv4 singles (ascending /32s), IPv4 range pieces, IPv6
	// singles (ascending /64s), IPv6 range pieces. A range piece can be a
	// /32 or /64 too: a single is what continues the ascending run of
	// single-shaped entries at the start of its family. (A range piece
	// taken for a single answers the same: nothing else covers it.)
	var r4 []frange[uint32]
	var r6 []frange[uint64]
	cl := classifier{}
	s.Entries(func(e Entry) bool {
		if cl.single(e) {
			return true
		}
		a := e.Prefix.Addr()
		if a.Is4() {
			lo := binary.BigEndian.Uint32(a.AsSlice())
			hi := lo | uint32(uint64(1)<<(32-e.Prefix.Bits())-1)
			r4 = append(r4, frange[uint32]{lo, hi, e.Codes, e.Exclude})
			return true
		}
		b := a.As16()
		lo := binary.BigEndian.Uint64(b[:8])
		bits := min(e.Prefix.Bits(), 64)
		hi := ^uint64(0)
		if bits > 0 {
			hi = lo | (uint64(1)<<(64-bits) - 1)
		}
		r6 = append(r6, frange[uint64]{lo, hi, e.Codes, e.Exclude})
		return true
	})
	stopped := false
	if fn4 != nil {
		// RFC 5782 §5: 127.0.0.2 listed with every code, 127.0.0.1 never.
		pins := []frange[uint32]{{0x7f000001, 0x7f000001, 0, false}, {0x7f000002, 0x7f000002, CodeAll, false}}
		f := &flattener[uint32]{segs: flatSegments(r4, pins), emit: fn4}
		cl := classifier{}
		s.Entries(func(e Entry) bool {
			if !cl.single(e) || !e.Prefix.Addr().Is4() {
				return false
			}
			f.single(binary.BigEndian.Uint32(e.Prefix.Addr().AsSlice()), e.Codes)
			return !f.stopped
		})
		f.finish()
		stopped = f.stopped
	}
	if fn6 != nil && !stopped {
		f := &flattener[uint64]{segs: flatSegments(r6, []frange[uint64]{{0, 0, 0, false}}), emit: fn6}
		cl := classifier{}
		s.Entries(func(e Entry) bool {
			if e.Prefix.Addr().Is4() {
				cl.single(e)
				return true
			}
			if !cl.single(e) {
				return false
			}
			b := e.Prefix.Addr().As16()
			f.single(binary.BigEndian.Uint64(b[:8]), e.Codes)
			return !f.stopped
		})
		f.finish()
	}
}

// classifier tells singles from range pieces in the Entries order.
type classifier struct {
	phase4, phase6 int // 0: singles may come, 1: in singles, 2: past them
	last4          uint32
	last6          uint64
}

func (c *classifier) single(e Entry) bool {
	a := e.Prefix.Addr()
	if a.Is4() {
		if c.phase4 == 2 || e.Exclude || e.Prefix.Bits() != 32 {
			c.phase4 = 2
			return false
		}
		k := binary.BigEndian.Uint32(a.AsSlice())
		if c.phase4 == 1 && k <= c.last4 {
			c.phase4 = 2
			return false
		}
		c.phase4, c.last4 = 1, k
		return true
	}
	c.phase4 = 2
	if c.phase6 == 2 || e.Exclude || e.Prefix.Bits() != 64 {
		c.phase6 = 2
		return false
	}
	b := a.As16()
	k := binary.BigEndian.Uint64(b[:8])
	if c.phase6 == 1 && k <= c.last6 {
		c.phase6 = 2
		return false
	}
	c.phase6, c.last6 = 1, k
	return true
}

// Span is a CIDR prefix that blowback answers with the same codes for every
// address in it (IPv6 prefixes are /64 or wider, except the test point).
type Span struct {
	Prefix netip.Prefix
	Codes  Codes
}

// Spans calls fn for every span of the snapshot, IPv4 then IPv6, in address
// order, disjoint, overlaps and exclusions resolved as Lookup resolves them.
// The RFC 5782 §5 test points are included: 127.0.0.2 (all codes) and, as a
// /128, ::ffff:7f00:2. It stops when fn returns false.
func (s *Snapshot) Spans(fn func(Span) bool) {
	ok := true
	s.spans(func(lo, hi uint32, c Codes) bool {
		ok = spanRange(lo, hi, c, func(v uint32) netip.Prefix { return netip.PrefixFrom(addr4(v), 32) }, rangePrefixes4, fn)
		return ok
	}, nil)
	if !ok || !fn(Span{netip.PrefixFrom(testPoint6, 128), CodeAll}) {
		return
	}
	s.spans(nil, func(lo, hi uint64, c Codes) bool {
		return spanRange(lo, hi, c, func(v uint64) netip.Prefix { return netip.PrefixFrom(addr6(v), 64) }, rangePrefixes6, fn)
	})
}

// spanRange calls fn with codes c for the prefixes that cover the units
// lo..hi: unit's prefix for a single one, else cover's. It returns false
// when fn stopped.
func spanRange[U uint32 | uint64](lo, hi U, c Codes, unit func(U) netip.Prefix, cover func(lo, hi U) []netip.Prefix, fn func(Span) bool) bool {
	if lo == hi {
		return fn(Span{unit(lo), c})
	}
	for _, p := range cover(lo, hi) {
		if !fn(Span{p, c}) {
			return false
		}
	}
	return true
}

// Name is one owner name of the zone as a DNS server holds it: an IPv4
// prefix on an octet boundary (/32 an exact name, /24, /16, /8 a wildcard
// "*.c.b.a"), an IPv6 prefix on a nibble boundary (wildcard) or the /128
// IPv6 test point (exact).
type Name struct {
	Prefix netip.Prefix
	Codes  Codes
}

// Wildcard reports whether the name is a wildcard (RFC 4592).
func (n Name) Wildcard() bool { return n.Prefix.Bits() < n.Prefix.Addr().BitLen() }

// Owner returns the owner name relative to the zone (no trailing dot).
func (n Name) Owner() string { return string(n.AppendOwner(nil)) }

// AppendOwner appends Owner to b.
func (n Name) AppendOwner(b []byte) []byte {
	a := n.Prefix.Addr()
	if n.Wildcard() {
		b = append(b, '*', '.')
	}
	if a.Is4() {
		v := a.As4()
		for i := n.Prefix.Bits()/8 - 1; i >= 0; i-- {
			b = strconv.AppendUint(b, uint64(v[i]), 10)
			if i > 0 {
				b = append(b, '.')
			}
		}
		return b
	}
	v := a.As16()
	const hex = "0123456789abcdef"
	for i := n.Prefix.Bits()/4 - 1; i >= 0; i-- {
		x := v[i/2]
		if i%2 == 0 {
			x >>= 4
		}
		b = append(b, hex[x&0xf])
		if i > 0 {
			b = append(b, '.')
		}
	}
	return b
}

// TXT expands the template for the name: "$" becomes the address for an
// exact name (the IPv6 test point reads as 127.0.0.2, as blowback answers
// it), and the prefix for a wildcard, since a zone file cannot repeat the
// queried name.
func (n Name) TXT(tmpl string) string {
	if tmpl == "" {
		return ""
	}
	return string(n.AppendTXT(nil, tmpl))
}

// AppendTXT appends TXT(tmpl) to b.
func (n Name) AppendTXT(b []byte, tmpl string) []byte {
	for i := 0; i < len(tmpl); i++ {
		if tmpl[i] != '$' {
			b = append(b, tmpl[i])
			continue
		}
		if i+1 < len(tmpl) && tmpl[i+1] == '$' {
			b = append(b, '$')
			i++
			continue
		}
		if n.Wildcard() {
			b = n.Prefix.AppendTo(b)
		} else {
			b = n.Prefix.Addr().Unmap().AppendTo(b)
		}
	}
	return b
}

// Compare orders names as Names yields them: IPv4 before IPv6, then by
// address, then by prefix length.
func (n Name) Compare(o Name) int {
	a, b := n.Prefix.Addr(), o.Prefix.Addr()
	if a.Is4() != b.Is4() {
		if a.Is4() {
			return -1
		}
		return 1
	}
	if c := a.Compare(b); c != 0 {
		return c
	}
	return cmp.Compare(n.Prefix.Bits(), o.Prefix.Bits())
}

// Names calls fn for every owner name of the zone in Compare order (the
// apex SOA and NS are not included). It stops when fn returns false.
func (s *Snapshot) Names(fn func(Name) bool) {
	s.Spans(func(sp Span) bool {
		p := sp.Prefix
		if p.Addr().Is4() {
			return octetNames(p, func(q netip.Prefix) bool { return fn(Name{q, sp.Codes}) })
		}
		if p.Bits() == 128 {
			return fn(Name{p, sp.Codes})
		}
		return nibbleNames(p, func(q netip.Prefix) bool { return fn(Name{q, sp.Codes}) })
	})
}

// octetNames expresses an IPv4 prefix as prefixes on octet boundaries (a
// /20 becomes sixteen /24s; a /0 256 /8s).
func octetNames(p netip.Prefix, fn func(netip.Prefix) bool) bool {
	bits := p.Bits()
	o := max((bits+7)/8*8, 8)
	base := binary.BigEndian.Uint32(p.Masked().Addr().AsSlice())
	n := uint32(1) << (o - bits)
	for i := uint32(0); i < n; i++ {
		if !fn(netip.PrefixFrom(addr4(base+i<<(32-o)), o)) {
			return false
		}
	}
	return true
}

// nibbleNames expresses an IPv6 prefix of /64 or wider as prefixes on
// nibble boundaries.
func nibbleNames(p netip.Prefix, fn func(netip.Prefix) bool) bool {
	bits := p.Bits()
	nb := max((bits+3)/4*4, 4)
	b := p.Masked().Addr().As16()
	base := binary.BigEndian.Uint64(b[:8])
	n := uint64(1) << (nb - bits)
	for i := uint64(0); i < n; i++ {
		if !fn(netip.PrefixFrom(addr6(base+i<<(64-nb)), nb)) {
			return false
		}
	}
	return true
}
