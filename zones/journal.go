package zones

import (
	"iter"
	"net/netip"
	"slices"
	"sync"
)

// Change is one owner name (see Names) whose codes differ between two
// versions of a zone: Old 0 means the name was added, New 0 removed.
type Change struct {
	Name     netip.Prefix
	Old, New Codes
}

// Journal keeps the zone versions handed to secondaries and the changes
// between them, for IXFR (RFC 1995): the differences of the last versions,
// bounded by a number of changes. It holds one snapshot (the latest); older
// versions exist only as their differences.
type Journal struct {
	max int

	mu     sync.Mutex
	latest *Snapshot
	diffs  []jdiff // oldest first, contiguous: diffs[i].to == diffs[i+1].from
	total  int
}

type jdiff struct {
	from, to uint32
	changes  []Change
}

// NewJournal returns a journal keeping at most maxChanges changes
// (default 100000).
func NewJournal(maxChanges int) *Journal {
	if maxChanges <= 0 {
		maxChanges = 100000
	}
	return &Journal{max: maxChanges}
}

// Latest returns the newest version recorded (nil before the first).
func (j *Journal) Latest() *Snapshot {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.latest
}

// Record makes s the latest version, keeping its difference to the previous
// one. It costs one pass over both zones. A version whose zone name, TXT or
// TTL differ starts the journal afresh (every record changed).
func (j *Journal) Record(s *Snapshot) {
	j.mu.Lock()
	prev := j.latest
	j.mu.Unlock()
	if prev == s || (prev != nil && prev.Serial == s.Serial) {
		return
	}
	var changes []Change
	reset := prev == nil || prev.Zone != s.Zone || prev.TXT != s.TXT || prev.TTL != s.TTL || !SerialLess(prev.Serial, s.Serial)
	if !reset {
		changes = Diff(prev, s)
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.latest != prev {
		// Another Record ran meanwhile: keep the journal consistent.
		j.diffs, j.total = nil, 0
	} else if reset || len(changes) > j.max {
		j.diffs, j.total = nil, 0
	} else {
		j.diffs = append(j.diffs, jdiff{prev.Serial, s.Serial, changes})
		j.total += len(changes)
		for j.total > j.max {
			j.total -= len(j.diffs[0].changes)
			j.diffs = j.diffs[1:]
		}
	}
	j.latest = s
}

// Since returns the latest version and the condensed changes from version
// serial to it, sorted as Names orders them. ok is false when the journal
// does not reach back to serial: the caller sends the whole zone (RFC 1995
// §4). A serial equal to the latest gives no changes.
func (j *Journal) Since(serial uint32) (latest *Snapshot, changes []Change, ok bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.latest == nil {
		return nil, nil, false
	}
	if serial == j.latest.Serial {
		return j.latest, nil, true
	}
	i := slices.IndexFunc(j.diffs, func(d jdiff) bool { return d.from == serial })
	if i < 0 {
		return j.latest, nil, false
	}
	if i == len(j.diffs)-1 {
		return j.latest, j.diffs[i].changes, true
	}
	type oc struct {
		old, new Codes
	}
	m := map[netip.Prefix]*oc{}
	var order []netip.Prefix
	for _, d := range j.diffs[i:] {
		for _, c := range d.changes {
			if x, ok := m[c.Name]; ok {
				x.new = c.New
				continue
			}
			m[c.Name] = &oc{c.Old, c.New}
			order = append(order, c.Name)
		}
	}
	for _, p := range order {
		if x := m[p]; x.old != x.new {
			changes = append(changes, Change{p, x.old, x.new})
		}
	}
	slices.SortFunc(changes, func(a, b Change) int { return Name{Prefix: a.Name}.Compare(Name{Prefix: b.Name}) })
	return j.latest, changes, true
}

// SerialLess is RFC 1982 serial number arithmetic: a < b (b is newer).
func SerialLess(a, b uint32) bool {
	return a != b && (a < b && b-a < 1<<31 || a > b && a-b > 1<<31)
}

// Diff returns the names whose codes differ between a and b, in Names order
// (one merge pass over both).
func Diff(a, b *Snapshot) []Change {
	if singlesOnly(a) && singlesOnly(b) {
		return diffSingles(a, b)
	}
	return diffNames(a, b)
}

// singlesOnly: a zone of single units only (blowback's own listings), whose
// names are its IPv4 /32s and IPv6 /64s one for one.
func singlesOnly(s *Snapshot) bool {
	return len(s.r4) == 0 && len(s.r6) == 0 && len(s.l6) == 0 && s.Values() <= 1
}

// diffSingles merges the sorted unit arrays directly (milliseconds for a
// million entries, where walking the names takes a second).
func diffSingles(a, b *Snapshot) []Change {
	var out []Change
	a.diff4(b, func(k uint32, o, n Codes) {
		if k == 0x7f000001 || k == 0x7f000002 {
			return // RFC 5782 §5 test points: pinned, never change
		}
		out = append(out, Change{netip.PrefixFrom(addr4(k), 32), o, n})
	})
	diffSorted(a.v6, a.v6c, b.v6, b.v6c, func(k uint64, o, n Codes) {
		if k == 0 {
			return // ::/64 is never exported (testPoint6)
		}
		out = append(out, Change{netip.PrefixFrom(addr6(k), 64), o, n})
	})
	return out
}

func diffSorted[K uint32 | uint64](ak []K, ac []Codes, bk []K, bc []Codes, fn func(k K, old, new Codes)) {
	i, j := 0, 0
	for i < len(ak) || j < len(bk) {
		switch {
		case j == len(bk) || (i < len(ak) && ak[i] < bk[j]):
			fn(ak[i], ac[i], 0)
			i++
		case i == len(ak) || bk[j] < ak[i]:
			fn(bk[j], 0, bc[j])
			j++
		default:
			if ac[i] != bc[j] {
				fn(ak[i], ac[i], bc[j])
			}
			i++
			j++
		}
	}
}

// diffNames is Diff for any zone: a merge of the two name streams.
func diffNames(a, b *Snapshot) []Change {
	na, stopA := iter.Pull(iter.Seq[Name](a.Names))
	defer stopA()
	nb, stopB := iter.Pull(iter.Seq[Name](b.Names))
	defer stopB()
	var out []Change
	x, okx := na()
	y, oky := nb()
	for okx || oky {
		c := 0
		switch {
		case !okx:
			c = 1
		case !oky:
			c = -1
		default:
			c = x.Compare(y)
		}
		switch {
		case c < 0:
			out = append(out, Change{x.Prefix, x.Codes, 0})
			x, okx = na()
		case c > 0:
			out = append(out, Change{y.Prefix, 0, y.Codes})
			y, oky = nb()
		default:
			if x.Codes != y.Codes {
				out = append(out, Change{x.Prefix, x.Codes, y.Codes})
			}
			x, okx = na()
			y, oky = nb()
		}
	}
	return out
}
