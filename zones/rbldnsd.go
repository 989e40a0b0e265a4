package zones

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Errors of the rbldnsd parser.
var (
	ErrRbldnsd = errors.New("zones: rbldnsd file")
)

// Apex is what a zone file says about the zone's apex ($SOA, $NS, $TTL in
// rbldnsd files); a server answers with it instead of its own configuration.
type Apex struct {
	SOATTL  uint32 // TTL of the SOA record
	MName   string // primary name server (absolute)
	RName   string // hostmaster mailbox as a domain name (absolute)
	Refresh uint32
	Retry   uint32
	Expire  uint32
	Minimum uint32 // negative-caching TTL (RFC 2308 §4)
	HasSOA  bool
	NS      []string // absolute names
	NSTTL   uint32
}

// RbldnsdOptions tune ParseRbldnsd.
type RbldnsdOptions struct {
	// Type is the dataset type of a file without $DATASET lines: ip4set,
	// ip4tset, ip4trie, ip6tset, ip6trie, or "" to take each line as IPv4
	// or IPv6 by its syntax. Combined files name their types themselves.
	Type string
	// Lenient skips bad lines (as rbldnsd does) instead of failing.
	Lenient bool
	// ModTime is the serial when $SOA gives 0 (rbldnsd takes the file's mtime).
	ModTime time.Time
	// DefaultTTL applies when the file has no $TTL; default 2100s (rbldnsd's default).
	DefaultTTL time.Duration
	// SizeHint is the file's size, if known: room for its entries is
	// reserved up front instead of grown by copying.
	SizeHint int64
}

// RbldnsdStats describes a parse.
type RbldnsdStats struct {
	Lines    int
	Entries  int
	Skipped  int      // bad lines skipped (Lenient) and sections not served
	Warnings []string // the first few reasons
}

const maxWarnings = 20

func (st *RbldnsdStats) warn(line int, format string, a ...any) {
	st.Skipped++
	if len(st.Warnings) < maxWarnings {
		st.Warnings = append(st.Warnings, fmt.Sprintf("line %d: ", line)+fmt.Sprintf(format, a...))
	}
}

// rbScope is the state of one dataset section.
type rbScope struct {
	typ      string
	served   bool       // dataset applies to the base zone ("@")
	defA     netip.Addr // default A (127.0.0.2)
	defTXT   string
	defHas   bool
	vars     [10]string
	base     string // $= base template
	hasBase  bool
	maxRange uint64 // $MAXRANGE4 in addresses, 0 none
}

type rbParser struct {
	opts      RbldnsdOptions
	b         *Builder
	apex      Apex
	ttl       uint32
	hasT      bool
	stats     RbldnsdStats
	sc        rbScope
	glob      rbScope // common section of a combined file: $n and $TTL apply to every dataset
	serial    uint32
	serialSet bool
	combined  bool // a $DATASET line was seen

	// value cache: raw value bytes -> interned ids
	lastRaw   []byte
	lastCodes Codes
	lastVal   uint32
	lastOK    bool
	cache     map[string]rbCached
	txtUse    []int // value id -> entries using it
}

type rbCached struct {
	codes Codes
	val   uint32
}

// ParseRbldnsd reads an rbldnsd data file (a combined file with
// "$DATASET ip4set @" / "$DATASET ip6tset @" sections as WriteRbldnsd
// writes, or a single ip4set/ip4trie/ip6tset/ip6trie dataset) into a
// snapshot of zone. It understands ":A:TXT" default lines and per-entry
// values, "$n" substitutions and the "$=" base template, CIDRs, prefixes
// and ranges, "!" exclusions, $SOA, $NS, $TTL, $MAXRANGE4 and comments.
// Sections for other subzones or of other types (generic, dnset, acl) are
// skipped and counted.
func ParseRbldnsd(r io.Reader, zone string, opts RbldnsdOptions) (*Snapshot, *Apex, RbldnsdStats, error) {
	return parseRbldnsd(r, zone, opts, rbChunkSize, true)
}

