package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/blowback-dnsbl/blowback/listing"
	"github.com/blowback-dnsbl/blowback/scoring"
	"github.com/blowback-dnsbl/blowback/store"
	"github.com/blowback-dnsbl/blowback/zones"
)

// access is how an admin command reaches the data: the store directly when
// no node holds it, else the running node's HTTP API.
type access struct {
	cfg   Config
	token string
	api   string // base URL of the node's API
	http  *http.Client
	write bool // the command writes (list, delist, allow): never into a cluster replica's store
}

func accessFlags(fs *flag.FlagSet) func() (*access, error) {
	cfgPath := fs.String("config", "", "TOML config `FILE`")
	data := fs.String("data", "", "data `DIR` (default from config, ./blowback-data)")
	api := fs.String("server", "", "`URL` of a running node's HTTP API (default http://<config http>)")
	token := fs.String("token", "", "admin `TOKEN` (default $BLOWBACK_TOKEN or <data>/admin.token)")
	return func() (*access, error) {
		c, err := loadConfig(*cfgPath)
		if err != nil {
			return nil, usageError("%s", oneLine(err))
		}
		if *data != "" {
			c.Data = *data
		}
		a := &access{cfg: c, token: *token, api: *api, http: &http.Client{Timeout: 60 * time.Second}}
		if a.api == "" {
			a.api = "http://" + c.HTTP
		}
		a.api = strings.TrimSuffix(a.api, "/")
		if a.token == "" {
			a.token = os.Getenv("BLOWBACK_TOKEN")
		}
		if a.token == "" {
			if b, err := os.ReadFile(filepath.Join(c.Data, "admin.token")); err == nil {
				a.token = strings.TrimSpace(string(b))
			}
		}
		return a, nil
	}
}

// withEngine opens the store and a listing engine on it, or returns
// errLocked when a running node holds the store.
func (a *access) withEngine(fn func(*listing.Engine, *store.Store, *zones.Current) error) error {
	dir := filepath.Join(a.cfg.Data, "store")
	if _, err := os.Stat(dir); err != nil {
		return errNoStore
	}
	st, err := store.Open(dir, a.cfg.storeOptions(), slog.New(slog.DiscardHandler))
	if err != nil {
		if errors.Is(err, store.ErrLocked) {
			return errLocked
		}
		return err
	}
	defer st.Close()
	pol, err := a.cfg.policy()
	if err != nil {
		return err
	}
	lc, err := a.replicaHooks(st, a.cfg.listingConfig(pol)) // cmd_cluster.go
	if err != nil {
		return err
	}
	cur := &zones.Current{}
	eng := listing.New(lc, st, cur, nil, nil)
	if err := eng.Rebuild(context.Background()); err != nil {
		return err
	}
	// Stop keeps DATA/snapshot.bin in step with what was done here, so that
	// the node does not serve an older listing at its next start.
	defer eng.Stop(context.Background())
	return fn(eng, st, cur)
}

var (
	errLocked      = errors.New("store is in use by a running node")
	errNoStore     = errors.New("no store in the data directory")
	errUnreachable = errors.New("no node answers")
)

// oneLine joins the lines of a multi-line error (errors.Join) with "; ".
func oneLine(err error) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(err.Error(), "\n", " ; ")), " ")
}

// remote is the API fallback after local (errLocked or errNoStore): its
// error says why neither way worked.
func (a *access) remote(local error, method, path string, body, out any) error {
	err := a.call(method, path, body, out)
	if errors.Is(err, errUnreachable) {
		return fmt.Errorf("%v (%s), and %w", local, a.cfg.Data, err)
	}
	return err
}

// call does an API request and decodes a JSON answer into out.
func (a *access) call(method, path string, body any, out any) error {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, a.api+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if a.token != "" {
		req.Header.Set("Authorization", "Bearer "+a.token)
	}
	resp, err := a.http.Do(req)
	if err != nil {
		return fmt.Errorf("%w at %s: %v", errUnreachable, a.api, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		hint := ""
		if resp.StatusCode == http.StatusUnauthorized {
			hint = "; give the admin token with --token, $BLOWBACK_TOKEN or <data>/admin.token"
		}
		var e struct{ Error string }
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			return fmt.Errorf("%s %s: %s (%s)%s", method, a.api+path, termSafe(e.Error), termSafe(resp.Status), hint)
		}
		return fmt.Errorf("%s %s: %s", method, path, termSafe(resp.Status))
	}
	if w, ok := out.(io.Writer); ok {
		_, err = w.Write(b)
		return err
	}
	return json.Unmarshal(b, out)
}

// parseIPArgs parses the flags and the one IP address argument.
func parseIPArgs(fs *flag.FlagSet, args []string) (netip.Addr, error) {
	pos, err := parseFlags(fs, args)
	if err != nil {
		return netip.Addr{}, err
	}
	return oneIP(pos)
}

