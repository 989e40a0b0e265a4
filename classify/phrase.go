package classify

import (
	"strings"
	"unicode/utf8"
)

// The phrase index: the signature lists are matched against a notice's
// text many times over (a few hundred phrases, each a substring search of
// up to 64 KiB). Instead, the text is scanned once: every phrase of the
// registered lists is filed under a hash of its first three bytes, and at
// each position of the text only the phrases filed under that position's
// hash are compared. The answer of a list lookup is the same as
// containsAny's: the first phrase of the list, in list order, that occurs.

const phraseHashBits = 14

// phraseIndex is built once from the signature tables and never changes.
type phraseIndex struct {
	pats  []string // by id
	table [1 << phraseHashBits][]int32
	// used has a bit per non-empty table slot: 2 KiB that stay in cache,
	// so most text positions cost one bit test.
	used   [1 << phraseHashBits / 64]uint64
	short  []int32             // phrases under 3 bytes: searched directly
	lists  map[*string][]int32 // first element of a registered list -> its ids, in list order
	ids    map[string]int32
	maxLen int
}

func phraseHash(b0, b1, b2 byte) uint32 {
	return (uint32(b0)*0x9E37 ^ uint32(b1)*0x85EB ^ uint32(b2)*0xC2B3) & (1<<phraseHashBits - 1)
}

func newPhraseIndex(lists ...[]string) *phraseIndex {
	ix := &phraseIndex{lists: map[*string][]int32{}, ids: map[string]int32{}}
	for _, l := range lists {
		ix.register(l)
	}
	return ix
}

func (ix *phraseIndex) register(l []string) {
	if len(l) == 0 || ix.lists[&l[0]] != nil {
		return
	}
	ids := make([]int32, len(l))
	for i, p := range l {
		id, ok := ix.ids[p]
		if !ok {
			id = int32(len(ix.pats))
			ix.ids[p] = id
			ix.pats = append(ix.pats, p)
			ix.maxLen = max(ix.maxLen, len(p))
			if len(p) < 3 {
				ix.short = append(ix.short, id)
			} else {
				h := phraseHash(p[0], p[1], p[2])
				ix.table[h] = append(ix.table[h], id)
				ix.used[h/64] |= 1 << (h % 64)
			}
		}
		ids[i] = id
	}
	ix.lists[&l[0]] = ids
}

// phraseHits is which phrases a text contains.
type phraseHits struct {
	ix   *phraseIndex
	text string
	hit  []uint64 // bit per phrase id
}

// scan finds every indexed phrase in text.
func (ix *phraseIndex) scan(text string) *phraseHits {
	h := &phraseHits{ix: ix, text: text, hit: make([]uint64, (len(ix.pats)+63)/64)}
	h.scanFrom(0)
	return h
}

// extend returns the hits of text, which starts with h.text, scanning only
// what is new.
func (h *phraseHits) extend(text string) *phraseHits {
	if text == h.text {
		return h
	}
	if !strings.HasPrefix(text, h.text) {
		return h.ix.scan(text)
	}
	n := &phraseHits{ix: h.ix, text: text, hit: append([]uint64(nil), h.hit...)}
	n.scanFrom(max(0, len(h.text)-h.ix.maxLen))
	return n
}

func (h *phraseHits) scanFrom(start int) {
	ix, text := h.ix, h.text
	for i := start; i+2 < len(text); i++ {
		hv := phraseHash(text[i], text[i+1], text[i+2])
		if ix.used[hv/64]&(1<<(hv%64)) == 0 {
			continue
		}
		for _, id := range ix.table[hv] {
			if h.hit[id/64]&(1<<(id%64)) != 0 {
				continue
			}
			if p := ix.pats[id]; strings.HasPrefix(text[i:], p) {
				h.hit[id/64] |= 1 << (id % 64)
			}
		}
	}
	for _, id := range ix.short {
		if strings.Contains(text[start:], ix.pats[id]) {
			h.hit[id/64] |= 1 << (id % 64)
		}
	}
}