// parseRbldnsd is ParseRbldnsd reading chunk bytes at a time, with the
// runs of bare IPv4 addresses taken at once (fast) or not.
func parseRbldnsd(r io.Reader, zone string, opts RbldnsdOptions, chunk int, fast bool) (*Snapshot, *Apex, RbldnsdStats, error) {
	if opts.DefaultTTL == 0 {
		opts.DefaultTTL = 2100 * time.Second
	}
	p := &rbParser{opts: opts, b: NewBuilder(Info{Zone: zone}), cache: map[string]rbCached{}}
	if opts.SizeHint > 0 {
		p.b.Grow(int(min(opts.SizeHint/12, 1<<26))) // a typical line is "a.b.c.d\n", 8-16 bytes
	}
	p.glob = newScope(opts.Type)
	p.sc = p.glob
	p.sc.served = true
	if err := p.read(r, chunk, fast); err != nil {
		return nil, nil, p.stats, err
	}
	info := Info{Zone: zone, TTL: opts.DefaultTTL}
	if p.hasT {
		info.TTL = time.Duration(p.ttl) * time.Second
	}
	if p.apex.HasSOA && p.apex.SOATTL == 0 {
		p.apex.SOATTL = uint32(info.TTL / time.Second)
	}
	if len(p.apex.NS) > 0 && p.apex.NSTTL == 0 {
		p.apex.NSTTL = uint32(info.TTL / time.Second)
	}
	info.Serial = p.serial
	if !p.serialSet || p.serial == 0 {
		info.Serial = uint32(opts.ModTime.Unix())
	}
	// The most used TXT template becomes the zone's, so that the common case
	// (every entry with the same template) needs no per-entry values.
	best, bestN := uint32(0), -1
	for i, n := range p.txtUse {
		id := uint32(i)
		if v := p.b.vals[id]; v.OwnTXT && len(v.A) == 0 && (n > bestN || (n == bestN && id < best)) {
			best, bestN = id, n
		}
	}
	p.b.info = info
	if bestN >= 0 {
		p.b.zoneTXT(p.b.vals[best].TXT)
	}
	s := p.b.Snapshot()
	p.stats.Entries = s.Len()
	var apex *Apex
	if p.apex.HasSOA || len(p.apex.NS) > 0 {
		a := p.apex
		apex = &a
	}
	s.Apex = apex
	return s, apex, p.stats, nil
}

func newScope(typ string) rbScope {
	return rbScope{typ: typ, served: true, defA: netip.AddrFrom4([4]byte{127, 0, 0, 2})}
}

func (p *rbParser) line(line []byte) error {
	combined := &p.combined
	for n := len(line); n > 0 && (line[n-1] == '\n' || line[n-1] == '\r'); n = len(line) {
		line = line[:n-1]
	}
	for len(line) > 0 && (line[0] == ' ' || line[0] == '\t') {
		line = line[1:]
	}
	if len(line) == 0 {
		return nil
	}
	switch {
	case line[0] == '$':
		return p.special(line[1:], combined)
	case len(line) > 1 && (line[0] == '#' || line[0] == ';' || line[0] == ':') && line[1] == '$':
		return p.special(line[2:], combined) // "#$", ";$", ":$": rbldns compatibility
	case line[0] == '#' || line[0] == ';':
		return nil
	}
	if !p.sc.served {
		return nil
	}
	if line[0] == ':' {
		a, hasA, txt, has, hasColon, err := p.parseValue(line[1:])
		if err != nil {
			return err
		}
		if hasA {
			p.sc.defA = a
		}
		if hasColon {
			p.sc.defTXT, p.sc.defHas = txt, has
		}
		p.resetCache()
		return nil
	}
	excl := false
	if line[0] == '!' {
		excl = true
		line = bytes.TrimLeft(line[1:], " \t")
	}
	// The address ends at white space (or, for IPv4, at a colon).
	end := 0
	v6 := false
	for end < len(line) && line[end] != ' ' && line[end] != '\t' {
		if line[end] == ':' {
			// "1.2.3.4:2:text": a value straight after an IPv4 address.
			if !v6 && end > 0 && isV4Syntax(line[:end]) && (strings.HasPrefix(p.sc.typ, "ip4") || bytes.IndexByte(line[:end], '.') >= 0) {
				break
			}
			v6 = true
		}
		end++
	}
	addr, rest := line[:end], line[end:]
	switch p.sc.typ {
	case "ip4set", "ip4tset", "ip4trie":
		if v6 {
			return fmt.Errorf("IPv6 address %q in an %s", addr, p.sc.typ)
		}
	case "ip6tset", "ip6trie":
		if !v6 {
			return fmt.Errorf("%q is not an IPv6 address (%s)", addr, p.sc.typ)
		}
	}
	var codes Codes
	var val uint32
	if !excl {
		var err error
		codes, val, err = p.value(bytes.TrimLeft(rest, " \t"))
		if err != nil {
			return err
		}
	}
	if !v6 {
		lo, hi, err := parseRange4(addr)
		if err != nil {
			return err
		}
		if p.sc.maxRange > 0 && uint64(hi)-uint64(lo)+1 > p.sc.maxRange {
			p.stats.warn(p.stats.Lines, "range %s wider than $MAXRANGE4, ignored", addr)
			return nil
		}
		if excl {
			p.b.addSpan4(lo, hi, 0, 0, true)
			return nil
		}
		p.use(val)
		if lo == hi {
			p.b.Add4(lo, codes, val)
		} else {
			p.b.addSpan4(lo, hi, codes, val, false)
		}
		return nil
	}
	pfx, err := parsePrefix6(addr)
	if err != nil {
		return err
	}
	if !excl {
		p.use(val)
	}
	p.b.addVal(Entry{Prefix: pfx, Codes: codes, Exclude: excl}, val)
	return nil
}

