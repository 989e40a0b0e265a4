package zones

import (
	"cmp"
	"encoding/binary"
	"net/netip"
	"slices"
)

// Builder collects entries for a snapshot without the per-entry overhead of
// a []Entry, for loaders of big files. The zero value is not usable: use
// NewBuilder.
type Builder struct {
	info  Info
	p4    []uint64 // key<<32 | val<<8 | codes
	s6    []single6
	r4    []span
	r6    []span
	l6    []long6
	vals  []Value
	vkeys map[string]uint32
	fold  *string // zoneTXT
}

type single6 struct {
	k     uint64
	val   uint32
	codes Codes
}

type span struct {
	lo, hi uint64
	codes  Codes
	excl   bool
	val    uint32
}

// NewBuilder starts a snapshot with info.
func NewBuilder(info Info) *Builder {
	return &Builder{info: info, vals: []Value{{}}, vkeys: map[string]uint32{"": 0}}
}

// Grow reserves room for n more IPv4 singles.
func (b *Builder) Grow(n int) { b.p4 = slices.Grow(b.p4, n) }

// Intern returns the index of v in the value table (0 for the zero value).
func (b *Builder) Intern(v *Value) uint32 {
	if v.isZero() {
		return 0
	}
	k := v.key()
	if i, ok := b.vkeys[k]; ok {
		return i
	}
	i := uint32(len(b.vals))
	if i >= 1<<24 {
		return 0 // absurdly many distinct values: fall back to the zone's
	}
	c := Value{A: slices.Clone(v.A), TXT: v.TXT, OwnTXT: v.OwnTXT}
	b.vals = append(b.vals, c)
	b.vkeys[k] = i
	return i
}

// Add4 adds one IPv4 address (big-endian integer) with codes and a value index from Intern.
func (b *Builder) Add4(k uint32, c Codes, val uint32) {
	b.p4 = append(b.p4, uint64(k)<<32|uint64(val)<<8|uint64(c))
}

// Add adds an entry.
func (b *Builder) Add(e Entry) {
	var val uint32
	if !e.Exclude {
		val = b.Intern(e.Value)
		if e.Codes == 0 && val == 0 {
			return // answers nothing
		}
		if e.Codes == 0 && len(b.vals[val].A) == 0 {
			return // a TXT without an A record is not a listing
		}
	}
	p := e.Prefix.Masked()
	a := p.Addr()
	if a.Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
		a = p.Addr()
	}
	if a.Is4() {
		bits := p.Bits()
		lo := binary.BigEndian.Uint32(a.AsSlice())
		if bits == 32 && !e.Exclude {
			b.Add4(lo, e.Codes, val)
			return
		}
		hi := lo | uint32(uint64(1)<<(32-bits)-1)
		b.r4 = append(b.r4, span{uint64(lo), uint64(hi), e.Codes, e.Exclude, val})
		return
	}
	a16 := a.As16()
	hi64 := binary.BigEndian.Uint64(a16[:8])
	if p.Bits() > 64 {
		b.l6 = append(b.l6, long6{hi64, binary.BigEndian.Uint64(a16[8:]), p.Bits(), e.Codes, e.Exclude, val})
		return
	}
	bits := p.Bits()
	if bits == 64 && !e.Exclude {
		b.s6 = append(b.s6, single6{hi64, val, e.Codes})
		return
	}
	hi := ^uint64(0)
	if bits > 0 {
		hi = hi64 | (uint64(1)<<(64-bits) - 1)
	}
	b.r6 = append(b.r6, span{hi64, hi, e.Codes, e.Exclude, val})
}

func (b *Builder) addSpan4(lo, hi uint32, c Codes, val uint32, excl bool) {
	b.r4 = append(b.r4, span{uint64(lo), uint64(hi), c, excl, val})
}

// addVal is Add with an interned value.
func (b *Builder) addVal(e Entry, val uint32) {
	if val == 0 {
		b.Add(e)
		return
	}
	e.Value = &b.vals[val]
	v := *e.Value
	e.Value = &v
	b.Add(e)
}

