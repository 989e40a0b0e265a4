//go:build !linux

package store

// dropTablePages is Linux only (pages_linux.go).
func (s *Store) dropTablePages() {}
