package tally

import (
	"sync"
	"testing"
)

func TestCounter(t *testing.T) {
	var c Counter
	if c.Total() != 0 || c.String() != "" {
		t.Fatalf("zero value: %d %q", c.Total(), c.String())
	}
	var wg sync.WaitGroup
	for i := range 100 {
		wg.Go(func() {
			if i%4 == 0 {
				c.Add("421 4.7.0")
			} else {
				c.Add("220")
			}
		})
	}
	wg.Wait()
	if c.Get("220") != 75 || c.Get("421 4.7.0") != 25 || c.Get("x") != 0 || c.Total() != 100 {
		t.Fatalf("counts %s, total %d", c.String(), c.Total())
	}
	if m := c.Counts(); len(m) != 2 || m["220"] != 75 {
		t.Fatalf("Counts() = %v", m)
	}
	if got, want := c.String(), "220 ×75, 421 4.7.0 ×25"; got != want {
		t.Fatalf("String() = %q, want %q", got, want)
	}
}
