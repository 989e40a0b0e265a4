package web

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Redaction of trap local parts (CONTRACT.md "HTTP": the trap's local part
// is never shown publicly), for the lookup page, the lookup and explain
// APIs and the delist answer.
//
// The old redaction searched a lower-cased copy and cut the original at
// the index found there: strings.ToLower changes byte lengths (KELVIN SIGN
// U+212A is 3 bytes, its lower case "k" one; every invalid byte becomes a
// 3-byte U+FFFD), so the cut landed in the wrong place or out of range (a
// panic), and a replacement that contained the local part ("…") was found
// again forever. This one decodes the text once into units (a rune, or
// one byte of invalid UTF-8), folds case per unit, finds every occurrence
// of every local part with one Aho-Corasick automaton in one pass, and
// replaces each maximal run of hidden units by one "…". Time is linear in
// the text plus the local parts; the output never reads its own output.

// ellipsis replaces each hidden run.
const ellipsis = "…"

// minHidden: local parts shorter than this (in bytes) are not hidden (a
// trap address "ab@..." would blank every "ab" on the page).
const minHidden = 3

// foldUnit is the case-fold class of one unit: the smallest rune in the
// rune's simple case-folding orbit (what strings.EqualFold compares), and
// for a byte of invalid UTF-8 a value no rune has (it matches only itself).
func foldUnit(r rune, size int, b byte) rune {
	if r == utf8.RuneError && size == 1 {
		return -1 - rune(b)
	}
	m := r
	for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
		if f < m {
			m = f
		}
	}
	return m
}

// redactor hides a set of local parts. The zero value hides nothing.
type redactor struct {
	// Aho-Corasick automaton over folded units; node 0 is the root.
	next  []map[rune]int32
	fail  []int32
	depth []int32 // longest pattern (in units) ending at this node, via fail links; 0: none
}

// localPart is the local part of a recipient, "<local@domain>" or
// "local@domain".
func localPart(rcpt string) string {
	local := strings.TrimSuffix(strings.TrimPrefix(rcpt, "<"), ">")
	if i := strings.LastIndexByte(local, '@'); i >= 0 {
		local = local[:i]
	}
	return local
}

// newRedactor builds the automaton for the local parts of rcpts ("<local@domain>" or "local@domain").
func newRedactor(rcpts []string) *redactor {
	r := &redactor{next: []map[rune]int32{{}}, fail: []int32{0}, depth: []int32{0}}
	n := 0
	for _, rc := range rcpts {
		local := localPart(rc)
		if len(local) < minHidden {
			continue
		}
		n++
		node, units := int32(0), int32(0)
		for i := 0; i < len(local); {
			c, size := utf8.DecodeRuneInString(local[i:])
			f := foldUnit(c, size, local[i])
			i += size
			units++
			nx, ok := r.next[node][f]
			if !ok {
				nx = int32(len(r.next))
				r.next = append(r.next, map[rune]int32{})
				r.fail = append(r.fail, 0)
				r.depth = append(r.depth, 0)
				r.next[node][f] = nx
			}
			node = nx
		}
		r.depth[node] = max(r.depth[node], units)
	}
	if n == 0 {
		return &redactor{}
	}
	// Breadth-first: fail links, and each node's depth is the longest
	// pattern ending there (its own or one reached by fail links).
	queue := make([]int32, 0, len(r.next))
	for _, c := range r.next[0] {
		queue = append(queue, c)
	}
	for len(queue) > 0 {
		u := queue[0]
		queue = queue[1:]
		for f, v := range r.next[u] {
			w := r.fail[u]
			for {
				if x, ok := r.next[w][f]; ok && x != v {
					r.fail[v] = x
					break
				}
				if w == 0 {
					break
				}
				w = r.fail[w]
			}
			r.depth[v] = max(r.depth[v], r.depth[r.fail[v]])
			queue = append(queue, v)
		}
	}
	return r
}

// step follows one unit from node.
func (r *redactor) step(node int32, f rune) int32 {
	for {
		if x, ok := r.next[node][f]; ok {
			return x
		}
		if node == 0 {
			return 0
		}
		node = r.fail[node]
	}
}

// Hide returns s with every case-insensitive occurrence of a local part
// replaced: each maximal run of hidden units becomes one "…".
func (r *redactor) Hide(s string) string {
	if r == nil || len(r.next) <= 1 || s == "" {
		return s
	}
	// starts[k] is the byte offset of unit k; hidden runs are kept as
	// unit intervals, merged as they come (matches end in order).
	type span struct{ lo, hi int } // units [lo, hi)
	var (
		starts []int
		spans  []span
		node   int32
	)
	for i := 0; i < len(s); {
		c, size := utf8.DecodeRuneInString(s[i:])
		f := foldUnit(c, size, s[i])
		k := len(starts)
		starts = append(starts, i)
		i += size
		node = r.step(node, f)
		if d := int(r.depth[node]); d > 0 {
			sp := span{k + 1 - d, k + 1}
			// Merge with the spans it touches or overlaps (a longer
			// match may start before earlier ones).
			for len(spans) > 0 && spans[len(spans)-1].hi >= sp.lo {
				sp.lo = min(sp.lo, spans[len(spans)-1].lo)
				spans = spans[:len(spans)-1]
			}
			spans = append(spans, sp)
		}
	}
	if len(spans) == 0 {
		return s
	}
	starts = append(starts, len(s))
	var b strings.Builder
	b.Grow(len(s))
	prev := 0
	for _, sp := range spans {
		b.WriteString(s[starts[prev]:starts[sp.lo]])
		b.WriteString(ellipsis)
		prev = sp.hi
	}
	b.WriteString(s[starts[prev]:])
	return b.String()
}
