package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/blowback-dnsbl/blowback/classify"
	"github.com/blowback-dnsbl/blowback/dnsd"
	"github.com/blowback-dnsbl/blowback/internal/atomicfile"
	"github.com/blowback-dnsbl/blowback/store"
	"github.com/blowback-dnsbl/blowback/zones"
)

func cmdCheck(args []string, stdout, stderr io.Writer) error {
	def := defaultConfig()
	fs := newFlagSet("check", "IP [--server ADDR] [--zone NAME]", stderr)
	server := fs.String("server", def.DNS, "DNS server `ADDR` (host:port)")
	zone := fs.String("zone", def.Zone, "DNSBL zone `NAME`")
	timeout := fs.Duration("timeout", 5*time.Second, "query `TIMEOUT`")
	quiet := fs.Bool("q", false, "quiet: exit status only")
	ip, err := parseIPArgs(fs, args)
	if err != nil {
		return err
	}
	srv := *server
	if _, _, err := splitHostPort(srv); err != nil {
		srv = srv + ":53"
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	res, err := dnsd.Check(ctx, srv, *zone, ip)
	if err != nil {
		fmt.Fprintf(stderr, "blowback check: %v\n", err)
		return exitError(2)
	}
	if !res.Listed {
		if !*quiet {
			fmt.Fprintf(stdout, "%s not listed in %s\n", ip, zones.CanonicalZone(*zone))
		}
		return exitError(1)
	}
	if !*quiet {
		codes := make([]string, len(res.Codes))
		for i, c := range res.Codes {
			codes[i] = c.String()
		}
		fmt.Fprintf(stdout, "%s listed in %s: %s", ip, zones.CanonicalZone(*zone), strings.Join(codes, " "))
		if len(res.TXT) > 0 {
			fmt.Fprintf(stdout, " %q", strings.Join(res.TXT, " "))
		}
		fmt.Fprintln(stdout)
	}
	return nil
}

func splitHostPort(s string) (string, string, error) {
	ap, err := netip.ParseAddrPort(s)
	if err == nil {
		return ap.Addr().String(), fmt.Sprint(ap.Port()), nil
	}
	i := strings.LastIndexByte(s, ':')
	if i < 0 || strings.Count(s, ":") > 1 && !strings.HasPrefix(s, "[") {
		return "", "", fmt.Errorf("no port in %q", s)
	}
	return s[:i], s[i+1:], nil
}

// classifyOutput is one line of `classify --json` (CONTRACT.md).
type classifyOutput struct {
	File        string         `json:"file"`
	Kind        string         `json:"kind"`
	SubKind     string         `json:"sub_kind,omitempty"`
	Vendor      string         `json:"vendor,omitempty"`
	MTA         string         `json:"mta"` // software family that wrote it, "" when unknown (CONTRACT additions 2026-12)
	MTASignal   string         `json:"mta_signal,omitempty"`
	Backscatter bool           `json:"backscatter"`
	Signals     []string       `json:"signals"`
	Original    store.Original `json:"original"`
	DSN         *store.DSN     `json:"dsn,omitempty"`
	TrapField   string         `json:"trap_field,omitempty"`
	Subject     string         `json:"subject,omitempty"`
	MessageID   string         `json:"message_id,omitempty"`
	Error       string         `json:"error,omitempty"`
}

func cmdClassify(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("classify", "[--json] [--mail-from ADDR] FILE...", stderr)
	asJSON := fs.Bool("json", false, "one JSON object per line")
	mailFrom := fs.String("mail-from", "", "envelope sender `ADDR` to assume (\"<>\" for the null sender)")
	rcpt := fs.String("rcpt", "", "envelope recipient `ADDR` to assume")
	maxSize := fs.Int64("max-size", 10<<20, "largest message read, in `BYTES`")
	files, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return usageError("no files (use - for stdin)")
	}
	env := classify.Envelope{}
	if *mailFrom != "" {
		f := strings.Trim(*mailFrom, "<>")
		env.MailFrom, env.Null, env.Known = f, f == "", true
	}
	if *rcpt != "" {
		env.Rcpts = []string{strings.Trim(*rcpt, "<>")}
	}
	enc := json.NewEncoder(stdout)
	failed := 0
	for _, name := range files {
		out := classifyOutput{File: name, Signals: []string{}}
		msg, err := readMessage(name, *maxSize)
		if err != nil {
			failed++
			out.Kind, out.Error = store.KindOther.String(), err.Error()
			fmt.Fprintf(stderr, "blowback classify: %s: %v\n", name, err)
			if *asJSON {
				enc.Encode(out)
			}
			continue
		}
		r := classify.Classify(msg, env)
		out.Kind, out.SubKind, out.Backscatter = r.Kind.String(), r.SubKind, r.Kind.Backscatter()
		out.Original, out.DSN, out.TrapField, out.Subject = r.Original, r.DSN, r.TrapField, r.Subject
		out.Vendor, out.MessageID, out.MTA, out.MTASignal = r.Vendor, r.MessageID, r.MTA, r.MTASignal
		if r.Signals != nil {
			out.Signals = r.Signals
		}
		if *asJSON {
			if err := enc.Encode(out); err != nil {
				return err
			}
			continue
		}
		sub := ""
		if r.SubKind != "" {
			sub = "/" + r.SubKind
		}
		mta := ""
		if r.MTA != "" {
			mta = " mta=" + r.MTA
		}
		fmt.Fprintf(stdout, "%s: %s%s backscatter=%v%s signals=%s\n", name, out.Kind, sub, out.Backscatter, mta, strings.Join(out.Signals, ","))
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d files could not be read", failed, len(files))
	}
	return nil
}

