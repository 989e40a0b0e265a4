package main

import (
	"fmt"
	"io"
)

// cmdDnsd is `blowback dnsd`.
func cmdDnsd(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("dnsd", "", stderr)
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	return fmt.Errorf("dnsd is not implemented yet")
}
