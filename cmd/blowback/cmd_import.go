package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/mail"
	"net/netip"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/blowback-dnsbl/blowback/forward"
	"github.com/blowback-dnsbl/blowback/listing"
	"github.com/blowback-dnsbl/blowback/store"
	"github.com/blowback-dnsbl/blowback/trap"
	"github.com/blowback-dnsbl/blowback/zones"
)

// `blowback import --mbox FILE` loads historical backscatter from a mailbox.
//
// Each message is classified like the trap would (trap.Classify). The
// client address is the one the operator's own MX recorded in a Received
// header (RFC 5321 §4.4): by default the topmost header, else the first
// from the top written "by" one of --mx, else --hop N; --received-regexp
// replaces the parser with a regexp whose group "ip" (or first group) is the
// address. The event id is a hash of the message, so importing the same
// mailbox twice stores nothing new.

// importOptions select what is imported and how the client is found.
type importOptions struct {
	hop         int            // 1: the topmost Received header
	mx          []string       // trusted MX host names (the "by" part)
	re          *regexp.Regexp // overrides the parser
	domains     []string       // trap domains; a message to another domain is skipped
	anyRcpt     bool           // accept any recipient domain
	allKinds    bool           // import non-backscatter kinds too
	allowLocal  bool           // accept private, loopback and link-local clients
	node        string         // recorded as the event's node
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
	opt := importOptions{hop: *hop, anyRcpt: *anyRcpt, allKinds: *allKinds, allowLocal: *allowLocal,
		node: *node, maxSize: 10 << 20, rawMessages: true}
	if *reStr != "" {
		re, err := regexp.Compile(*reStr)
		if err != nil {
			return usageError("--received-regexp: %v", err)
		}
		if re.NumSubexp() == 0 {
			return usageError("--received-regexp: needs a group for the address")
		}
		opt.re = re
	}
	for _, h := range strings.Split(*mx, ",") {
		if h = strings.ToLower(strings.TrimSuffix(strings.TrimSpace(h), ".")); h != "" {
			opt.mx = append(opt.mx, h)
		}
	}
	a, err := get()
	if err != nil {
		return err
	}
	opt.domains = a.cfg.TrapDomains
	if domains.set {
		opt.domains = domains.vals
	}
	for i, d := range opt.domains {
		opt.domains[i] = strings.ToLower(strings.TrimSuffix(d, "."))
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
	rd := newMboxReader(cr, *format == "mboxrd")

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
			ev, reason := buildImportEvent(msg, from, &opt)
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
		if errors.Is(runErr, errLocked) || errors.Is(runErr, errNoStore) {
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

// importEventID is the event id of a message: a hash of its bytes, so a
// re-import is idempotent (store.Put answers ErrDuplicate).
func importEventID(msg []byte) store.EventID {
	h := sha256.Sum256(append([]byte("blowback-import\x00"), msg...))
	var id store.EventID
	copy(id[:], h[:])
	return id
}

// buildImportEvent classifies msg and makes its evidence, or returns the
// reason it is skipped.
func buildImportEvent(msg []byte, fromLine string, opt *importOptions) (*store.Event, string) {
	m, err := mail.ReadMessage(bufio.NewReader(bytes.NewReader(msg)))
	if err != nil {
		return nil, "unparseable"
	}
	h := m.Header
	hop, ok := clientHop(h["Received"], opt)
	if !ok {
		return nil, "no_client_ip"
	}
	if !opt.allowLocal && (hop.IP.IsPrivate() || hop.IP.IsLoopback() || hop.IP.IsLinkLocalUnicast() || hop.IP.IsUnspecified()) {
		return nil, "private_client_ip"
	}
	rcpt := importRecipient(h)
	dom := ""
	if _, d, ok := strings.Cut(rcpt, "@"); ok {
		dom = strings.ToLower(d)
	}
	if !opt.anyRcpt && !inDomains(dom, opt.domains) {
		return nil, "not_trap_domain"
	}
	env := trap.Envelope{Rcpts: nil}
	if rcpt != "" {
		env.Rcpts = []string{rcpt}
	}
	// The envelope sender, as the delivering MTA recorded it (RFC 5321
	// §4.4 Return-Path) or as the mbox From_ line has it.
	if rp := strings.TrimSpace(h.Get("Return-Path")); rp != "" {
		f := strings.Trim(rp, "<> ")
		env.MailFrom, env.Null, env.Known = f, f == "", true
	} else if fromLine != "" {
		f := strings.ToLower(fromLine)
		if f == "mailer-daemon" || f == "<>" || f == "" {
			env.Null, env.Known = true, true
		} else {
			env.MailFrom, env.Known = fromLine, true
		}
	}
	res := trap.Classify(msg, env)
	if !opt.allKinds && !res.Kind.Backscatter() {
		return nil, "not_backscatter_" + res.Kind.String()
	}
	t := hop.Time
	if t.IsZero() {
		if d, err := h.Date(); err == nil {
			t = d
		}
	}
	if t.IsZero() {
		return nil, "no_date"
	}
	ev := &store.Event{ID: importEventID(msg), Time: t.UTC(), Node: opt.node, ClientIP: hop.IP, HELO: hop.HELO,
		MailFrom: env.MailFrom, Rcpts: env.Rcpts, TrapDomain: dom, Kind: res.Kind, SubKind: res.SubKind,
		Signals: res.Signals, MessageID: res.MessageID, From: res.From, Subject: res.Subject, Headers: res.Headers,
		Size: int64(len(msg)), DSN: res.DSN, Original: res.Original, TrapField: res.TrapField}
	if err := ev.Validate(); err != nil {
		return nil, "invalid"
	}
	return ev, ""
}

func inDomains(d string, domains []string) bool {
	for _, x := range domains {
		if d == x {
			return true
		}
	}
	return false
}

// importRecipient is the trap address: the envelope recipient as the
// delivering MTA recorded it, else the To header.
func importRecipient(h mail.Header) string {
	for _, k := range []string{"Delivered-To", "X-Original-To", "Envelope-To", "X-Envelope-To", "To"} {
		v := strings.TrimSpace(h.Get(k))
		if v == "" {
			continue
		}
		if a, err := mail.ParseAddress(v); err == nil {
			return strings.ToLower(a.Address)
		}
		if l, err := mail.ParseAddressList(v); err == nil && len(l) > 0 {
			return strings.ToLower(l[0].Address)
		}
		v = strings.Trim(v, "<> ")
		if strings.Count(v, "@") == 1 && !strings.ContainsAny(v, " ,;") {
			return strings.ToLower(v)
		}
	}
	return ""
}

// receivedHop is what one Received header says (RFC 5321 §4.4).
type receivedHop struct {
	HELO string
	IP   netip.Addr
	By   string
	Time time.Time
}

var bracketIP = regexp.MustCompile(`\[(?:IPv6:)?([0-9A-Fa-f:.]+)\]`)

// parseReceived reads "from HELO (rdns [IP]) by HOST ...; DATE" in the
// forms Postfix, Exim, Sendmail and others write.
func parseReceived(v string) receivedHop {
	var h receivedHop
	v = strings.Join(strings.Fields(v), " ") // unfold
	clauses, date, _ := cutLast(v, ";")
	if t, err := mail.ParseDate(strings.TrimSpace(date)); err == nil {
		h.Time = t
	}
	low := asciiLower(clauses) // same length as clauses: indexes carry over
	fromPart := ""
	if strings.HasPrefix(low, "from ") {
		fromPart = clauses[5:]
		if j := strings.Index(low[5:], " by "); j >= 0 {
			fromPart = fromPart[:j]
		}
		if f := strings.Fields(fromPart); len(f) > 0 && !strings.HasPrefix(f[0], "(") {
			h.HELO = strings.Trim(f[0], "[]")
		}
	}
	rest, found := "", false
	if strings.HasPrefix(low, "by ") {
		rest, found = clauses[3:], true
	} else if i := strings.Index(low, " by "); i >= 0 {
		rest, found = clauses[i+4:], true
	}
	if found {
		if f := strings.Fields(rest); len(f) > 0 {
			h.By = strings.ToLower(strings.TrimSuffix(f[0], "."))
		}
	}
	if m := bracketIP.FindStringSubmatch(fromPart); m != nil {
		if a, err := netip.ParseAddr(m[1]); err == nil {
			h.IP = a.Unmap()
		}
	}
	if !h.IP.IsValid() { // qmail's "(192.0.2.1)", or a bare address as HELO
		for _, f := range strings.Fields(fromPart) {
			if a, err := netip.ParseAddr(strings.Trim(f, "()[],")); err == nil {
				h.IP = a.Unmap()
				break
			}
		}
	}
	return h
}

// asciiLower lowers A-Z only, keeping every byte where it is.
func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

func cutLast(s, sep string) (before, after string, found bool) {
	if i := strings.LastIndex(s, sep); i >= 0 {
		return s[:i], s[i+len(sep):], true
	}
	return s, "", false
}

// clientHop picks the Received header that names the client (see the
// top of this file).
func clientHop(received []string, opt *importOptions) (receivedHop, bool) {
	if len(opt.mx) > 0 {
		for _, r := range received {
			h := parseReceived(r)
			for _, mx := range opt.mx {
				if h.By == mx && h.IP.IsValid() {
					return h, true
				}
			}
		}
		return receivedHop{}, false
	}
	if opt.hop > len(received) {
		return receivedHop{}, false
	}
	if opt.re != nil {
		for _, r := range received[opt.hop-1:] {
			v := strings.Join(strings.Fields(r), " ")
			m := opt.re.FindStringSubmatch(v)
			if len(m) < 2 {
				continue
			}
			s := m[1]
			if i := opt.re.SubexpIndex("ip"); i > 0 {
				s = m[i]
			}
			if a, err := netip.ParseAddr(strings.TrimPrefix(s, "IPv6:")); err == nil {
				h := parseReceived(r)
				h.IP = a.Unmap()
				return h, true
			}
		}
		return receivedHop{}, false
	}
	h := parseReceived(received[opt.hop-1])
	return h, h.IP.IsValid()
}

// mboxReader splits a mailbox into messages at "From " lines (RFC 4155).
// mboxrd unquotes ">+From " by one ">"; mboxo unquotes only ">From ".
type mboxReader struct {
	br    *bufio.Reader
	rd    bool
	next  string // the From_ line that starts the next message
	begun bool
}

func newMboxReader(r io.Reader, mboxrd bool) *mboxReader {
	return &mboxReader{br: bufio.NewReaderSize(r, 64<<10), rd: mboxrd}
}

// maxLine bounds one line; longer lines are cut into pieces.
const maxMboxLine = 1 << 20

// Next returns the next message (CRLF line ends) and the sender of its
// From_ line, or io.EOF.
func (m *mboxReader) Next() ([]byte, string, error) {
	if !m.begun {
		m.begun = true
		for {
			line, err := m.readLine()
			if err != nil {
				return nil, "", err
			}
			if strings.HasPrefix(line, "From ") {
				m.next = line
				break
			}
			if strings.TrimSpace(line) != "" {
				return nil, "", errors.New("import: not an mbox file (the first line is not a \"From \" line)")
			}
		}
	}
	if m.next == "" {
		return nil, "", io.EOF
	}
	from := fromLineSender(m.next)
	m.next = ""
	var buf bytes.Buffer
	blank := false // the previous line was empty
	pendingBlank := false
	for {
		line, err := m.readLine()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, "", err
		}
		if strings.HasPrefix(line, "From ") && (blank || buf.Len() == 0) {
			m.next = line
			break
		}
		if pendingBlank {
			buf.WriteString("\r\n")
			pendingBlank = false
		}
		if line == "" {
			// Hold a blank line back: the one before a From_ line belongs to the mbox.
			pendingBlank, blank = true, true
			continue
		}
		blank = false
		if q := strings.TrimLeft(line, ">"); len(q) < len(line) && strings.HasPrefix(q, "From ") && (m.rd || len(line)-len(q) == 1) {
			line = line[1:]
		}
		buf.WriteString(line)
		buf.WriteString("\r\n")
	}
	return buf.Bytes(), from, nil
}

func (m *mboxReader) readLine() (string, error) {
	var sb strings.Builder
	for {
		frag, isPrefix, err := m.br.ReadLine()
		if err != nil {
			if sb.Len() > 0 && errors.Is(err, io.EOF) {
				return sb.String(), nil
			}
			return "", err
		}
		if sb.Len() < maxMboxLine {
			sb.Write(frag)
		}
		if !isPrefix {
			return strings.TrimSuffix(sb.String(), "\r"), nil
		}
	}
}

// fromLineSender is the address of "From sender date".
func fromLineSender(line string) string {
	f := strings.Fields(line)
	if len(f) < 2 {
		return ""
	}
	return f[1]
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
