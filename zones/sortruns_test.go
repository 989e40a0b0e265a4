package zones

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// TestSortRuns: sortRuns sorts like slices.Sort whatever the shape of its
// input: sorted, one long run and a short rest (the in-place path), a few
// runs (the merge; the in-place merge when the first run is at least half),
// many runs (the general sort), with duplicates.
func TestSortRuns(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	sortedRun := func(n int, mod uint64) []uint64 {
		a := make([]uint64, n)
		for i := range a {
			a[i] = r.Uint64N(mod)
		}
		slices.Sort(a)
		return a
	}
	random := func(n int, mod uint64) []uint64 {
		a := make([]uint64, n)
		for i := range a {
			a[i] = r.Uint64N(mod)
		}
		return a
	}
	cases := map[string][]uint64{
		"empty":                    nil,
		"one":                      {7},
		"sorted":                   sortedRun(1000, 1<<40),
		"long run, short rest":     append(sortedRun(10000, 1<<40), random(20, 1<<40)...),
		"long run, rest below all": append(sortedRun(10000, 1<<40)[5000:], sortedRun(30, 100)...),
		"long run, duplicates":     append(sortedRun(5000, 300), random(50, 300)...),
		"two halves":               append(sortedRun(500, 1<<20), sortedRun(500, 1<<20)...),
		"a few runs":               slices.Concat(sortedRun(300, 1000), sortedRun(10, 1000), sortedRun(300, 1000), sortedRun(1, 1000)),
		"random (many runs)":       random(5000, 1<<16),
	}
	for name, a := range cases {
		want := slices.Clone(a)
		slices.Sort(want)
		got := slices.Clone(a)
		sortRuns(got)
		if !slices.Equal(got, want) {
			t.Errorf("%s: not sorted like slices.Sort", name)
		}
	}
	for range 200 {
		n := 1 + r.IntN(3000)
		a := append(sortedRun(n, 1<<12), random(r.IntN(n/32+2), 1<<12)...)
		want := slices.Clone(a)
		slices.Sort(want)
		sortRuns(a)
		if !slices.Equal(a, want) {
			t.Fatalf("long run + short rest of %d: not sorted", len(a)-n)
		}
	}
}