func (p *rbParser) use(val uint32) { p.useN(val, 1) }

func (p *rbParser) useN(val uint32, n int) {
	for int(val) >= len(p.txtUse) {
		p.txtUse = append(p.txtUse, 0)
	}
	p.txtUse[val] += n
}

func isV4Syntax(b []byte) bool {
	for _, c := range b {
		if (c < '0' || c > '9') && c != '.' && c != '/' && c != '-' {
			return false
		}
	}
	return true
}

// special handles a "$..." line (without the "$").
func (p *rbParser) special(s []byte, combined *bool) error {
	kw, rest, _ := bytes.Cut(s, []byte(" "))
	if i := bytes.IndexByte(kw, '\t'); i >= 0 {
		kw, rest = s[:i], s[i+1:]
	}
	rest = bytes.TrimSpace(rest)
	fields := strings.Fields(string(rest))
	switch {
	case string(kw) == "DATASET":
		*combined = true
		if len(fields) < 1 {
			return errors.New("$DATASET without a type")
		}
		typ, _, _ := strings.Cut(fields[0], ":")
		sc := newScope(typ)
		sc.vars = p.glob.vars
		sc.base, sc.hasBase = p.glob.base, p.glob.hasBase
		sc.served = false
		for _, sub := range fields[1:] {
			if sub == "@" {
				sc.served = true
			}
		}
		switch typ {
		case "ip4set", "ip4tset", "ip4trie", "ip6tset", "ip6trie":
		default:
			if sc.served {
				p.stats.warn(p.stats.Lines, "dataset type %q not served", typ)
			}
			sc.served = false
		}
		if !sc.served && len(fields) > 1 && typ != "" {
			if fields[1] != "@" {
				p.stats.warn(p.stats.Lines, "dataset %s for subzones %v not served (only @)", fields[0], fields[1:])
			}
		}
		p.sc = sc
		p.resetCache()
		return nil
	case string(kw) == "SOA":
		if p.apex.HasSOA {
			return nil // only the first $SOA counts
		}
		if len(fields) != 8 {
			return fmt.Errorf("$SOA wants 8 fields, got %d", len(fields))
		}
		var t [6]uint32
		for i, j := range []int{0, 3, 4, 5, 6, 7} {
			var err error
			if i == 1 {
				n, err := strconv.ParseUint(fields[j], 10, 32)
				if err != nil {
					return fmt.Errorf("$SOA serial %q", fields[j])
				}
				t[i] = uint32(n)
				continue
			}
			t[i], err = parseTime(fields[j])
			if err != nil {
				return err
			}
		}
		p.apex.HasSOA = true
		p.apex.SOATTL, p.apex.MName, p.apex.RName = t[0], fqdn(fields[1]), fqdn(fields[2])
		p.serial, p.serialSet = t[1], true
		p.apex.Refresh, p.apex.Retry, p.apex.Expire, p.apex.Minimum = t[2], t[3], t[4], t[5]
		return nil
	case string(kw) == "NS":
		if len(p.apex.NS) > 0 {
			return nil
		}
		if len(fields) < 2 {
			return errors.New("$NS wants a TTL and name servers")
		}
		ttl, err := parseTime(fields[0])
		if err != nil {
			return err
		}
		p.apex.NSTTL = ttl
		for _, n := range fields[1:] {
			if strings.HasPrefix(n, "-") {
				continue // commented out
			}
			if len(p.apex.NS) < 32 {
				p.apex.NS = append(p.apex.NS, fqdn(n))
			}
		}
		return nil
	case string(kw) == "TTL":
		if len(fields) != 1 {
			return errors.New("$TTL wants one value")
		}
		ttl, err := parseTime(fields[0])
		if err != nil {
			return err
		}
		p.ttl, p.hasT = ttl, true
		return nil
	case string(kw) == "MAXRANGE4":
		if len(fields) != 1 {
			return errors.New("$MAXRANGE4 wants one value")
		}
		var n uint64
		if b, ok := strings.CutPrefix(fields[0], "/"); ok {
			bits, err := strconv.Atoi(b)
			if err != nil || bits < 0 || bits > 32 {
				return fmt.Errorf("$MAXRANGE4 %q", fields[0])
			}
			n = 1 << (32 - bits)
		} else {
			v, err := strconv.ParseUint(fields[0], 10, 33)
			if err != nil {
				return fmt.Errorf("$MAXRANGE4 %q", fields[0])
			}
			n = v
		}
		if p.sc.maxRange == 0 || n < p.sc.maxRange {
			p.sc.maxRange = n // may only shrink
		}
		return nil
	case string(kw) == "TIMESTAMP":
		return nil // accepted, not enforced
	case string(kw) == "=":
		p.resetCache()
		p.sc.base, p.sc.hasBase = p.subst(string(rest)), true
		if !*combined {
			p.glob.base, p.glob.hasBase = p.sc.base, true
		}
		return nil
	case len(kw) == 1 && kw[0] >= '0' && kw[0] <= '9':
		p.resetCache()
		v := strings.ReplaceAll(string(rest), "$", "$$") // literal when substituted
		p.sc.vars[kw[0]-'0'] = v
		if !*combined {
			p.glob.vars[kw[0]-'0'] = v
		}
		return nil
	}
	return fmt.Errorf("unknown special $%s", kw)
}