// zoneTXT makes t the zone's TXT (Info.TXT) when the snapshot is built:
// values whose own TXT is t become the zone default, so entries using only
// them need no value at all. Duplicates are merged before, so the TXT an
// address gets does not depend on which value became the default.
func (b *Builder) zoneTXT(t string) {
	b.info.TXT = t
	b.fold = &t
}

func (b *Builder) foldTXT(t string) {
	remap := make([]uint32, len(b.vals))
	old := b.vals
	b.vals, b.vkeys = []Value{{}}, map[string]uint32{"": 0}
	for i := 1; i < len(old); i++ {
		v := old[i]
		if v.OwnTXT && v.TXT == t {
			v.OwnTXT, v.TXT = false, ""
		}
		remap[i] = b.Intern(&v)
	}
	for i, p := range b.p4 {
		if v := uint32(p>>8) & 0xffffff; v != 0 {
			b.p4[i] = p&^(0xffffff<<8) | uint64(remap[v])<<8
		}
	}
	for i := range b.s6 {
		b.s6[i].val = remap[b.s6[i].val]
	}
	for i := range b.r4 {
		b.r4[i].val = remap[b.r4[i].val]
	}
	for i := range b.r6 {
		b.r6[i].val = remap[b.r6[i].val]
	}
	for i := range b.l6 {
		b.l6[i].val = remap[b.l6[i].val]
	}
}

// Snapshot finishes the build. The builder must not be used afterwards.
func (b *Builder) Snapshot() *Snapshot {
	s := &Snapshot{Info: b.info, vals: b.vals}
	s.Zone = CanonicalZone(b.info.Zone)
	sortRuns(b.p4)
	// Duplicates merge codes and values (see mergeVals).
	n := 0
	for _, p := range b.p4 {
		if n > 0 && b.p4[n-1]>>32 == p>>32 {
			v := b.mergeVals(uint32(b.p4[n-1]>>8)&0xffffff, uint32(p>>8)&0xffffff)
			b.p4[n-1] = b.p4[n-1]&^(0xffffff<<8) | uint64(v)<<8 | p&0xff
			continue
		}
		b.p4[n] = p
		n++
	}
	p4 := b.p4[:n]
	b.p4 = p4
	slices.SortStableFunc(b.s6, func(x, y single6) int { return cmp.Compare(x.k, y.k) })
	s6 := b.s6[:0]
	for _, e := range b.s6 {
		if m := len(s6); m > 0 && s6[m-1].k == e.k {
			s6[m-1].codes |= e.codes
			s6[m-1].val = b.mergeVals(s6[m-1].val, e.val)
			continue
		}
		s6 = append(s6, e)
	}
	b.s6 = s6
	if b.fold != nil {
		b.foldTXT(*b.fold)
		s.Info.TXT = *b.fold
	}
	s.v4 = make([]uint16, n)
	s.v4c = make([]Codes, n)
	hasVal := false
	for i, p := range p4 {
		s.v4[i] = uint16(p >> 32)
		s.v4c[i] = Codes(p)
		if p>>8&0xffffff != 0 {
			hasVal = true
		}
	}
	if hasVal {
		s.v4v = make([]uint32, n)
		for i, p := range p4 {
			s.v4v[i] = uint32(p>>8) & 0xffffff
		}
	}
	s.idx4 = index4(len(p4), func(i int) uint32 { return uint32(p4[i] >> 48) })
	b.p4 = nil

	s.v6 = make([]uint64, len(s6))
	s.v6c = make([]Codes, len(s6))
	hasVal = false
	for i, e := range s6 {
		s.v6[i], s.v6c[i] = e.k, e.codes
		hasVal = hasVal || e.val != 0
	}
	if hasVal {
		s.v6v = make([]uint32, len(s6))
		for i, e := range s6 {
			s.v6v[i] = e.val
		}
	}
	s.vals = b.vals // mergeVals and foldTXT may have changed them
	s.r4 = flatten(b.r4)
	s.r6 = flatten(b.r6)
	slices.SortStableFunc(b.l6, func(x, y long6) int {
		if c := cmp.Compare(x.hi, y.hi); c != 0 {
			return c
		}
		if c := cmp.Compare(y.bits, x.bits); c != 0 {
			return c
		}
		return cmp.Compare(x.lo, y.lo)
	})
	l6 := b.l6[:0]
	for _, l := range b.l6 {
		if k := len(l6); k > 0 && l6[k-1].hi == l.hi && l6[k-1].lo == l.lo && l6[k-1].bits == l.bits && l6[k-1].excl == l.excl {
			l6[k-1].codes |= l.codes
			continue
		}
		l6 = append(l6, l)
	}
	s.l6 = slices.Clip(l6)
	return s
}