// ids are the phrase ids of a registered list, or nil.
func (ix *phraseIndex) listIDs(pats []string) []int32 {
	if len(pats) == 0 {
		return nil
	}
	if ids := ix.lists[&pats[0]]; len(ids) == len(pats) {
		return ids
	}
	return nil
}

func (h *phraseHits) has(id int32) bool { return h.hit[id/64]&(1<<(id%64)) != 0 }

// any is containsAny(h.text, pats) for a registered list, by the index.
func (h *phraseHits) any(pats []string) (string, bool) {
	if len(pats) == 0 {
		return "", false
	}
	ids := h.ix.listIDs(pats)
	if ids == nil {
		return containsAny(h.text, pats)
	}
	for i, id := range ids {
		if h.has(id) {
			return pats[i], true
		}
	}
	return "", false
}

// contains is strings.Contains(h.text, p), by the index when p is in it.
func (h *phraseHits) contains(p string) bool {
	if id, ok := h.ix.ids[p]; ok {
		return h.has(id)
	}
	return strings.Contains(h.text, p)
}

// phrases indexes the signature lists matched against notice text.
var phrases = func() *phraseIndex {
	lists := [][]string{smtpDiagnostics, avBody, autoreplyBody, challengeAct, challengeHold, delayBody,
		aboutYourMessage, lurePhrases, listHeldBody, listRejectBody, receiptBody, vacationWords, movedWords, ackWords}
	for _, s := range ndrSigs {
		lists = append(lists, s.pats)
	}
	for _, s := range gatewaySigs {
		lists = append(lists, s.pats)
	}
	return newPhraseIndex(lists...)
}()

// noticeHits and fullHits scan the notice and the full text once.
func (a *analysis) noticeHits() *phraseHits {
	if a.nh == nil {
		a.nh = phrases.scan(a.notice)
	}
	return a.nh
}

func (a *analysis) fullHits() *phraseHits {
	if a.fh == nil {
		a.fh = a.noticeHits().extend(a.full)
	}
	return a.fh
}

// first returns the smallest offset at which any phrase of the index starts
// in text, or -1: min over the phrases of strings.Index, in one scan.
func (ix *phraseIndex) first(text string) int {
	best := -1
	for _, id := range ix.short {
		if i := strings.Index(text, ix.pats[id]); i >= 0 && (best < 0 || i < best) {
			best = i
		}
	}
	for i := 0; i+2 < len(text) && (best < 0 || i < best); i++ {
		hv := phraseHash(text[i], text[i+1], text[i+2])
		if ix.used[hv/64]&(1<<(hv%64)) == 0 {
			continue
		}
		for _, id := range ix.table[hv] {
			if strings.HasPrefix(text[i:], ix.pats[id]) {
				return i
			}
		}
	}
	return best
}

// markers indexes the lines that introduce an inline copy of the original.
var markers = newPhraseIndex(inlineOriginalMarkers)

// firstFoldASCII is first(strings.ToLower(text)) for an ASCII text,
// lowering as it goes instead of copying.
func (ix *phraseIndex) firstFoldASCII(text string) int {
	lower := func(c byte) byte {
		if 'A' <= c && c <= 'Z' {
			return c + 'a' - 'A'
		}
		return c
	}
	best := -1
	for _, id := range ix.short {
		if i := indexFoldASCII(text, ix.pats[id]); i >= 0 && (best < 0 || i < best) {
			best = i
		}
	}
	for i := 0; i+2 < len(text) && (best < 0 || i < best); i++ {
		hv := phraseHash(lower(text[i]), lower(text[i+1]), lower(text[i+2]))
		if ix.used[hv/64]&(1<<(hv%64)) == 0 {
			continue
		}
		for _, id := range ix.table[hv] {
			if p := ix.pats[id]; len(text)-i >= len(p) && strings.EqualFold(text[i:i+len(p)], p) {
				return i
			}
		}
	}
	return best
}

func indexFoldASCII(s, p string) int {
	for i := 0; i+len(p) <= len(s); i++ {
		if strings.EqualFold(s[i:i+len(p)], p) {
			return i
		}
	}
	return -1
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}
