package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/blowback-dnsbl/blowback/classify"
	"github.com/blowback-dnsbl/blowback/forward"
	"github.com/blowback-dnsbl/blowback/listing"
	"github.com/blowback-dnsbl/blowback/store"
	"github.com/blowback-dnsbl/blowback/zones"
)

// `blowback import --mbox FILE` loads historical backscatter from a mailbox.
//
// Each message becomes evidence as classify.ImportRule says: classified
// like the trap would, its client the address the operator's own MX
// recorded in a Received header (RFC 5321 §4.4): by default the topmost
// header, else the first from the top written "by" one of --mx, else --hop
// N; --received-regexp replaces the parser with a regexp whose group "ip"
// (or first group) is the address. The event id is a hash of the message,
// so importing the same mailbox twice stores nothing new. This file reads
// the flags and the mailbox and stores the events: offline through the
// listing engine, or online through the running node's intake API.

// importOptions select what is imported and how the client is found.
type importOptions struct {
	rule        classify.ImportRule
	maxSize     int64
	rawMessages bool // keep the raw message with the evidence
}

// importStats is the summary.
type importStats struct {
	Read       int            `json:"read"`
	Imported   int            `json:"imported"`
	Duplicates int            `json:"duplicates"`
	Skipped    map[string]int `json:"skipped"`
	Kinds      map[string]int `json:"kinds"`
	Online     bool           `json:"online"`
}

func (s *importStats) skip(reason string) { s.Skipped[reason]++ }

