package testenv

import (
	"sync"
	"time"
)

// ManualClock is a clock for tests that moves only when told (Add); safe
// for concurrent use, so that code under test may read it from its own
// goroutines.
type ManualClock struct {
	mu sync.Mutex
	t  time.Time
}

// NewManualClock is a ManualClock showing t.
func NewManualClock(t time.Time) *ManualClock { return &ManualClock{t: t} }

// Now is the time the clock shows.
func (c *ManualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Add moves the clock by d.
func (c *ManualClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}