// parseTime reads an rbldnsd time: seconds with an optional s/m/h/d/w unit.
func parseTime(s string) (uint32, error) {
	mult := uint64(1)
	if n := len(s); n > 0 {
		switch s[n-1] {
		case 's', 'S':
			s = s[:n-1]
		case 'm', 'M':
			mult, s = 60, s[:n-1]
		case 'h', 'H':
			mult, s = 3600, s[:n-1]
		case 'd', 'D':
			mult, s = 86400, s[:n-1]
		case 'w', 'W':
			mult, s = 604800, s[:n-1]
		}
	}
	v, err := strconv.ParseUint(s, 10, 32)
	if err != nil || v*mult > 1<<31-1 {
		return 0, fmt.Errorf("bad time %q", s)
	}
	return uint32(v * mult), nil
}

// value resolves an entry's value text (after the address) to codes and a
// value id, caching repeated texts.
func (p *rbParser) value(raw []byte) (Codes, uint32, error) {
	if p.lastOK && bytes.Equal(raw, p.lastRaw) {
		return p.lastCodes, p.lastVal, nil
	}
	if c, ok := p.cache[string(raw)]; ok {
		p.remember(raw, c.codes, c.val)
		return c.codes, c.val, nil
	}
	a, txt, has := p.sc.defA, p.sc.defTXT, p.sc.defHas
	none := false // ":A:": explicitly no TXT
	if len(raw) > 0 && raw[0] != '#' && raw[0] != ';' {
		if raw[0] == ':' {
			// ":A" keeps the default TXT; ":A:" has none; ":A:T" its own.
			va, hasA, vtxt, vhas, hasColon, err := p.parseValue(raw[1:])
			if err != nil {
				return 0, 0, err
			}
			if hasA {
				a = va
			}
			if hasColon {
				txt, has, none = vtxt, vhas, !vhas
			}
		} else {
			txt, has = p.template(string(raw)), true
		}
	}
	if p.sc.hasBase && !none {
		if !has {
			txt = ""
		}
		txt, has = p.applyBase(txt), true
	}
	v := Value{TXT: txt, OwnTXT: true}
	var codes Codes
	if c := CodeFromAddr(a); c != 0 {
		codes = c
	} else {
		v.A = []netip.Addr{a}
	}
	if !has {
		v.TXT = ""
	}
	val := p.b.Intern(&v)
	if len(p.cache) < 1<<16 {
		p.cache[string(raw)] = rbCached{codes, val}
	}
	p.remember(raw, codes, val)
	return codes, val, nil
}

