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

// Entry is one listed prefix with its codes. IPv4 entries are /32 or wider,
// IPv6 entries /64 or wider.
type Entry struct {
	Prefix  netip.Prefix
	Codes   Codes
	Exclude bool // rbldnsd "!" exclusion: never listed, overrides wider entries
}

// Info describes a zone apart from its entries.
type Info struct {
	Zone   string        // zone name, lower case, no trailing dot
	Serial uint32        // SOA serial
	TXT    string        // TXT template, "$" replaced by the queried address
	TTL    time.Duration // TTL of answers
	Built  time.Time     // when the listing this snapshot holds was decided
}

type rng4 struct {
	lo, hi uint32
	codes  Codes
	excl   bool
}

type rng6 struct {
	lo, hi uint64 // /64 units
	codes  Codes
	excl   bool
}

// Snapshot is an immutable listed set. Single addresses (the bulk) are kept
// as sorted integer arrays with a parallel code array: 5 bytes per IPv4
// entry, 9 per IPv6 /64. Wider prefixes and exclusions are kept as ranges.
type Snapshot struct {
	Info
	v4  []uint32
	v4c []Codes
	v6  []uint64
	v6c []Codes
	r4  []rng4 // sorted by lo, may overlap
	r6  []rng6
}

// Build makes a snapshot from entries (any order; later duplicates merge codes).
func Build(info Info, entries []Entry) *Snapshot {
	s := &Snapshot{Info: info}
	s.Zone = CanonicalZone(info.Zone)
	type e4 struct {
		k uint32
		c Codes
	}
	type e6 struct {
		k uint64
		c Codes
	}
	var s4 []e4
	var s6 []e6
	for _, e := range entries {
		p := e.Prefix.Masked()
		a := p.Addr().Unmap()
		if a.Is4() {
			bits := p.Bits()
			if p.Addr().Is4In6() {
				bits -= 96
			}
			lo := binary.BigEndian.Uint32(a.AsSlice())
			if bits == 32 && !e.Exclude {
				s4 = append(s4, e4{lo, e.Codes})
				continue
			}
			hi := lo | uint32(uint64(1)<<(32-bits)-1)
			s.r4 = append(s.r4, rng4{lo, hi, e.Codes, e.Exclude})
			continue
		}
		b := a.As16()
		lo := binary.BigEndian.Uint64(b[:8])
		bits := min(p.Bits(), 64)
		if bits == 64 && !e.Exclude {
			s6 = append(s6, e6{lo, e.Codes})
			continue
		}
		var hi uint64
		if bits == 0 {
			hi = ^uint64(0)
		} else {
			hi = lo | (uint64(1)<<(64-bits) - 1)
		}
		s.r6 = append(s.r6, rng6{lo, hi, e.Codes, e.Exclude})
	}
	slices.SortFunc(s4, func(a, b e4) int { return cmp.Compare(a.k, b.k) })
	slices.SortFunc(s6, func(a, b e6) int { return cmp.Compare(a.k, b.k) })
	s.v4 = make([]uint32, 0, len(s4))
	s.v4c = make([]Codes, 0, len(s4))
	for _, e := range s4 {
		if n := len(s.v4); n > 0 && s.v4[n-1] == e.k {
			s.v4c[n-1] |= e.c
			continue
		}
		s.v4 = append(s.v4, e.k)
		s.v4c = append(s.v4c, e.c)
	}
	s.v6 = make([]uint64, 0, len(s6))
	s.v6c = make([]Codes, 0, len(s6))
	for _, e := range s6 {
		if n := len(s.v6); n > 0 && s.v6[n-1] == e.k {
			s.v6c[n-1] |= e.c
			continue
		}
		s.v6 = append(s.v6, e.k)
		s.v6c = append(s.v6c, e.c)
	}
	slices.SortFunc(s.r4, func(a, b rng4) int { return cmp.Compare(a.lo, b.lo) })
	slices.SortFunc(s.r6, func(a, b rng6) int { return cmp.Compare(a.lo, b.lo) })
	return s
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
// are looked up by their /64; IPv4-mapped IPv6 addresses as IPv4.
func (s *Snapshot) Lookup(a netip.Addr) Codes {
	a = a.Unmap()
	if a.Is4() {
		b := a.As4()
		return s.Lookup4(binary.BigEndian.Uint32(b[:]))
	}
	b := a.As16()
	return s.Lookup6(binary.BigEndian.Uint64(b[:8]))
}

// Lookup4 is Lookup for an IPv4 address as a big-endian integer.
func (s *Snapshot) Lookup4(k uint32) Codes {
	switch k {
	case 0x7f000002:
		return CodeAll // RFC 5782 §5
	case 0x7f000001:
		return 0 // RFC 5782 §5
	}
	var c Codes
	if i, ok := slices.BinarySearch(s.v4, k); ok {
		c = s.v4c[i]
	}
	if len(s.r4) > 0 {
		for _, r := range s.r4 {
			if r.lo > k {
				break
			}
			if k <= r.hi {
				if r.excl {
					return 0
				}
				c |= r.codes
			}
		}
	}
	return c
}

// Lookup6 is Lookup for an IPv6 /64 as a big-endian integer of its first 8 bytes.
func (s *Snapshot) Lookup6(k uint64) Codes {
	var c Codes
	if i, ok := slices.BinarySearch(s.v6, k); ok {
		c = s.v6c[i]
	}
	for _, r := range s.r6 {
		if r.lo > k {
			break
		}
		if k <= r.hi {
			if r.excl {
				return 0
			}
			c |= r.codes
		}
	}
	return c
}

// Len is the number of entries (single addresses and ranges, exclusions included).
func (s *Snapshot) Len() int { return len(s.v4) + len(s.v6) + len(s.r4) + len(s.r6) }

// Entries calls fn for every entry: IPv4 singles, IPv4 ranges, IPv6 singles,
// IPv6 ranges, each in address order. It stops when fn returns false.
func (s *Snapshot) Entries(fn func(Entry) bool) {
	for i, k := range s.v4 {
		if !fn(Entry{Prefix: netip.PrefixFrom(addr4(k), 32), Codes: s.v4c[i]}) {
			return
		}
	}
	for _, r := range s.r4 {
		for _, p := range rangePrefixes4(r.lo, r.hi) {
			if !fn(Entry{Prefix: p, Codes: r.codes, Exclude: r.excl}) {
				return
			}
		}
	}
	for i, k := range s.v6 {
		if !fn(Entry{Prefix: netip.PrefixFrom(addr6(k), 64), Codes: s.v6c[i]}) {
			return
		}
	}
	for _, r := range s.r6 {
		for _, p := range rangePrefixes6(r.lo, r.hi) {
			if !fn(Entry{Prefix: p, Codes: r.codes, Exclude: r.excl}) {
				return
			}
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
	i, _ := slices.BinarySearch(s.v4, lo)
	if i < len(s.v4) && s.v4[i] <= hi {
		return true
	}
	for _, r := range s.r4 {
		if r.lo > hi {
			break
		}
		if !r.excl && r.hi >= lo {
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
	for _, r := range s.r6 {
		if r.lo > hi {
			break
		}
		if !r.excl && r.hi >= lo {
			return true
		}
	}
	return false
}

// With returns a new snapshot: s with the given single-unit entries set
// (IPv4 /32, IPv6 /64; Codes 0 removes the entry) and info replaced. Ranges
// are carried over unchanged. It costs one pass over the arrays, not a
// rebuild, so a 1M-entry zone takes a few milliseconds per batch.
func (s *Snapshot) With(info Info, changes []Entry) *Snapshot {
	info.Zone = CanonicalZone(info.Zone)
	n := &Snapshot{Info: info, r4: s.r4, r6: s.r6}
	type c4 struct {
		k uint32
		c Codes
	}
	type c6 struct {
		k uint64
		c Codes
	}
	var ch4 []c4
	var ch6 []c6
	for _, e := range changes {
		a := e.Prefix.Addr().Unmap()
		if a.Is4() {
			b := a.As4()
			ch4 = append(ch4, c4{binary.BigEndian.Uint32(b[:]), e.Codes})
		} else {
			b := a.As16()
			ch6 = append(ch6, c6{binary.BigEndian.Uint64(b[:8]), e.Codes})
		}
	}
	// Stable sort keeps the last change for a key last.
	slices.SortStableFunc(ch4, func(a, b c4) int { return cmp.Compare(a.k, b.k) })
	slices.SortStableFunc(ch6, func(a, b c6) int { return cmp.Compare(a.k, b.k) })
	n.v4, n.v4c = merge(s.v4, s.v4c, len(ch4), func(i int) (uint32, Codes) { return ch4[i].k, ch4[i].c })
	n.v6, n.v6c = merge(s.v6, s.v6c, len(ch6), func(i int) (uint64, Codes) { return ch6[i].k, ch6[i].c })
	return n
}

func merge[K cmp.Ordered](keys []K, codes []Codes, nch int, ch func(int) (K, Codes)) ([]K, []Codes) {
	if nch == 0 {
		return keys, codes
	}
	ok := make([]K, 0, len(keys)+nch)
	oc := make([]Codes, 0, len(keys)+nch)
	i, j := 0, 0
	for i < len(keys) || j < nch {
		if j < nch {
			k, c := ch(j)
			// Skip to the last change for this key.
			for j+1 < nch {
				k2, c2 := ch(j + 1)
				if k2 != k {
					break
				}
				c = c2
				j++
			}
			// Copy the untouched run before k in one go.
			run := i
			for run < len(keys) && keys[run] < k {
				run++
			}
			ok = append(ok, keys[i:run]...)
			oc = append(oc, codes[i:run]...)
			i = run
			if i < len(keys) && keys[i] == k {
				i++ // replaced or removed
			}
			if c != 0 {
				ok = append(ok, k)
				oc = append(oc, c)
			}
			j++
			continue
		}
		ok = append(ok, keys[i:]...)
		oc = append(oc, codes[i:]...)
		break
	}
	return ok, oc
}
