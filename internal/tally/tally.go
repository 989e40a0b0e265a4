// Package tally counts outcomes by name, for the reliability checks
// (bench/reliability/relcheck, trap's hostile-client tests) that report
// how many times each reply or error came back.
package tally

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
)

// Counter counts outcomes; the zero value is empty and ready, and it is
// safe for concurrent use.
type Counter struct {
	mu sync.Mutex
	m  map[string]int
}

// Add counts one k.
func (t *Counter) Add(k string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m == nil {
		t.m = map[string]int{}
	}
	t.m[k]++
}

// Get is how many times k was counted.
func (t *Counter) Get(k string) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.m[k]
}

// Counts is a copy of the counts by outcome.
func (t *Counter) Counts() map[string]int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return maps.Clone(t.m)
}

// Total is how many outcomes were counted.
func (t *Counter) Total() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for _, v := range t.m {
		n += v
	}
	return n
}

// String lists the outcomes in name order: "k ×n, k2 ×n2".
func (t *Counter) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	keys := make([]string, 0, len(t.m))
	for k := range t.m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s ×%d", k, t.m[k])
	}
	return b.String()
}