func (p *rbParser) resetCache() {
	p.lastOK = false
	clear(p.cache)
}

func (p *rbParser) remember(raw []byte, c Codes, v uint32) {
	p.lastRaw = append(p.lastRaw[:0], raw...)
	p.lastCodes, p.lastVal, p.lastOK = c, v, true
}

// parseValue parses "A:TXT" (the part after the first colon): an A value,
// possibly abbreviated ("2" is 127.0.0.2), and a TXT template.
func (p *rbParser) parseValue(s []byte) (a netip.Addr, hasA bool, txt string, hasTXT, hasColon bool, err error) {
	as, ts, hasColon := bytes.Cut(s, []byte(":"))
	as = bytes.TrimSpace(as)
	if len(as) > 0 {
		a, err = parseAValue(string(as))
		if err != nil {
			return a, false, "", false, false, err
		}
		hasA = true
	}
	if hasColon {
		if t := strings.TrimSpace(string(ts)); t != "" {
			return a, hasA, p.template(t), true, true, nil
		}
	}
	return a, hasA, "", false, hasColon, nil
}

// parseAValue reads an A value; missing leading octets come from 127.0.0.0.
func parseAValue(s string) (netip.Addr, error) {
	parts := strings.Split(s, ".")
	if len(parts) > 4 {
		return netip.Addr{}, fmt.Errorf("bad A value %q", s)
	}
	b := [4]byte{127, 0, 0, 0}
	off := 4 - len(parts)
	for i, part := range parts {
		n, err := strconv.ParseUint(part, 10, 8)
		if err != nil {
			return netip.Addr{}, fmt.Errorf("bad A value %q", s)
		}
		b[off+i] = byte(n)
	}
	return netip.AddrFrom4(b), nil
}

// template substitutes $0-$9; "$" and "$$" stay for query time.
func (p *rbParser) template(t string) string {
	if strings.IndexByte(t, '$') < 0 {
		return t
	}
	return p.subst(t)
}