func cmdImport(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("import", "--mbox FILE [flags]", stderr)
	get := accessFlags(fs)
	mbox := fs.String("mbox", "", "mailbox `FILE` (mboxrd or mboxo; - for stdin)")
	format := fs.String("format", "mboxrd", "mailbox `FORMAT`: mboxrd or mboxo (how >From lines are unquoted)")
	hop := fs.Int("hop", 1, "take the client from the `N`th Received header from the top")
	mx := fs.String("mx", "", "comma-separated `HOSTS` of your MX: the client is the \"from\" of the topmost Received header written by one of them")
	reStr := fs.String("received-regexp", "", "`REGEXP` with a group named ip (or a first group) matched against each Received header from --hop down")
	domains := &stringList{}
	fs.Var(domains, "trap-domain", "trap `DOMAIN` (repeatable; default: the config's trap_domains)")
	anyRcpt := fs.Bool("any-recipient", false, "import messages whatever their recipient domain")
	allKinds := fs.Bool("all-kinds", false, "import every kind, not only backscatter")
	allowLocal := fs.Bool("allow-private", false, "accept private, loopback and link-local client addresses")
	node := fs.String("node", "import", "node `NAME` recorded with the evidence")
	online := fs.Bool("online", false, "post to the running node's API even when the store could be opened")
	dryRun := fs.Bool("dry-run", false, "classify and count, store nothing")
	asJSON := fs.Bool("json", false, "print the summary as JSON")
	progress := fs.String("progress", "auto", "progress bar on stderr: auto (when a terminal), always or never")
	batch := fs.Int("batch", 200, "events per API request (online)")
	workers := fs.Int("workers", 16, "events committed at once (offline; they share fsyncs)")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageError("unexpected argument %q", pos[0])
	}
	if *mbox == "" {
		return usageError("--mbox is required")
	}
	if *format != "mboxrd" && *format != "mboxo" {
		return usageError("--format: want mboxrd or mboxo")
	}
	if *hop < 1 {
		return usageError("--hop: want 1 or more")
	}
	if *batch < 1 {
		return usageError("--batch: want 1 or more")
	}
	if *workers < 1 || *workers > 256 {
		return usageError("--workers: want 1 to 256")
	}
	switch *progress {
	case "auto", "always", "never":
	default:
		return usageError("--progress: want auto, always or never")
	}
	opt := importOptions{rule: classify.ImportRule{Client: classify.HopRule{N: *hop}, AnyRcpt: *anyRcpt, AllKinds: *allKinds,
		AllowLocal: *allowLocal, Node: *node}, maxSize: 10 << 20, rawMessages: true}
	if *reStr != "" {
		re, err := regexp.Compile(*reStr)
		if err != nil {
			return usageError("--received-regexp: %v", err)
		}
		if re.NumSubexp() == 0 {
			return usageError("--received-regexp: needs a group for the address")
		}
		opt.rule.Client.Regexp = re
	}
	for _, h := range strings.Split(*mx, ",") {
		if h = strings.ToLower(strings.TrimSuffix(strings.TrimSpace(h), ".")); h != "" {
			opt.rule.Client.MX = append(opt.rule.Client.MX, h)
		}
	}
	a, err := get()
	if err != nil {
		return err
	}
	a.write = true // never into a cluster replica's store past the log (cmd_cluster.go)
	opt.rule.Domains = a.cfg.TrapDomains
	if domains.set {
		opt.rule.Domains = domains.vals
	}
	for i, d := range opt.rule.Domains {
		opt.rule.Domains[i] = strings.ToLower(strings.TrimSuffix(d, "."))
	}

	var in io.Reader
	var size int64
	if *mbox == "-" {
		in = os.Stdin
	} else {
		f, err := os.Open(*mbox)
		if err != nil {
			return err
		}
		defer f.Close()
		if st, err := f.Stat(); err == nil {
			size = st.Size()
		}
		in = f
	}
	cr := &countingReader{r: in}
	bar := newProgress(stderr, *progress, size)
	stats := &importStats{Skipped: map[string]int{}, Kinds: map[string]int{}}
	rd := classify.NewMboxReader(cr, *format == "mboxrd")

	// each reads the mailbox and hands each event to sink.
	each := func(sink func(ev *store.Event, raw []byte) error) error {
		for {
			msg, from, err := rd.Next()
			if errors.Is(err, io.EOF) {
				return nil
			}
			if err != nil {
				return err
			}
			stats.Read++
			bar.update(cr.n, stats.Read)
			if int64(len(msg)) > opt.maxSize {
				stats.skip("too_big")
				continue
			}
			ev, reason := opt.rule.Event(msg, from)
			if ev == nil {
				stats.skip(reason)
				continue
			}
			if *dryRun {
				stats.Imported++
				stats.Kinds[ev.Kind.String()]++
				continue
			}
			var raw []byte
			if opt.rawMessages {
				raw = msg
			}
			if err := sink(ev, raw); err != nil {
				return err
			}
		}
	}

	var runErr error
	if *dryRun {
		runErr = each(func(*store.Event, []byte) error { return nil })
	} else {
		runErr = errLocked
		if !*online {
			runErr = a.withEngine(func(eng *listing.Engine, st *store.Store, _ *zones.Current) error {
				return importOffline(eng, st, *workers, each, stats)
			})
		}
		if errors.Is(runErr, errLocked) || errors.Is(runErr, errNoStore) || errors.Is(runErr, errReplicaStore) {
			if stats.Read > 0 {
				return fmt.Errorf("store became unavailable after %d messages: %w", stats.Read, runErr)
			}
			stats.Online = true
			runErr = importOnline(a, runErr, *batch, each, stats)
		}
	}
	bar.done(cr.n, stats.Read)
	if runErr != nil {
		return fmt.Errorf("after %d messages: %w", stats.Read, runErr)
	}
	return printImportStats(stdout, stats, *asJSON, *dryRun)
}

