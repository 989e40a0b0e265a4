// Package lru is a map of bounded size that forgets its least recently
// used key: the state of per-client limits and caps (internal/ratelimit,
// forward's per-unit spool cap), where an attacker controls the keys and
// memory must stay bounded whatever they send. Not safe for concurrent
// use: its users hold their own lock around it.
package lru

import "container/list"

// Map holds at most its capacity of keys.
type Map[K comparable, V any] struct {
	max int
	m   map[K]*list.Element
	l   list.List // of *entry[K, V], most recently used at the front
}

type entry[K comparable, V any] struct {
	k K
	v V
}

// New returns an empty map that holds at most size keys (at least 1).
func New[K comparable, V any](size int) *Map[K, V] {
	return &Map[K, V]{max: max(size, 1), m: map[K]*list.Element{}}
}

// Use returns the value of k, marking k used. An absent k is added with
// the value fresh returns (forgetting the least recently used key when the
// map is full); added reports that.
func (c *Map[K, V]) Use(k K, fresh func() V) (v *V, added bool) {
	if el, ok := c.m[k]; ok {
		c.l.MoveToFront(el)
		return &el.Value.(*entry[K, V]).v, false
	}
	if len(c.m) >= c.max {
		old := c.l.Back()
		c.l.Remove(old)
		delete(c.m, old.Value.(*entry[K, V]).k)
	}
	el := c.l.PushFront(&entry[K, V]{k: k, v: fresh()})
	c.m[k] = el
	return &el.Value.(*entry[K, V]).v, true
}

// Peek returns the value of k without marking it used; nil when absent.
func (c *Map[K, V]) Peek(k K) *V {
	if el, ok := c.m[k]; ok {
		return &el.Value.(*entry[K, V]).v
	}
	return nil
}

// Oldest returns the least recently used key and its value, the one Use
// would forget next, without marking it used; ok is false when the map is
// empty.
func (c *Map[K, V]) Oldest() (k K, v *V, ok bool) {
	el := c.l.Back()
	if el == nil {
		return k, nil, false
	}
	e := el.Value.(*entry[K, V])
	return e.k, &e.v, true
}

// Len is the number of keys held.
func (c *Map[K, V]) Len() int { return len(c.m) }