func (p *rbParser) subst(t string) string {
	if strings.IndexByte(t, '$') < 0 {
		return t
	}
	var b strings.Builder
	for i := 0; i < len(t); i++ {
		c := t[i]
		if c != '$' || i+1 >= len(t) {
			b.WriteByte(c)
			continue
		}
		switch n := t[i+1]; {
		case n == '$':
			b.WriteString("$$")
			i++
		case n >= '0' && n <= '9':
			// A variable's text is inserted as is: its "$" is not the address.
			b.WriteString(p.sc.vars[n-'0'])
			i++
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// applyBase wraps an entry's text in the "$=" base template.
func (p *rbParser) applyBase(txt string) string {
	if t, ok := strings.CutPrefix(txt, "="); ok {
		return t
	}
	if txt == "" {
		txt = "$"
	}
	return strings.ReplaceAll(p.sc.base, "$=", txt)
}

// parseRange4 reads an ip4set address: a full address, a prefix of 1-3
// octets, "prefix/len", or "a-b" (the end completed with all-ones; one
// octet after the dash replaces the last octet of the start).
func parseRange4(s []byte) (uint32, uint32, error) {
	// The common case first: a full address and nothing else.
	if v, ok := addr4Fast(s); ok {
		return v, v, nil
	}
	if i := bytes.IndexByte(s, '-'); i >= 0 {
		lo, n1, err := octets(s[:i])
		if err != nil {
			return 0, 0, err
		}
		end := s[i+1:]
		hv, n2, err := octets(end)
		if err != nil {
			return 0, 0, err
		}
		var hi uint32
		if n2 == 1 && n1 > 1 {
			sh := uint(32 - 8*n1)
			hi = lo&^(0xff<<sh) | (hv>>24)<<sh | (1<<sh - 1)
		} else {
			hi = hv | uint32(uint64(1)<<(32-8*n2)-1)
		}
		if hi < lo {
			return 0, 0, fmt.Errorf("empty range %q", s)
		}
		return lo, hi, nil
	}
	if i := bytes.IndexByte(s, '/'); i >= 0 {
		v, _, err := octets(s[:i])
		if err != nil {
			return 0, 0, err
		}
		bits, err := strconv.Atoi(string(s[i+1:]))
		if err != nil || bits < 0 || bits > 32 {
			return 0, 0, fmt.Errorf("bad prefix length in %q", s)
		}
		mask := uint32(0)
		if bits > 0 {
			mask = ^uint32(0) << (32 - bits)
		}
		lo := v & mask
		return lo, lo | ^mask, nil
	}
	v, n, err := octets(s)
	if err != nil {
		return 0, 0, err
	}
	return v, v | uint32(uint64(1)<<(32-8*n)-1), nil
}

// addr4Fast reads exactly "a.b.c.d".
func addr4Fast(s []byte) (uint32, bool) {
	var v uint32
	n, cur, digits := 0, uint32(0), 0
	for _, c := range s {
		switch {
		case c >= '0' && c <= '9':
			cur = cur*10 + uint32(c-'0')
			digits++
			if digits > 3 || cur > 255 {
				return 0, false
			}
		case c == '.' && digits > 0 && n < 3:
			v = v<<8 | cur
			n++
			cur, digits = 0, 0
		default:
			return 0, false
		}
	}
	if n != 3 || digits == 0 {
		return 0, false
	}
	return v<<8 | cur, true
}

// octets reads 1-4 dotted decimal octets, left-aligned in a uint32.
func octets(s []byte) (uint32, int, error) {
	var v uint32
	n, cur, digits := 0, uint32(0), 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == '.' {
			if digits == 0 || n == 4 {
				return 0, 0, fmt.Errorf("bad IPv4 address %q", s)
			}
			v |= cur << (24 - 8*n)
			n++
			cur, digits = 0, 0
			continue
		}
		c := s[i]
		if c < '0' || c > '9' || digits == 3 {
			return 0, 0, fmt.Errorf("bad IPv4 address %q", s)
		}
		cur = cur*10 + uint32(c-'0')
		digits++
		if cur > 255 {
			return 0, 0, fmt.Errorf("bad IPv4 address %q", s)
		}
	}
	return v, n, nil
}

// parsePrefix6 reads an ip6trie/ip6tset address: "a:b:c:d" (groups given,
// the prefix as long as they are: ip6tset's /64), compressed "::" forms
// (a single address), each with an optional "/len".
func parsePrefix6(s []byte) (netip.Prefix, error) {
	str := string(s)
	bits := -1
	if i := strings.IndexByte(str, '/'); i >= 0 {
		n, err := strconv.Atoi(str[i+1:])
		if err != nil || n < 0 || n > 128 {
			return netip.Prefix{}, fmt.Errorf("bad prefix length in %q", str)
		}
		bits, str = n, str[:i]
	}
	if strings.Contains(str, "::") || strings.Count(str, ":") == 7 || strings.Contains(str, ".") {
		a, err := netip.ParseAddr(str)
		if err != nil || !a.Is6() || a.Zone() != "" {
			return netip.Prefix{}, fmt.Errorf("bad IPv6 address %q", str)
		}
		if bits < 0 {
			bits = 128
		}
		return netip.PrefixFrom(a, bits).Masked(), nil
	}
	groups := strings.Split(str, ":")
	if len(groups) > 8 {
		return netip.Prefix{}, fmt.Errorf("bad IPv6 address %q", str)
	}
	var b [16]byte
	for i, g := range groups {
		if len(g) == 0 || len(g) > 4 {
			return netip.Prefix{}, fmt.Errorf("bad IPv6 address %q", str)
		}
		v, err := strconv.ParseUint(g, 16, 16)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("bad IPv6 address %q", str)
		}
		b[2*i], b[2*i+1] = byte(v>>8), byte(v)
	}
	if bits < 0 {
		bits = 16 * len(groups)
	}
	return netip.PrefixFrom(netip.AddrFrom16(b), bits).Masked(), nil
}