func oneIP(pos []string) (netip.Addr, error) {
	if len(pos) != 1 {
		return netip.Addr{}, usageError("want exactly one IP address")
	}
	a, err := netip.ParseAddr(pos[0])
	if err != nil {
		return netip.Addr{}, usageError("not an IP address: %q", pos[0])
	}
	return a.Unmap(), nil
}

func cmdExplain(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("explain", "IP [flags]", stderr)
	get := accessFlags(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	offset := fs.Int("offset", 0, "skip the newest `N` pieces of evidence (pages)")
	limit := fs.Int("limit", listing.DefaultExplainLimit, "print at most `N` pieces of evidence (at most 1000)")
	ip, err := parseIPArgs(fs, args)
	if err != nil {
		return err
	}
	if *offset < 0 || *limit <= 0 {
		return usageError("--offset must be >= 0 and --limit > 0")
	}
	a, err := get()
	if err != nil {
		return err
	}
	var x listing.Explanation
	err = a.withEngine(func(eng *listing.Engine, _ *store.Store, _ *zones.Current) error {
		x, err = eng.ExplainPage(ip, *offset, *limit)
		return err
	})
	if errors.Is(err, errLocked) || errors.Is(err, errNoStore) {
		err = a.remote(err, "GET", fmt.Sprintf("/api/v1/explain/%s?offset=%d&limit=%d", url.PathEscape(ip.String()), *offset, *limit), nil, &x)
	}
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(x)
	}
	printExplanation(stdout, x)
	return nil
}

func printExplanation(w io.Writer, x listing.Explanation) {
	state := "NOT LISTED"
	if x.Listed {
		state = "LISTED " + strings.Join(x.Codes, " ")
	}
	// Every string below may come from the store or a node's answer:
	// termSafe escapes what a terminal would act on.
	fmt.Fprintf(w, "%s (unit %s): %s\n", termSafe(x.IP), termSafe(x.Unit), termSafe(state))
	fmt.Fprintf(w, "  reason:   %s\n", termSafe(x.Reason))
	fmt.Fprintf(w, "  score:    %.3f\n", x.Score)
	ts := func(t *time.Time) string {
		if t == nil {
			return "-"
		}
		return t.UTC().Format(time.RFC3339)
	}
	fmt.Fprintf(w, "  first:    %s\n  last:     %s\n  expires:  %s\n", ts(x.FirstSeen), ts(x.LastSeen), ts(x.Expires))
	if x.Since != nil || x.Lapsed != nil {
		fmt.Fprintf(w, "  since:    %s   last lapsed: %s\n", ts(x.Since), ts(x.Lapsed))
	}
	fmt.Fprintf(w, "  in zone:  %v\n", x.Published)
	fmt.Fprintf(w, "  thresholds: list at %.2f, delist below %.2f; half-life %s; max age %s after the last hit\n",
		x.ListThreshold, x.DelistThreshold, termSafe(x.HalfLife), termSafe(x.MaxAge))
	if x.Repeat > 1 {
		fmt.Fprintf(w, "  repeat offender: %d listings within the repeat memory, listing age x%.1f\n", x.Listings, x.Repeat)
	}
	if x.Allowed != "" {
		fmt.Fprintf(w, "  allowlisted by %s: never listed\n", termSafe(x.Allowed))
	}
	if x.Escalated != nil {
		fmt.Fprintf(w, "  escalated: %s is listed as a whole (%d listed units inside)\n", termSafe(fmt.Sprint(x.Escalated.Prefix)), x.Escalated.Members)
	}
	fmt.Fprintf(w, "  policy:")
	for _, k := range sortedKeys(x.Policy) {
		fmt.Fprintf(w, " %s=%s", termSafe(k), termSafe(x.Policy[k]))
	}
	fmt.Fprintln(w)
	if len(x.Summary) > 0 {
		fmt.Fprintf(w, "summary (%d considered", x.EvidenceTotal)
		if x.EvidencePartial {
			fmt.Fprintf(w, ", the newest; more is stored")
		}
		fmt.Fprintln(w, "):")
		for _, k := range x.Summary {
			fmt.Fprintf(w, "  %-9s events=%d counted=%d initial=%.3f now=%.3f\n", termSafe(k.Kind), k.Events, k.Counted, k.Initial, k.Value)
		}
	}
	for _, k := range sortedKeys(intsAsStrings(x.Summarised)) {
		fmt.Fprintf(w, "  %-9s %d more only counted (store per-unit cap)\n", termSafe(k), x.Summarised[k])
	}
	fmt.Fprintf(w, "evidence (%d to %d of %d, newest first):\n", min(x.Offset+1, x.Offset+len(x.Evidence)), x.Offset+len(x.Evidence), x.EvidenceTotal)
	for _, e := range x.Evidence {
		mark := " "
		if e.Counted {
			mark = "*"
		}
		fmt.Fprintf(w, "  %s %s %-15s %-9s weight=%.2f novelty=%.2f initial=%.3f now=%.3f  %s\n", mark,
			e.Time.UTC().Format(time.RFC3339), termSafe(e.Addr), termSafe(e.Kind), e.Weight, e.Novelty, e.Initial, e.Value, termSafe(e.Why))
	}
	if x.NextOffset != nil {
		fmt.Fprintf(w, "  ... more: --offset %d\n", *x.NextOffset)
	}
	if len(x.Actions) > 0 {
		fmt.Fprintf(w, "manual actions (%d of %d, the newest):\n", len(x.Actions), max(x.ActionsTotal, len(x.Actions)))
		for _, a := range x.Actions {
			fmt.Fprintf(w, "  %s %-6s by %s: %s\n", a.Time.UTC().Format(time.RFC3339), termSafe(a.Op), termSafe(a.Who), termSafe(a.Reason))
		}
	}
}

