//go:build linux || darwin || freebsd

package store

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// heldElsewhere reports whether another open of the database holds badger's
// directory lock (an flock on the directory itself, badger's dir_unix.go),
// by trying the same lock without waiting and dropping it at once.
func heldElsewhere(dir string) bool {
	f, err := os.Open(dir)
	if err != nil {
		return false
	}
	defer f.Close()
	err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
	if err == nil {
		unix.Flock(int(f.Fd()), unix.LOCK_UN)
		return false
	}
	return errors.Is(err, unix.EWOULDBLOCK)
}
