package main

import (
	"fmt"
	"io"
)

// cmdImport is `blowback import`.
func cmdImport(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("import", "", stderr)
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	return fmt.Errorf("import is not implemented yet")
}
