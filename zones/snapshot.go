// Package zones holds the listed set as an immutable snapshot that DNS
// servers answer from and exporters write out, and the table that maps
// kinds of evidence to DNSBL return codes.
//
// A Snapshot is never changed after Build; a new listing produces a new
// snapshot that is swapped in atomically (see Current).
package zones

import (
	"cmp"
	"encoding/binary"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/blowback-dnsbl/blowback/store"
)

// Codes is a set of return codes: bit i stands for 127.0.0.(2+i).
type Codes uint8

// Return codes (CONTRACT.md "DNS").
const (
	CodeBounce    Codes = 1 << 0 // 127.0.0.2 bounce
	CodeAutoreply Codes = 1 << 1 // 127.0.0.3 autoreply or mdn
	CodeCallout   Codes = 1 << 2 // 127.0.0.4 callout
	CodeChallenge Codes = 1 << 3 // 127.0.0.5 challenge
	CodeAll             = CodeBounce | CodeAutoreply | CodeCallout | CodeChallenge
	numCodes            = 4
)

// CodeOf maps a kind to its return code (zero for kinds that are not listed).
func CodeOf(k store.Kind) Codes {
	switch k {
	case store.KindBounce:
		return CodeBounce
	case store.KindAutoreply, store.KindMDN:
		return CodeAutoreply
	case store.KindCallout:
		return CodeCallout
	case store.KindChallenge:
		return CodeChallenge
	}
	return 0
}

// CodesOf maps a set of kinds to return codes.
func CodesOf(ks store.KindSet) Codes {
	var c Codes
	for _, k := range ks.Kinds() {
		c |= CodeOf(k)
	}
	return c
}

// Addrs returns the A record values for the codes, lowest first.
func (c Codes) Addrs() []netip.Addr {
	var out []netip.Addr
	for i := 0; i < numCodes; i++ {
		if c&(1<<i) != 0 {
			out = append(out, netip.AddrFrom4([4]byte{127, 0, 0, byte(2 + i)}))
		}
	}
	return out
}

// Names returns the code names ("bounce", "autoreply", "callout", "challenge").
func (c Codes) Names() []string {
	names := [numCodes]string{"bounce", "autoreply", "callout", "challenge"}
	var out []string
	for i := 0; i < numCodes; i++ {
		if c&(1<<i) != 0 {
			out = append(out, names[i])
		}
	}
	return out
}

// CodeFromAddr is the inverse of Addrs for one address (0 if not a return code).
func CodeFromAddr(a netip.Addr) Codes {
	a = a.Unmap()
	if !a.Is4() {
		return 0
	}
	b := a.As4()
	if b[0] != 127 || b[1] != 0 || b[2] != 0 || b[3] < 2 || b[3] >= 2+numCodes {
		return 0
	}
	return 1 << (b[3] - 2)
}

// Entry is one listed prefix with its codes. IPv4 entries are any prefix
// length; IPv6 entries /64 or wider are kept compactly, longer ones (rbldnsd
// ip6trie entries, ip6tset /128 exclusions) in a small side list.
type Entry struct {
	Prefix  netip.Prefix
	Codes   Codes
	Exclude bool   // rbldnsd "!" exclusion: never listed, overrides every entry it covers
	Value   *Value // nil: Codes only, with the zone's TXT (Info.TXT)
}

// Value is what an entry answers beyond its codes, for zones loaded from
// rbldnsd files: A records that are not blowback return codes, and a TXT
// template of its own. Entries share values: a snapshot keeps a small table
// of distinct values and, only when it has more than the zero value, one
// index per entry (so blowback's own zones pay nothing for it).
type Value struct {
	A      []netip.Addr // A records besides Codes (IPv4, in file order)
	TXT    string       // TXT template when OwnTXT ("$" is the queried address)
	OwnTXT bool         // TXT replaces Info.TXT; an empty TXT then means no TXT record
}

func (v *Value) isZero() bool { return v == nil || (len(v.A) == 0 && !v.OwnTXT) }

