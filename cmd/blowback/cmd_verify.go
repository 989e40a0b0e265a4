package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"

	"github.com/blowback-dnsbl/blowback/zones/signing"
)

// cmdKeygen is `blowback keygen --out FILE`: a new signing key pair for the
// exports (zones/signing): FILE (secret, 0600) and FILE.pub.
func cmdKeygen(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("keygen", "--out FILE", stderr)
	out := fs.String("out", "", "secret key `FILE` to write (the public key goes to FILE.pub); never overwritten")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if *out == "" || len(pos) > 0 {
		return usageError("want --out FILE and no arguments")
	}
	pub, err := signing.GenerateKey(*out)
	if err != nil {
		return err
	}
	pk, err := signing.LoadPublicKey(pub)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "secret key %s (keep it private; [export] sign_key = %q)\npublic key %s: %s\n", *out, *out, pub, pk.String())
	return nil
}

// cmdVerify is `blowback verify FILE [--key KEY]`: checks an export against
// FILE.minisig. Exit 0 valid, 1 not (unsigned, bad or mismatched
// signature), 2 usage error (no key, unreadable key or file).
func cmdVerify(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("verify", "FILE [--key KEY]", stderr)
	key := fs.String("key", "", "public `KEY`: a minisign public key file, or the key itself (RW...); default: the config's export.sign_key + \".pub\"")
	cfgPath := fs.String("config", "", "TOML config `FILE` (for export.sign_key)")
	quiet := fs.Bool("q", false, "quiet: exit status only")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	// Names and error texts may come from outside: no control characters
	// reach the terminal.
	escape := func(s string) string {
		q := strconv.Quote(s)
		return q[1 : len(q)-1]
	}
	if len(pos) != 1 {
		return usageError("want exactly one FILE")
	}
	if *key == "" {
		cfg, err := loadConfig(*cfgPath)
		if err != nil {
			return usageError("%v", err)
		}
		if cfg.Export.SignKey == "" {
			return usageError("no --key, and no export.sign_key in the config")
		}
		*key = cfg.Export.SignKey + ".pub"
	}
	pk, err := signing.LoadPublicKey(*key)
	if err != nil {
		return usageError("%v", err)
	}
	f, err := os.Open(pos[0])
	if err != nil {
		return usageError("%v", err)
	}
	defer f.Close()
	s, err := signing.Verify(pk, f, pos[0])
	if err != nil {
		if !errors.Is(err, signing.ErrUnsigned) && !errors.Is(err, signing.ErrBadSignature) && !errors.Is(err, signing.ErrMismatch) {
			return usageError("%v", err)
		}
		if !*quiet {
			fmt.Fprintf(stdout, "%s: BAD: %s\n", escape(pos[0]), escape(err.Error()))
		}
		return exitError(1)
	}
	if !*quiet {
		fmt.Fprintf(stdout, "%s: good signature by key %s: zone %s serial %d, signed %s\n",
			escape(pos[0]), s.KeyID, escape(s.Zone), s.Serial, s.Timestamp.Format("2006-01-02T15:04:05Z"))
	}
	return nil
}
