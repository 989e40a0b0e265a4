// Command blowback is the backscatter DNSBL: trap, scoring, DNS and HTTP in
// one binary. Each subcommand is a thin shell over the library packages.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
)

// command is one subcommand.
type command struct {
	name  string
	usage string // argument synopsis
	help  string // one line
	run   func(args []string, stdout, stderr io.Writer) error
}

func commands() []command {
	return []command{
		{"run", "[flags]", "all-in-one node: trap SMTP + scoring + DNS + HTTP, embedded store", cmdRun},
		{"trap", "[flags] [--forward URL --token T]", "trap-only node; forwards evidence to a central node", cmdTrap},
		{"dnsd", "--zone-file FILE --zone NAME [--dns ADDR]", "serve an rbldnsd-format zone file, reloading it on change", cmdDnsd},
		{"classify", "[--json] [--mail-from ADDR] FILE...", "classify message files offline (- for stdin)", cmdClassify},
		{"check", "IP [--server ADDR] [--zone NAME]", "query a zone over DNS: exit 0 listed, 1 not listed, 2 error", cmdCheck},
		{"explain", "IP", "the listing decision for IP, with each piece of evidence", cmdExplain},
		{"list", "IP --reason TEXT", "list an address manually", cmdList},
		{"delist", "IP --reason TEXT", "delist an address manually", cmdDelist},
		{"export", "--format rbldnsd|bind|plain --out FILE", "write the current zone atomically", cmdExport},
		{"keygen", "--out FILE", "a key pair for signing the exports (FILE, FILE.pub)", cmdKeygen},
		{"verify", "FILE [--key KEY]", "check an export's signature: exit 0 valid, 1 not, 2 error", cmdVerify},
		{"import", "--mbox FILE", "load historical backscatter from an mbox", cmdImport},
		{"backup", "--out FILE", "write a backup of the store", cmdBackup},
		{"restore", "--in FILE", "restore a backup into an empty data directory", cmdRestore},
		{"allow", "add|remove NET --reason TEXT | list", "change the allowlist on top of [policy] allow", cmdAllow},
		{"cluster", "init|status --config FILE", "create the replicated log's stream (NATS JetStream) or show it", cmdCluster},
	}
}

// errUsage marks errors that exit 2 (bad flags or arguments).
var errUsage = errors.New("usage")

// usageError formats a one-line usage error.
func usageError(format string, a ...any) error {
	return fmt.Errorf("%w: %s", errUsage, fmt.Sprintf(format, a...))
}

// exitError carries an exit status without a message (check's "not listed").
type exitError int

func (e exitError) Error() string { return fmt.Sprintf("exit %d", int(e)) }

func main() {
	os.Exit(realMain(os.Args[1:], os.Stdout, os.Stderr))
}

func realMain(args []string, stdout, stderr io.Writer) int {
	cmds := commands()
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		printUsage(stderr, cmds)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	if args[0] == "version" || args[0] == "--version" {
		fmt.Fprintln(stdout, "blowback", version)
		return 0
	}
	for _, c := range cmds {
		if c.name != args[0] {
			continue
		}
		err := c.run(args[1:], stdout, stderr)
		var ee exitError
		switch {
		case err == nil:
			return 0
		case errors.Is(err, flag.ErrHelp):
			return 0
		case errors.As(err, &ee):
			return int(ee)
		case errors.Is(err, errUsage):
			fmt.Fprintf(stderr, "blowback %s: %s\n", c.name, strings.TrimPrefix(err.Error(), "usage: "))
			return 2
		default:
			fmt.Fprintf(stderr, "blowback %s: %v\n", c.name, err)
			return 1
		}
	}
	fmt.Fprintf(stderr, "blowback: unknown command %q (see blowback -h)\n", args[0])
	return 2
}

var version = "dev"

func printUsage(w io.Writer, cmds []command) {
	fmt.Fprintln(w, "usage: blowback <command> [flags]")
	fmt.Fprintln(w)
	for _, c := range cmds {
		fmt.Fprintf(w, "  %-9s %s\n", c.name, c.help)
	}
	fmt.Fprintln(w, "\nEvery command answers -h with its flags.")
}

// newFlagSet returns a flag set whose parse errors are one line and exit 2;
// -h prints the synopsis and the flags (its Usage, called by parseFlags).
func newFlagSet(name, synopsis string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {
		fs.SetOutput(stderr)
		fmt.Fprintf(stderr, "usage: blowback %s %s\n\nflags:\n", name, synopsis)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
	}
	return fs
}

// parseFlags parses args, allowing flags after positional arguments
// ("check 127.0.0.2 --zone x"). -h prints usage and returns flag.ErrHelp;
// a bad flag is a one-line usage error, without the flag list.
func parseFlags(fs *flag.FlagSet, args []string) ([]string, error) {
	usage := fs.Usage
	fs.Usage = func() {} // the flag package calls it on every error
	defer func() { fs.Usage = usage }()
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				usage()
				return nil, flag.ErrHelp
			}
			return nil, usageError("%v", err)
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// stringList is a repeatable string flag.
type stringList struct {
	vals []string
	set  bool
}

func (s *stringList) String() string { return strings.Join(s.vals, ",") }
func (s *stringList) Set(v string) error {
	if !s.set {
		s.vals, s.set = nil, true
	}
	s.vals = append(s.vals, v)
	return nil
}

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, usageError("log level %q: %v", level, err)
	}
	opts := &slog.HandlerOptions{Level: lv}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return slog.New(slog.NewTextHandler(w, opts)), nil
}
