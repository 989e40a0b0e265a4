package store

import (
	"log/slog"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/blowback-dnsbl/blowback/internal/lifecycle"
)

// pager gives back the pages of the store's files that badger mapped and
// read once (pages_linux.go: drop).
type pager struct {
	dir string // the data directory as the kernel names it
	log *slog.Logger
	off atomic.Bool // reclaiming failed once: no more tries
}

// newPager is nil when dir cannot be resolved (drop is then a no-op).
func newPager(dir string, log *slog.Logger) *pager {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return nil
	}
	return &pager{dir: real, log: log}
}

// during calls drop(suffixes) every interval while fn runs, and once after.
func (p *pager) during(interval time.Duration, fn func(), suffixes ...string) {
	if p == nil {
		fn()
		return
	}
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		lifecycle.Every(done, interval, func() { p.drop(suffixes...) })
	}()
	fn()
	close(done)
	<-stopped
	p.drop(suffixes...)
}
