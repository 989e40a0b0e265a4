package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/blowback-dnsbl/blowback/internal/netx"
	"github.com/blowback-dnsbl/blowback/listing"
	"github.com/blowback-dnsbl/blowback/store"
	"github.com/blowback-dnsbl/blowback/zones"
)

// cmdAllow is `blowback allow add|remove NET --reason TEXT` and `blowback
// allow list`: admin changes of the allowlist on top of [policy] allow
// (listing/allow.go). On a single node they act on the store (or through
// the running node's API); on a cluster member they go to the log.
func cmdAllow(args []string, stdout, stderr io.Writer) error {
	const synopsis = "add|remove NET --reason TEXT | list [flags]"
	if len(args) == 0 || (args[0] != "add" && args[0] != "remove" && args[0] != "list") {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
			fmt.Fprintln(stderr, "usage: blowback allow "+synopsis)
			return nil
		}
		return usageError("usage: blowback allow %s", synopsis)
	}
	sub := args[0]
	fs := newFlagSet("allow "+sub, synopsis, stderr)
	get := accessFlags(fs)
	reason := fs.String("reason", "", "why (recorded in the audit log; required for add and remove)")
	who := fs.String("who", os.Getenv("USER"), "who acts (recorded in the audit log)")
	pos, err := parseFlags(fs, args[1:])
	if err != nil {
		return err
	}
	a, err := get()
	if err != nil {
		return err
	}
	if sub == "list" {
		if len(pos) > 0 {
			return usageError("unexpected argument %q", pos[0])
		}
		return allowList(a, stdout)
	}
	if len(pos) != 1 {
		return usageError("want exactly one network (192.0.2.0/24) or address")
	}
	p, err := netx.ParsePrefix(pos[0])
	if err != nil {
		return usageError("not a network or address: %q", pos[0])
	}
	if strings.TrimSpace(*reason) == "" {
		return usageError("--reason is required")
	}
	actor := "admin"
	if *who != "" {
		actor = "admin:" + *who
	}
	c := listing.AllowChange{Op: sub, Prefix: p, Who: actor, Reason: *reason}
	a.write = true
	if a.cfg.Cluster.enabled() { // the log, never the local store
		return clusterAllow(a.cfg, c, stdout)
	}
	err = a.withEngine(func(eng *listing.Engine, _ *store.Store, _ *zones.Current) error {
		return eng.ChangeAllow(context.Background(), c)
	})
	if errors.Is(err, errLocked) || errors.Is(err, errNoStore) || errors.Is(err, errReplicaStore) {
		var out map[string]any
		err = a.remote(err, "POST", "/api/v1/admin/allow", map[string]any{"op": sub, "network": p.String(), "reason": *reason, "who": *who}, &out)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: allowlist %s done\n", p, sub)
	return nil
}

func allowList(a *access, stdout io.Writer) error {
	var out struct {
		Allow []listing.AllowEntry `json:"allow"`
	}
	err := a.withEngine(func(eng *listing.Engine, _ *store.Store, _ *zones.Current) error {
		var err error
		out.Allow, err = eng.Allowlist()
		return err
	})
	if errors.Is(err, errLocked) || errors.Is(err, errNoStore) {
		err = a.remote(err, "GET", "/api/v1/admin/allow", nil, &out)
	}
	if err != nil {
		return err
	}
	for _, e := range out.Allow {
		line := fmt.Sprintf("%-20s %s", e.Prefix, e.Source)
		if e.Time != nil {
			line += fmt.Sprintf(" %s by %s: %s", e.Time.UTC().Format(time.RFC3339), e.Who, e.Reason)
		}
		fmt.Fprintln(stdout, termSafe(line))
	}
	return nil
}

// clusterAllow appends an allowlist change to the log.
func clusterAllow(cfg Config, c listing.AllowChange, stdout io.Writer) error {
	pol, err := cfg.policy()
	if err != nil {
		return err
	}
	if c.Op == listing.AllowRemove {
		for _, p := range pol.Allow {
			if p == c.Prefix {
				return fmt.Errorf("%s is in the configuration ([policy] allow): remove it there, on every replica", c.Prefix)
			}
		}
	}
	conn, ctx, done, err := clusterCLI(cfg, 30*time.Second)
	if err != nil {
		return err
	}
	defer done()
	c.ID = store.NewEventID().String()
	seq, err := conn.PublishAllow(ctx, c)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: allowlist %s appended to the log (sequence %d); every replica applies it\n", c.Prefix, c.Op, seq)
	return nil
}
