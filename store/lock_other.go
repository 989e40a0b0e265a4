//go:build !(linux || darwin || freebsd)

package store

// heldElsewhere is not implemented here: Open returns badger's own error
// for a database in use, not ErrLocked.
func heldElsewhere(string) bool { return false }
