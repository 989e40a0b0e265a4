// Package zones holds the listed set as an immutable snapshot that DNS
// servers answer from and exporters write out, and the table that maps
// kinds of evidence to DNSBL return codes.
//
// A Snapshot is never changed after Build; a new listing produces a new
// snapshot that is swapped in atomically (see Current).
package zones

import (
	"net/netip"
	"strings"
	"sync/atomic"
	"time"
)

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

// Current holds the snapshot being served; swapping it is atomic, so readers
// never see a half-built set.
type Current struct {
	p atomic.Pointer[Snapshot]
}

// Load returns the current snapshot (never nil after the first Store).
func (c *Current) Load() *Snapshot { return c.p.Load() }

// Store swaps in a new snapshot.
func (c *Current) Store(s *Snapshot) { c.p.Store(s) }
