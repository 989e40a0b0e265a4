package main

import (
	"fmt"
	"io"
)

// cmdTrap is `blowback trap`.
func cmdTrap(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("trap", "", stderr)
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	return fmt.Errorf("trap is not implemented yet")
}