func (v *Value) key() string {
	var b strings.Builder
	for _, a := range v.A {
		b.WriteString(a.String())
		b.WriteByte(',')
	}
	if v.OwnTXT {
		b.WriteByte('\x00')
		b.WriteString(v.TXT)
	}
	return b.String()
}

// Info describes a zone apart from its entries.
type Info struct {
	Zone   string        // zone name, lower case, no trailing dot
	Serial uint32        // SOA serial
	TXT    string        // TXT template, "$" replaced by the queried address ("$$" is a literal "$")
	TTL    time.Duration // TTL of answers
	Built  time.Time     // when the listing this snapshot holds was decided
	Apex   *Apex         // SOA and NS from a zone file; nil: the server's configuration
}

// seg is a disjoint range of addresses (IPv4 as uint32 widened, IPv6 as /64
// units) with what it answers; ranges given to Build are flattened into
// segments so a lookup is one binary search.
type seg struct {
	lo, hi uint64
	codes  Codes
	excl   bool
	val    uint32
}

// long6 is an IPv6 prefix longer than /64.
type long6 struct {
	hi, lo uint64 // masked address
	bits   int
	codes  Codes
	excl   bool
	val    uint32
}

func (l long6) contains(hi, lo uint64) bool {
	if hi != l.hi {
		return false
	}
	sh := 128 - l.bits // < 64
	return lo>>sh == l.lo>>sh
}

// Snapshot is an immutable listed set. Single addresses (the bulk) are kept
// as sorted integer arrays with a parallel code array: IPv4 addresses as
// their low 16 bits, bucketed by the high 16 bits through a 256 KiB index,
// so 3 bytes per IPv4 entry; 9 per IPv6 /64 (plus 4 when entries carry
// values of their own). Wider prefixes and exclusions are flattened into
// disjoint segments.
type Snapshot struct {
	Info
	v4   []uint16 // low 16 bits of each IPv4 single, sorted within its /16
	v4c  []Codes
	v4v  []uint32 // value per v4 entry; nil when all are 0
	idx4 []uint32 // idx4[h] = first i whose address is in /16 h (len 65537); nil when v4 is empty
	v6   []uint64
	v6c  []Codes
	v6v  []uint32
	r4   []seg // disjoint, sorted
	r6   []seg
	l6   []long6 // sorted by hi, then most specific first
	vals []Value // vals[0] is the zero value
}

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
// writes each dataset in address order) by merging the runs: two or three
// linear passes instead of a general sort. Many runs: a general sort.
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

// key4 is the address of IPv4 single i.
func (s *Snapshot) key4(i int) uint32 {
	// The bucket is the last h with idx4[h] <= i.
	h := sort.Search(1<<16, func(h int) bool { return int(s.idx4[h+1]) > i })
	return uint32(h)<<16 | uint32(s.v4[i])
}

// diff4 calls fn for every IPv4 single whose codes differ between s and b
// (0 for absent), in address order, without materialising the keys.
func (s *Snapshot) diff4(b *Snapshot, fn func(k uint32, old, new Codes)) {
	i, j := 0, 0
	ha, hb := 0, 0
	key := func(x *Snapshot, i int, h *int) uint32 {
		for int(x.idx4[*h+1]) <= i {
			*h++
		}
		return uint32(*h)<<16 | uint32(x.v4[i])
	}
	for i < len(s.v4) || j < len(b.v4) {
		var ka, kb uint32
		if i < len(s.v4) {
			ka = key(s, i, &ha)
		}
		if j < len(b.v4) {
			kb = key(b, j, &hb)
		}
		switch {
		case j == len(b.v4) || (i < len(s.v4) && ka < kb):
			fn(ka, s.v4c[i], 0)
			i++
		case i == len(s.v4) || kb < ka:
			fn(kb, 0, b.v4c[j])
			j++
		default:
			if s.v4c[i] != b.v4c[j] {
				fn(ka, s.v4c[i], b.v4c[j])
			}
			i++
			j++
		}
	}
}