func intsAsStrings(m map[string]int) map[string]string {
	out := make(map[string]string, len(m))
	for k := range m {
		out[k] = ""
	}
	return out
}

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j] < out[j-1]; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

func cmdList(args []string, stdout, stderr io.Writer) error {
	return manualAction("list", store.OpList, args, stdout, stderr)
}

func cmdDelist(args []string, stdout, stderr io.Writer) error {
	return manualAction("delist", store.OpDelist, args, stdout, stderr)
}

func manualAction(name, op string, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet(name, "IP --reason TEXT [flags]", stderr)
	get := accessFlags(fs)
	reason := fs.String("reason", "", "why (recorded in the audit log; required)")
	who := fs.String("who", os.Getenv("USER"), "who acts (recorded in the audit log)")
	kinds := fs.String("kinds", "", "for list: comma-separated kinds to publish (default bounce)")
	ip, err := parseIPArgs(fs, args)
	if err != nil {
		return err
	}
	if strings.TrimSpace(*reason) == "" {
		return usageError("--reason is required")
	}
	var ks []store.Kind
	var kindNames []string
	if *kinds != "" {
		for _, k := range strings.Split(*kinds, ",") {
			kind, err := store.ParseKind(strings.TrimSpace(k))
			if err != nil {
				return usageError("--kinds: %v", err)
			}
			ks = append(ks, kind)
			kindNames = append(kindNames, kind.String())
		}
	}
	a, err := get()
	if err != nil {
		return err
	}
	a.write = true
	actor := "admin"
	if *who != "" {
		actor = "admin:" + *who
	}
	if a.cfg.Cluster.enabled() { // the log, never the local store (cmd_cluster.go)
		return clusterAction(a.cfg, store.Action{Time: time.Now(), Prefix: scoring.Unit(ip), Op: op, Who: actor, Reason: *reason, Kinds: ks}, stdout)
	}
	var d scoring.Decision
	err = a.withEngine(func(eng *listing.Engine, _ *store.Store, _ *zones.Current) error {
		d, err = eng.Act(context.Background(), store.Action{Prefix: scoring.Unit(ip), Op: op, Who: actor, Reason: *reason, Kinds: ks})
		return err
	})
	if errors.Is(err, errLocked) || errors.Is(err, errNoStore) || errors.Is(err, errReplicaStore) {
		var out map[string]any
		err = a.remote(err, "POST", "/api/v1/admin/"+op, map[string]any{"ip": ip.String(), "reason": *reason, "who": *who, "kinds": kindNames}, &out)
		if err == nil {
			fmt.Fprintf(stdout, "%s: %s done; listed=%s\n", ip, op, termSafe(fmt.Sprint(out["listed"])))
		}
		return err
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: %s done; listed=%v (%s)\n", ip, op, d.Listed, termSafe(d.Reason))
	return nil
}

func cmdExport(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("export", "--format rbldnsd|bind|plain --out FILE [flags]", stderr)
	get := accessFlags(fs)
	format := fs.String("format", "rbldnsd", "`FORMAT`: rbldnsd, bind or plain")
	out := fs.String("out", "", "output `FILE` (written atomically; - for stdout)")
	force := fs.Bool("force", false, "replace an export in FILE even with a zone the sanity guard holds back (export.go)")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageError("unexpected argument %q", pos[0])
	}
	f, err := zones.ParseFormat(*format)
	if err != nil {
		return usageError("%v", err)
	}
	if *out == "" {
		return usageError("--out is required")
	}
	a, err := get()
	if err != nil {
		return err
	}
	write := func(w io.Writer) error {
		err := a.withEngine(func(_ *listing.Engine, _ *store.Store, cur *zones.Current) error {
			if err := checkExportGuard(a.cfg, *out, cur.Load(), *force); err != nil {
				return err
			}
			return zones.Write(w, f, cur.Load(), a.cfg.soa())
		})
		if errors.Is(err, errLocked) || errors.Is(err, errNoStore) {
			return a.remote(err, "GET", "/api/v1/admin/zone?format="+string(f), nil, w)
		}
		return err
	}
	if *out == "-" {
		return write(stdout)
	}
	return zones.WriteFileAtomic(*out, write)
}