// mergeVals merges the values of two entries for the same address: their
// A records add up, the TXT of the one seen first (lower index) wins.
func (b *Builder) mergeVals(x, y uint32) uint32 {
	if x == y || y == 0 {
		return x
	}
	if x == 0 {
		return y
	}
	if y < x {
		x, y = y, x
	}
	vx, vy := b.vals[x], b.vals[y]
	m := Value{A: slices.Clone(vx.A), TXT: vx.TXT, OwnTXT: vx.OwnTXT}
	for _, a := range vy.A {
		if !slices.Contains(m.A, a) {
			m.A = append(m.A, a)
		}
	}
	if !m.OwnTXT {
		m.TXT, m.OwnTXT = vy.TXT, vy.OwnTXT
	}
	return b.Intern(&m)
}

// sortRuns sorts keys that usually come as a few sorted runs (an export
// writes each dataset in address order) by merging the runs: a few linear
// passes instead of a general sort. Many runs: a general sort.
func sortRuns(a []uint64) {
	var starts []int
	for i := 1; i < len(a); i++ {
		if a[i] < a[i-1] {
			starts = append(starts, i)
			if len(starts) > 32 {
				slices.Sort(a)
				return
			}
		}
	}
	if len(starts) == 0 {
		return
	}
	if starts[0] >= len(a)/2 {
		// A first run of half the keys or more (an export's largest
		// dataset first): sort the rest aside (the same way) and merge it
		// in from the back, in place: one pass over the array and a copy
		// of the rest, instead of merging the whole array back and forth
		// through a second one (at 10M entries an 80 MB buffer to clear).
		rest := slices.Clone(a[starts[0]:])
		sortRuns(rest)
		i, j := starts[0]-1, len(rest)-1
		for k := len(a) - 1; j >= 0; k-- {
			if i >= 0 && a[i] > rest[j] {
				a[k] = a[i]
				i--
			} else {
				a[k] = rest[j]
				j--
			}
		}
		return
	}
	bounds := append(append([]int{0}, starts...), len(a))
	src, dst := a, make([]uint64, len(a))
	for len(bounds) > 2 {
		var next []int
		for i := 0; i+1 < len(bounds); i += 2 {
			lo, mid := bounds[i], bounds[i+1]
			hi := mid
			if i+2 < len(bounds) {
				hi = bounds[i+2]
			}
			x, y, k := lo, mid, lo
			for x < mid && y < hi {
				if src[y] < src[x] {
					dst[k] = src[y]
					y++
				} else {
					dst[k] = src[x]
					x++
				}
				k++
			}
			k += copy(dst[k:], src[x:mid])
			copy(dst[k:], src[y:hi])
			next = append(next, lo)
		}
		bounds = append(next, len(a))
		src, dst = dst, src
	}
	if &src[0] != &a[0] {
		copy(a, src)
	}
}

// index4 builds the /16 index of n sorted keys whose high halves hi gives.
func index4(n int, hi func(int) uint32) []uint32 {
	if n == 0 {
		return nil
	}
	idx := make([]uint32, 1<<16+1)
	j := 0
	for h := 0; h <= 1<<16; h++ {
		for j < n && int(hi(j)) < h {
			j++
		}
		idx[h] = uint32(j)
	}
	return idx
}

