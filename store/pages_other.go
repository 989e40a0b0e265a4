//go:build !linux

package store

// drop is Linux only (pages_linux.go).
func (p *pager) drop(...string) {}
