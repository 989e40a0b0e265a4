package zones

import (
	"cmp"
	"encoding/binary"
	"slices"
	"sort"
)

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