// lowerBound4 is the index of the first IPv4 single >= k.
func (s *Snapshot) lowerBound4(k uint32) int {
	if s.idx4 == nil {
		return 0
	}
	lo, hi := int(s.idx4[k>>16]), int(s.idx4[k>>16+1])
	i, _ := slices.BinarySearch(s.v4[lo:hi], uint16(k))
	return lo + i
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
	var lst spanHeap // active listings, narrowest first
	var exc []uint64 // hi of active exclusions (min-heap)
	var out []seg
	next := 0
	for bi, p := range bounds {
		for next < len(m) && m[next].lo == p {
			if m[next].excl {
				heapPush(&exc, m[next].hi)
			} else {
				lst.push(m[next])
			}
			next++
		}
		for len(exc) > 0 && exc[0] < p {
			heapPop(&exc)
		}
		for len(lst) > 0 && lst[0].hi < p {
			lst.pop()
		}
		end := ^uint64(0)
		if bi+1 < len(bounds) {
			end = bounds[bi+1] - 1
		}
		var sg seg
		switch {
		case len(exc) > 0:
			sg = seg{lo: p, hi: end, excl: true}
		case len(lst) > 0:
			sg = seg{lo: p, hi: end, codes: lst[0].codes, val: lst[0].val}
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

// spanHeap is a min-heap of ranges by width (then start, narrowest first).
type spanHeap []span

func (h spanHeap) less(i, j int) bool {
	wi, wj := h[i].hi-h[i].lo, h[j].hi-h[j].lo
	if wi != wj {
		return wi < wj
	}
	return h[i].lo > h[j].lo
}

func (h *spanHeap) push(r span) {
	*h = append(*h, r)
	s := *h
	for i := len(s) - 1; i > 0; {
		p := (i - 1) / 2
		if !s.less(i, p) {
			break
		}
		s[i], s[p] = s[p], s[i]
		i = p
	}
}

func (h *spanHeap) pop() {
	s := *h
	n := len(s) - 1
	s[0] = s[n]
	s = s[:n]
	for i := 0; ; {
		l, r, m := 2*i+1, 2*i+2, i
		if l < n && s.less(l, m) {
			m = l
		}
		if r < n && s.less(r, m) {
			m = r
		}
		if m == i {
			break
		}
		s[i], s[m] = s[m], s[i]
		i = m
	}
	*h = s
}

func heapPush(h *[]uint64, v uint64) {
	*h = append(*h, v)
	s := *h
	for i := len(s) - 1; i > 0; {
		p := (i - 1) / 2
		if s[p] <= s[i] {
			break
		}
		s[i], s[p] = s[p], s[i]
		i = p
	}
}

func heapPop(h *[]uint64) {
	s := *h
	n := len(s) - 1
	s[0] = s[n]
	s = s[:n]
	for i := 0; ; {
		l, r, m := 2*i+1, 2*i+2, i
		if l < n && s[l] < s[m] {
			m = l
		}
		if r < n && s[r] < s[m] {
			m = r
		}
		if m == i {
			break
		}
		s[i], s[m] = s[m], s[i]
		i = m
	}
	*h = s
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

// CanonicalZone lower-cases a zone name and strips the trailing dot.
func CanonicalZone(z string) string {
	return strings.TrimSuffix(strings.ToLower(strings.TrimSpace(z)), ".")
}

// Test points (RFC 5782 §5): 127.0.0.2 is always listed, 127.0.0.1 never;
// for IPv6 ::FFFF:7F00:2 and ::FFFF:7F00:1, which unmap to the same.
var (
	TestListed    = netip.AddrFrom4([4]byte{127, 0, 0, 2})
	TestNotListed = netip.AddrFrom4([4]byte{127, 0, 0, 1})
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
		if inSeg {
			return sg.codes, sg.val
		}
		return 0, 0
	}
	lo, hi := int(s.idx4[k>>16]), int(s.idx4[k>>16+1])
	if i, ok := slices.BinarySearch(s.v4[lo:hi], uint16(k)); ok {
		i += lo
		var v uint32
		if s.v4v != nil {
			v = s.v4v[i]
		}
		return s.v4c[i], v
	}
	if inSeg {
		return sg.codes, sg.val
	}
	return 0, 0
}

func findSeg(r []seg, k uint64) (seg, bool) {
	if len(r) == 0 {
		return seg{}, false
	}
	// First segment with hi >= k.
	i, j := 0, len(r)
	for i < j {
		h := int(uint(i+j) >> 1)
		if r[h].hi < k {
			i = h + 1
		} else {
			j = h
		}
	}
	if i < len(r) && r[i].lo <= k {
		return r[i], true
	}
	return seg{}, false
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
		var v uint32
		if s.v6v != nil {
			v = s.v6v[i]
		}
		return s.v6c[i], v
	}
	if inSeg {
		return sg.codes, sg.val
	}
	return 0, 0
}

// Value returns value i of the value table (Find's second result); 0 is the
// zero value: codes only, the zone's TXT.
func (s *Snapshot) Value(i uint32) *Value {
	if int(i) >= len(s.vals) {
		return &Value{}
	}
	return &s.vals[i]
}

// Values is the number of distinct values (1 when every entry uses the zone's defaults).
func (s *Snapshot) Values() int { return max(len(s.vals), 1) }

// Len is the number of entries (single addresses and ranges, exclusions included).
func (s *Snapshot) Len() int { return len(s.v4) + len(s.v6) + len(s.r4) + len(s.r6) + len(s.l6) }

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

// Current holds the snapshot being served; swapping it is atomic, so readers
// never see a half-built set.
type Current struct {
	p atomic.Pointer[Snapshot]
}

// Load returns the current snapshot (never nil after the first Store).
func (c *Current) Load() *Snapshot { return c.p.Load() }

// Store swaps in a new snapshot.
func (c *Current) Store(s *Snapshot) { c.p.Store(s) }

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
	i, j := 0, len(r)
	for i < j {
		h := int(uint(i+j) >> 1)
		if r[h].hi < lo {
			i = h + 1
		} else {
			j = h
		}
	}
	for ; i < len(r) && r[i].lo <= hi; i++ {
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

// With returns a new snapshot: s with the given single-unit entries set
// (IPv4 /32, IPv6 /64; Codes 0 and no Value removes the entry) and info
// replaced. Ranges are carried over unchanged. It costs one pass over the
// arrays, not a rebuild, so a 1M-entry zone takes a few milliseconds per batch.
func (s *Snapshot) With(info Info, changes []Entry) *Snapshot {
	info.Zone = CanonicalZone(info.Zone)
	n := &Snapshot{Info: info, r4: s.r4, r6: s.r6, l6: s.l6, vals: s.vals}
	var keys map[string]uint32
	intern := func(v *Value) uint32 {
		if v.isZero() {
			return 0
		}
		if keys == nil {
			keys = make(map[string]uint32, len(n.vals))
			for i := range n.vals {
				keys[n.vals[i].key()] = uint32(i)
			}
			n.vals = slices.Clone(n.vals)
			if len(n.vals) == 0 {
				n.vals = []Value{{}}
			}
		}
		k := v.key()
		if i, ok := keys[k]; ok {
			return i
		}
		i := uint32(len(n.vals))
		n.vals = append(n.vals, Value{A: slices.Clone(v.A), TXT: v.TXT, OwnTXT: v.OwnTXT})
		keys[k] = i
		return i
	}
	var ch4 []change[uint32]
	var ch6 []change[uint64]
	for _, e := range changes {
		a := e.Prefix.Addr().Unmap()
		v := intern(e.Value)
		if a.Is4() {
			b := a.As4()
			ch4 = append(ch4, change[uint32]{binary.BigEndian.Uint32(b[:]), e.Codes, v})
		} else {
			b := a.As16()
			ch6 = append(ch6, change[uint64]{binary.BigEndian.Uint64(b[:8]), e.Codes, v})
		}
	}
	// Stable sort keeps the last change for a key last.
	slices.SortStableFunc(ch4, func(a, b change[uint32]) int { return cmp.Compare(a.k, b.k) })
	slices.SortStableFunc(ch6, func(a, b change[uint64]) int { return cmp.Compare(a.k, b.k) })
	n.v4, n.v4c, n.v4v, n.idx4 = s.merge4(ch4)
	n.v6, n.v6c, n.v6v = merge(s.v6, s.v6c, s.v6v, ch6)
	return n
}

// merge4 applies sorted changes to the IPv4 singles: untouched runs are
// copied whole, and the /16 index is shifted by the entries added and
// removed before each bucket.
func (s *Snapshot) merge4(ch []change[uint32]) ([]uint16, []Codes, []uint32, []uint32) {
	if len(ch) == 0 {
		return s.v4, s.v4c, s.v4v, s.idx4
	}
	withVals := s.v4v != nil
	for _, c := range ch {
		withVals = withVals || c.v != 0
	}
	n := len(s.v4)
	ok := make([]uint16, 0, n+len(ch))
	oc := make([]Codes, 0, n+len(ch))
	var ov []uint32
	if withVals {
		ov = make([]uint32, 0, n+len(ch))
	}
	copyRun := func(i, j int) {
		ok = append(ok, s.v4[i:j]...)
		oc = append(oc, s.v4c[i:j]...)
		if withVals {
			if s.v4v != nil {
				ov = append(ov, s.v4v[i:j]...)
			} else {
				ov = append(ov, make([]uint32, j-i)...)
			}
		}
	}
	type delta struct {
		bucket uint32
		d      int
	}
	var deltas []delta
	i := 0
	for j := 0; j < len(ch); j++ {
		for j+1 < len(ch) && ch[j+1].k == ch[j].k {
			j++ // the last change for a key wins
		}
		c := ch[j]
		run := s.lowerBound4(c.k)
		copyRun(i, run)
		i = run
		d := 0
		if i < n && s.key4(i) == c.k {
			i++ // replaced or removed
			d--
		}
		if c.c != 0 || c.v != 0 {
			ok = append(ok, uint16(c.k))
			oc = append(oc, c.c)
			if withVals {
				ov = append(ov, c.v)
			}
			d++
		}
		if d != 0 {
			deltas = append(deltas, delta{c.k >> 16, d})
		}
	}
	copyRun(i, n)
	if len(ok) == 0 {
		return nil, nil, nil, nil
	}
	idx := make([]uint32, 1<<16+1)
	shift, di := 0, 0
	for h := 0; h <= 1<<16; h++ {
		for di < len(deltas) && int(deltas[di].bucket) < h {
			shift += deltas[di].d
			di++
		}
		old := 0
		if s.idx4 != nil {
			old = int(s.idx4[h])
		}
		idx[h] = uint32(old + shift)
	}
	return ok, oc, ov, idx
}

type change[K cmp.Ordered] struct {
	k K
	c Codes
	v uint32
}

func merge[K cmp.Ordered](keys []K, codes []Codes, vals []uint32, ch []change[K]) ([]K, []Codes, []uint32) {
	if len(ch) == 0 {
		return keys, codes, vals
	}
	withVals := vals != nil
	for _, c := range ch {
		withVals = withVals || c.v != 0
	}
	ok := make([]K, 0, len(keys)+len(ch))
	oc := make([]Codes, 0, len(keys)+len(ch))
	var ov []uint32
	if withVals {
		ov = make([]uint32, 0, len(keys)+len(ch))
	}
	copyRun := func(i, j int) {
		ok = append(ok, keys[i:j]...)
		oc = append(oc, codes[i:j]...)
		if withVals {
			if vals != nil {
				ov = append(ov, vals[i:j]...)
			} else {
				ov = append(ov, make([]uint32, j-i)...)
			}
		}
	}
	i := 0
	for j := 0; j < len(ch); j++ {
		// Skip to the last change for this key.
		for j+1 < len(ch) && ch[j+1].k == ch[j].k {
			j++
		}
		c := ch[j]
		run, _ := slices.BinarySearch(keys[i:], c.k)
		run += i
		copyRun(i, run)
		i = run
		if i < len(keys) && keys[i] == c.k {
			i++ // replaced or removed
		}
		if c.c != 0 || c.v != 0 {
			ok = append(ok, c.k)
			oc = append(oc, c.c)
			if withVals {
				ov = append(ov, c.v)
			}
		}
	}
	copyRun(i, len(keys))
	return ok, oc, ov
}
