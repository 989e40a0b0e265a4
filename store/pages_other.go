//go:build !linux

package store

// dropPages is Linux only (pages_linux.go).
func (s *Store) dropPages(...string) {}