// flatten turns possibly overlapping ranges into disjoint segments. Within a
// segment an exclusion wins over everything (rbldnsd ip4set semantics);
// otherwise the most specific (narrowest) range decides, identical ranges
// merging their codes.
func flatten(in []span) []seg {
	if len(in) == 0 {
		return nil
	}
	slices.SortStableFunc(in, func(a, b span) int {
		if c := cmp.Compare(a.lo, b.lo); c != 0 {
			return c
		}
		if c := cmp.Compare(a.hi, b.hi); c != 0 {
			return c
		}
		if a.excl != b.excl {
			if a.excl {
				return -1
			}
			return 1
		}
		return 0
	})
	// Merge identical ranges.
	m := in[:0]
	for _, r := range in {
		if k := len(m); k > 0 && m[k-1].lo == r.lo && m[k-1].hi == r.hi && m[k-1].excl == r.excl {
			m[k-1].codes |= r.codes
			continue
		}
		m = append(m, r)
	}
	bounds := make([]uint64, 0, 2*len(m))
	for _, r := range m {
		bounds = append(bounds, r.lo)
		if r.hi != ^uint64(0) {
			bounds = append(bounds, r.hi+1)
		}
	}
	slices.Sort(bounds)
	bounds = slices.Compact(bounds)
	lst := minHeap[span]{less: narrower}           // active listings
	exc := minHeap[uint64]{less: cmp.Less[uint64]} // hi of active exclusions
	var out []seg
	next := 0
	for bi, p := range bounds {
		for next < len(m) && m[next].lo == p {
			if m[next].excl {
				exc.push(m[next].hi)
			} else {
				lst.push(m[next])
			}
			next++
		}
		for len(exc.s) > 0 && exc.s[0] < p {
			exc.pop()
		}
		for len(lst.s) > 0 && lst.s[0].hi < p {
			lst.pop()
		}
		end := ^uint64(0)
		if bi+1 < len(bounds) {
			end = bounds[bi+1] - 1
		}
		var sg seg
		switch {
		case len(exc.s) > 0:
			sg = seg{lo: p, hi: end, excl: true}
		case len(lst.s) > 0:
			sg = seg{lo: p, hi: end, codes: lst.s[0].codes, val: lst.s[0].val}
		default:
			continue
		}
		if k := len(out); k > 0 && out[k-1].hi+1 == p && out[k-1].excl == sg.excl && out[k-1].codes == sg.codes && out[k-1].val == sg.val {
			out[k-1].hi = end
			continue
		}
		out = append(out, sg)
	}
	return slices.Clip(out)
}

// narrower orders ranges by width (then start, narrowest first).
func narrower(a, b span) bool {
	wa, wb := a.hi-a.lo, b.hi-b.lo
	if wa != wb {
		return wa < wb
	}
	return a.lo > b.lo
}

// minHeap is a binary min-heap by less; s[0] is the least.
type minHeap[T any] struct {
	s    []T
	less func(a, b T) bool
}

func (h *minHeap[T]) push(v T) {
	h.s = append(h.s, v)
	s := h.s
	for i := len(s) - 1; i > 0; {
		p := (i - 1) / 2
		if !h.less(s[i], s[p]) {
			break
		}
		s[i], s[p] = s[p], s[i]
		i = p
	}
}

func (h *minHeap[T]) pop() {
	s := h.s
	n := len(s) - 1
	s[0] = s[n]
	s = s[:n]
	for i := 0; ; {
		l, r, m := 2*i+1, 2*i+2, i
		if l < n && h.less(s[l], s[m]) {
			m = l
		}
		if r < n && h.less(s[r], s[m]) {
			m = r
		}
		if m == i {
			break
		}
		s[i], s[m] = s[m], s[i]
		i = m
	}
	h.s = s
}

// Build makes a snapshot from entries (any order; duplicates merge codes,
// and a value of their own beats none).
func Build(info Info, entries []Entry) *Snapshot {
	b := NewBuilder(info)
	b.Grow(len(entries))
	for _, e := range entries {
		b.Add(e)
	}
	return b.Snapshot()
}