func readMessage(name string, max int64) ([]byte, error) {
	var r io.Reader
	if name == "-" {
		r = os.Stdin
	} else {
		f, err := os.Open(name)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	b, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("larger than %d bytes", max)
	}
	return b, nil
}

func cmdBackup(args []string, stdout, stderr io.Writer) error {
	a, out, err := fileArgs("backup", "out", "backup `FILE` (badger backup stream)", args, stderr)
	if err != nil {
		return err
	}
	// A backup holds raw messages and trap addresses: owner-only, like
	// admin.token (issue 13 item 12).
	st, err := store.Open(filepath.Join(a.cfg.Data, "store"), a.cfg.storeOptions(), nil)
	if errors.Is(err, store.ErrLocked) {
		return atomicfile.Write(out, backupPerm, func(w io.Writer) error { return a.call("GET", "/api/v1/admin/backup", nil, w) })
	}
	if err != nil {
		return err
	}
	defer st.Close()
	return atomicfile.Write(out, backupPerm, st.Backup)
}

// fileArgs parses the flags of backup and restore: the access flags and
// one required file flag, --flag FILE.
func fileArgs(name, flag, usage string, args []string, stderr io.Writer) (*access, string, error) {
	fs := newFlagSet(name, "--"+flag+" FILE [flags]", stderr)
	get := accessFlags(fs)
	file := fs.String(flag, "", usage)
	if _, err := parseFlags(fs, args); err != nil {
		return nil, "", err
	}
	if *file == "" {
		return nil, "", usageError("--%s is required", flag)
	}
	a, err := get()
	return a, *file, err
}

// backupPerm is the mode of a backup file.
const backupPerm = 0o600

func cmdRestore(args []string, stdout, stderr io.Writer) error {
	a, in, err := fileArgs("restore", "in", "backup `FILE` written by blowback backup", args, stderr)
	if err != nil {
		return err
	}
	dir := filepath.Join(a.cfg.Data, "store")
	if ents, err := os.ReadDir(dir); err == nil && len(ents) > 0 {
		return fmt.Errorf("%s is not empty: restore into a new data directory", dir)
	}
	f, err := os.Open(in)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := store.Open(dir, a.cfg.storeOptions(), nil)
	if err != nil {
		return err
	}
	defer st.Close()
	if err := st.Restore(f); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "restored %s into %s\n", in, dir)
	return nil
}