// importOffline commits events into the store with a few concurrent
// ingests (badger gathers concurrent commits into one fsync). Duplicates
// are decided by the reader before dispatch: already stored, or seen
// earlier in this mailbox.
func importOffline(eng *listing.Engine, st *store.Store, workers int, each func(func(*store.Event, []byte) error) error, stats *importStats) error {
	type job struct {
		ev  *store.Event
		raw []byte
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	jobs := make(chan job)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				if err := eng.Ingest(ctx, j.ev, j.raw); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
						cancel()
					}
					mu.Unlock()
				}
			}
		}()
	}
	seen := map[store.EventID]bool{}
	err := each(func(ev *store.Event, raw []byte) error {
		mu.Lock()
		ferr := firstErr
		mu.Unlock()
		if ferr != nil {
			return ferr
		}
		dup, err := st.Has(ev.ID)
		if err != nil {
			return err
		}
		if dup || seen[ev.ID] {
			stats.Duplicates++
			return nil
		}
		seen[ev.ID] = true
		stats.Imported++
		stats.Kinds[ev.Kind.String()]++
		select {
		case jobs <- job{ev, raw}:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	close(jobs)
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	return err
}

// importOnline posts events in batches to the running node with the admin
// token; the node stores them idempotently, so a duplicate is counted as
// accepted (the API does not tell them apart).
func importOnline(a *access, local error, size int, each func(func(*store.Event, []byte) error) error, stats *importStats) error {
	b := forward.Batch{Raw: map[string][]byte{}}
	kinds := map[string]int{}
	flush := func() error {
		if len(b.Events) == 0 {
			return nil
		}
		var res forward.Result
		if err := a.remote(local, "POST", forward.Path, b, &res); err != nil {
			return err
		}
		rejected := map[int]bool{}
		for _, r := range res.Rejected {
			rejected[r.Index] = true
			stats.skip("rejected_by_node")
		}
		for i, ev := range b.Events {
			if !rejected[i] {
				stats.Imported++
				kinds[ev.Kind.String()]++
			}
		}
		b.Events, b.Raw = b.Events[:0], map[string][]byte{}
		return nil
	}
	err := each(func(ev *store.Event, raw []byte) error {
		b.Node = ev.Node
		b.Events = append(b.Events, *ev)
		if raw != nil {
			b.Raw[ev.ID.String()] = raw
		}
		if len(b.Events) >= size {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	for k, n := range kinds {
		stats.Kinds[k] += n
	}
	return err
}

func printImportStats(w io.Writer, s *importStats, asJSON, dry bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		return enc.Encode(s)
	}
	verb := "imported"
	switch {
	case dry:
		verb = "would import"
	case s.Online:
		verb = "accepted by the node (new or already stored)"
	}
	skipped := 0
	for _, n := range s.Skipped {
		skipped += n
	}
	fmt.Fprintf(w, "read:       %d messages\n", s.Read)
	fmt.Fprintf(w, "%-11s %d%s\n", verb+":", s.Imported, kvList(s.Kinds))
	if !s.Online && !dry {
		fmt.Fprintf(w, "duplicates: %d (already stored)\n", s.Duplicates)
	}
	fmt.Fprintf(w, "skipped:    %d%s\n", skipped, kvList(s.Skipped))
	return nil
}

// kvList formats counts as " (a=1, b=2)", sorted by key.
func kvList(m map[string]int) string {
	if len(m) == 0 {
		return ""
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + strconv.Itoa(m[k])
	}
	return " (" + strings.Join(parts, ", ") + ")"
}

// countingReader counts the bytes read (for the progress bar).
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// progress draws a one-line bar on a terminal, at most ten times a second.
type progress struct {
	w     io.Writer
	on    bool
	size  int64
	last  time.Time
	start time.Time
}

func newProgress(w io.Writer, mode string, size int64) *progress {
	on := mode == "always"
	if mode == "auto" {
		if f, ok := w.(*os.File); ok {
			if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
				on = true
			}
		}
	}
	return &progress{w: w, on: on, size: size, start: time.Now()}
}

func (p *progress) update(n int64, msgs int) {
	if !p.on || time.Since(p.last) < 100*time.Millisecond {
		return
	}
	p.last = time.Now()
	p.draw(n, msgs)
}

func (p *progress) draw(n int64, msgs int) {
	rate := float64(msgs) / max(time.Since(p.start).Seconds(), 0.001)
	if p.size > 0 {
		frac := min(float64(n)/float64(p.size), 1)
		const width = 30
		full := int(frac * width)
		bar := strings.Repeat("=", full) + strings.Repeat(" ", width-full)
		if full < width {
			bar = bar[:full] + ">" + bar[full+1:]
		}
		fmt.Fprintf(p.w, "\rimporting [%s] %3.0f%%  %d messages  %.0f/s ", bar, frac*100, msgs, rate)
		return
	}
	fmt.Fprintf(p.w, "\rimporting  %d messages  %.0f/s ", msgs, rate)
}

func (p *progress) done(n int64, msgs int) {
	if !p.on {
		return
	}
	p.draw(n, msgs)
	fmt.Fprintln(p.w)
}
