package zones

import (
	"bufio"
	"cmp"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strconv"
	"strings"

	"github.com/blowback-dnsbl/blowback/internal/atomicfile"
)

// Errors.
var (
	// ErrExport: the snapshot cannot be written in the format asked for.
	ErrExport = errors.New("zones: cannot export")
	// ErrTemplate: the TXT template cannot be expressed in the format.
	ErrTemplate = errors.New("zones: TXT template not exportable")
)

// Format is an export format.
type Format string

// Export formats (CONTRACT.md `blowback export`).
const (
	FormatRbldnsd Format = "rbldnsd"
	FormatBIND    Format = "bind"
	FormatPlain   Format = "plain"
)

// ParseFormat checks a format name.
func ParseFormat(s string) (Format, error) {
	switch f := Format(strings.ToLower(s)); f {
	case FormatRbldnsd, FormatBIND, FormatPlain:
		return f, nil
	}
	return "", fmt.Errorf("zones: unknown format %q (want rbldnsd, bind or plain)", s)
}

// SOA holds what an export needs to write the zone's SOA and NS records.
type SOA struct {
	NS         []string // absolute names
	Hostmaster string   // mailbox as a domain name (hostmaster.example.org)
	TTL        uint32
	Refresh    uint32
	Retry      uint32
	Expire     uint32
	Minimum    uint32 // negative-caching TTL (RFC 2308 §4)
	// Glue holds addresses for name servers inside the zone (lower case,
	// no trailing dot); RFC 1034 §4.2.1 wants them in the zone, and
	// named-checkzone refuses an in-zone NS without one.
	Glue map[string][]netip.Addr
}

// WithDefaults fills in what is unset (the same defaults as dnsd.Config).
func (s SOA) WithDefaults(zone string) SOA {
	zone = CanonicalZone(zone)
	if len(s.NS) == 0 {
		s.NS = []string{"ns1." + zone}
	}
	s.Hostmaster = cmp.Or(s.Hostmaster, "hostmaster."+zone)
	s.Hostmaster = strings.Replace(s.Hostmaster, "@", ".", 1)
	s.TTL = cmp.Or(s.TTL, 300)
	s.Refresh = cmp.Or(s.Refresh, 600)
	s.Retry = cmp.Or(s.Retry, 60)
	s.Expire = cmp.Or(s.Expire, 604800)
	s.Minimum = cmp.Or(s.Minimum, 60)
	return s
}

// InZoneNS returns the name servers that lie inside the zone with their
// glue addresses (relative owner, addresses), in NS order.
func (s SOA) InZoneNS(zone string) []GlueRecord {
	zone = CanonicalZone(zone)
	var out []GlueRecord
	for _, n := range s.NS {
		n = CanonicalZone(n)
		rel, ok := strings.CutSuffix(n, "."+zone)
		if !ok {
			continue
		}
		out = append(out, GlueRecord{Owner: rel, Addrs: s.Glue[n]})
	}
	return out
}

// GlueRecord is an in-zone name server's owner (relative) and addresses.
type GlueRecord struct {
	Owner string
	Addrs []netip.Addr
}

func fqdn(s string) string {
	if strings.HasSuffix(s, ".") {
		return s
	}
	return s + "."
}

// Header is what the first line of an rbldnsd or BIND export says about it.
type Header struct {
	Zone    string
	Serial  uint32
	Entries int
}

const headerFmt = "blowback zone %s serial %d entries %d"

// ReadHeader reads the first line of an rbldnsd or BIND export written by
// this package.
func ReadHeader(r io.Reader) (Header, error) {
	line, err := bufio.NewReader(io.LimitReader(r, 1024)).ReadString('\n')
	if err != nil && line == "" {
		return Header{}, fmt.Errorf("%w: no header: %v", ErrExport, err)
	}
	line = strings.TrimLeft(line, "#; ")
	var h Header
	if _, err := fmt.Sscanf(strings.TrimSpace(line), headerFmt, &h.Zone, &h.Serial, &h.Entries); err != nil || h.Entries < 0 {
		return Header{}, fmt.Errorf("%w: not a blowback export header: %q", ErrExport, strings.TrimSpace(line))
	}
	return h, nil
}

// ReadHeaderFile is ReadHeader on a file.
func ReadHeaderFile(path string) (Header, error) {
	f, err := os.Open(path)
	if err != nil {
		return Header{}, err
	}
	defer f.Close()
	return ReadHeader(f)
}

// Write writes the snapshot in format f.
func Write(w io.Writer, f Format, s *Snapshot, soa SOA) error {
	switch f {
	case FormatRbldnsd:
		return WriteRbldnsd(w, s, soa)
	case FormatBIND:
		return WriteBIND(w, s, soa)
	case FormatPlain:
		return WritePlain(w, s)
	}
	return fmt.Errorf("zones: unknown format %q", f)
}

// Exportable reports whether the exports can say what the snapshot answers:
// zones loaded from rbldnsd files may carry per-entry A values and IPv6
// prefixes longer than /64, which the exports do not write. A value that
// only replaces the TXT (blowback's escalated ranges name their scope
// there) is exported with the zone's TXT: the codes stay exact, and mirrors
// keep getting updates.
func Exportable(s *Snapshot) error {
	for i := 0; i < s.Values(); i++ {
		if len(s.Value(uint32(i)).A) > 0 {
			return fmt.Errorf("%w: entries carry A values of their own (a zone loaded from an rbldnsd file)", ErrExport)
		}
	}
	var long bool
	s.Entries(func(e Entry) bool {
		long = !e.Prefix.Addr().Is4() && e.Prefix.Bits() > 64
		return !long
	})
	if long {
		return fmt.Errorf("%w: IPv6 entries longer than /64 (a zone loaded from an rbldnsd file)", ErrExport)
	}
	return nil
}

// ExpandTXT expands a TXT template as blowback answers it: "$" becomes
// shown, "$$" a literal "$" (Info.TXT).
func ExpandTXT(tmpl, shown string) string {
	if !strings.Contains(tmpl, "$") {
		return tmpl
	}
	var b strings.Builder
	for i := 0; i < len(tmpl); i++ {
		if tmpl[i] != '$' {
			b.WriteByte(tmpl[i])
			continue
		}
		if i+1 < len(tmpl) && tmpl[i+1] == '$' {
			b.WriteByte('$')
			i++
			continue
		}
		b.WriteString(shown)
	}
	return b.String()
}

// RbldnsdTXT returns the template in rbldnsd's syntax (rbldnsd(8),
// "Resulting A values and TXT templates"), where "$" is the address, "$$" a
// literal "$", and "$0".."$9" and "$=" are substitution variables: a "$"
// followed by a digit or "=" has no rbldnsd spelling, nor has a line break.
func RbldnsdTXT(tmpl string) (string, error) {
	for i := 0; i < len(tmpl); i++ {
		c := tmpl[i]
		if c < 0x20 || c == 0x7f {
			return "", fmt.Errorf("%w: control character %q", ErrTemplate, c)
		}
		if c != '$' {
			continue
		}
		if i+1 < len(tmpl) && tmpl[i+1] == '$' {
			i++
			continue
		}
		if i+1 < len(tmpl) && (tmpl[i+1] == '=' || (tmpl[i+1] >= '0' && tmpl[i+1] <= '9')) {
			return "", fmt.Errorf("%w: %q reads as an rbldnsd substitution variable", ErrTemplate, tmpl[i:i+2])
		}
	}
	if strings.TrimSpace(tmpl) != tmpl {
		return "", fmt.Errorf("%w: leading or trailing white space", ErrTemplate)
	}
	return tmpl, nil
}

// CheckTXT reports whether every export format can carry the template.
func CheckTXT(tmpl string) error {
	_, err := RbldnsdTXT(tmpl)
	return err
}

// WriteRbldnsd writes an rbldnsd "combined" dataset (rbldnsd(8)). rbldnsd
// gives each dataset entry one A value, and answers a name with the union
// of every dataset of the zone that lists it (one TXT when they are equal);
// so each return code gets its own datasets with the code as default value:
// an ip4set, an ip6tset for /64s and an ip6trie for wider IPv6 prefixes and
// the IPv6 test point. Entries are the flattened spans (see Spans): no
// overlaps, no exclusions, so rbldnsd's longest-match rules never come in.
func WriteRbldnsd(w io.Writer, s *Snapshot, soa SOA) error {
	if err := Exportable(s); err != nil {
		return err
	}
	txt, err := RbldnsdTXT(s.TXT)
	if err != nil {
		return err
	}
	soa = soa.WithDefaults(s.Zone)
	bw := bufio.NewWriterSize(w, 1<<16)
	fmt.Fprintf(bw, "# "+headerFmt+"\n", s.Zone, s.Serial, s.Len())
	fmt.Fprintf(bw, "$SOA %d %s %s %d %d %d %d %d\n", soa.TTL, fqdn(soa.NS[0]), fqdn(soa.Hostmaster), s.Serial, soa.Refresh, soa.Retry, soa.Expire, soa.Minimum)
	ns := make([]string, len(soa.NS))
	for i, n := range soa.NS {
		ns[i] = fqdn(n)
	}
	fmt.Fprintf(bw, "$NS %d %s\n", soa.TTL, strings.Join(ns, " "))
	fmt.Fprintf(bw, "$TTL %d\n", soa.TTL)
	names := [numCodes]string{"bounce", "autoreply", "callout", "challenge"}
	var buf []byte
	for i := range numCodes {
		code := Codes(1 << i)
		a := code.Addrs()[0]
		fmt.Fprintf(bw, "$DATASET ip4set:%s @\n:%s:%s\n", names[i], a, txt)
		s.spans(func(lo, hi uint32, c Codes) bool {
			if c&code == 0 {
				return true
			}
			if lo == hi {
				buf = appendAddr4(buf[:0], lo)
				buf = append(buf, '\n')
				_, err = bw.Write(buf)
				return err == nil
			}
			for _, p := range rangePrefixes4(lo, hi) {
				buf = p.AppendTo(buf[:0])
				buf = append(buf, '\n')
				if _, err = bw.Write(buf); err != nil {
					return false
				}
			}
			return true
		}, nil)
		if err != nil {
			return err
		}
	}
	for i := range numCodes {
		code := Codes(1 << i)
		a := code.Addrs()[0]
		fmt.Fprintf(bw, "$DATASET ip6tset:%s @\n:%s:%s\n", names[i], a, txt)
		var wide []netip.Prefix
		s.spans(nil, func(lo, hi uint64, c Codes) bool {
			if c&code == 0 {
				return true
			}
			for _, p := range rangePrefixes6(lo, hi) {
				if p.Bits() != 64 {
					wide = append(wide, p)
					continue
				}
				// ip6tset wants a /64 as its first four groups.
				b := p.Addr().As16()
				buf = buf[:0]
				for g := range 4 {
					if g > 0 {
						buf = append(buf, ':')
					}
					buf = strconv.AppendUint(buf, uint64(b[2*g])<<8|uint64(b[2*g+1]), 16)
				}
				buf = append(buf, '\n')
				if _, err = bw.Write(buf); err != nil {
					return false
				}
			}
			return true
		})
		if err != nil {
			return err
		}
		fmt.Fprintf(bw, "$DATASET ip6trie:%s @\n:%s:%s\n", names[i], a, txt)
		// RFC 5782 §5: ::FFFF:7F00:2 is listed with every code. rbldnsd
		// would put "::ffff:7f00:2" for "$"; blowback answers 127.0.0.2.
		// ip6trie wants the mapped address in hex groups.
		lit := strings.ReplaceAll(ExpandTXT(s.TXT, TestListed.String()), "$", "$$")
		fmt.Fprintf(bw, "::ffff:7f00:2 :%s:%s\n", a, lit)
		for _, p := range wide {
			fmt.Fprintf(bw, "%s\n", p)
		}
	}
	return bw.Flush()
}

func appendAddr4(b []byte, k uint32) []byte {
	b = strconv.AppendUint(b, uint64(k>>24), 10)
	b = append(b, '.')
	b = strconv.AppendUint(b, uint64(k>>16&0xff), 10)
	b = append(b, '.')
	b = strconv.AppendUint(b, uint64(k>>8&0xff), 10)
	b = append(b, '.')
	return strconv.AppendUint(b, uint64(k&0xff), 10)
}

// WriteBIND writes a master file (RFC 1035 §5) for the zone: the records a
// zone transfer carries (see Names), which named-checkzone, NSD and Knot
// load. Wider prefixes are wildcards (RFC 4592), whose TXT shows the prefix
// rather than the queried address.
func WriteBIND(w io.Writer, s *Snapshot, soa SOA) error {
	if err := Exportable(s); err != nil {
		return err
	}
	soa = soa.WithDefaults(s.Zone)
	bw := bufio.NewWriterSize(w, 1<<16)
	zone := fqdn(s.Zone)
	fmt.Fprintf(bw, "; "+headerFmt+"\n", s.Zone, s.Serial, s.Len())
	fmt.Fprintf(bw, "$ORIGIN %s\n$TTL %d\n", zone, soa.TTL)
	fmt.Fprintf(bw, "@ IN SOA %s %s %d %d %d %d %d\n", fqdn(soa.NS[0]), fqdn(soa.Hostmaster), s.Serial, soa.Refresh, soa.Retry, soa.Expire, soa.Minimum)
	for _, n := range soa.NS {
		fmt.Fprintf(bw, "@ IN NS %s\n", fqdn(n))
	}
	for _, g := range soa.InZoneNS(s.Zone) {
		for _, a := range g.Addrs {
			t := "A"
			if !a.Is4() {
				t = "AAAA"
			}
			fmt.Fprintf(bw, "%s IN %s %s\n", g.Owner, t, a)
		}
	}
	var buf, owner, txt []byte
	s.Names(func(n Name) bool {
		owner = n.AppendOwner(owner[:0])
		buf = buf[:0]
		for i := range numCodes {
			if n.Codes&(1<<i) == 0 {
				continue
			}
			buf = append(buf, owner...)
			buf = append(buf, " IN A 127.0.0."...)
			buf = strconv.AppendUint(buf, uint64(2+i), 10)
			buf = append(buf, '\n')
		}
		if s.TXT != "" {
			txt = n.AppendTXT(txt[:0], s.TXT)
			buf = append(buf, owner...)
			buf = append(buf, " IN TXT "...)
			buf = appendQuotedTXT(buf, txt)
			buf = append(buf, '\n')
		}
		return writeOn(bw, buf)
	})
	return bw.Flush()
}

// WritePlain writes one line per span: an address or CIDR prefix and its
// code names ("192.0.2.1 bounce,autoreply"), as blowback answers them (the
// test point 127.0.0.2 included).
func WritePlain(w io.Writer, s *Snapshot) error {
	if err := Exportable(s); err != nil {
		return err
	}
	bw := bufio.NewWriterSize(w, 1<<16)
	var buf []byte
	s.Spans(func(sp Span) bool {
		if sp.Prefix.Bits() == 128 {
			return true // the IPv6 test point is 127.0.0.2, already written
		}
		if sp.Prefix.Addr().Is4() && sp.Prefix.Bits() == 32 {
			buf = sp.Prefix.Addr().AppendTo(buf[:0])
		} else {
			buf = sp.Prefix.AppendTo(buf[:0])
		}
		buf = append(buf, ' ')
		buf = append(buf, strings.Join(sp.Codes.Names(), ",")...)
		buf = append(buf, '\n')
		return writeOn(bw, buf)
	})
	return bw.Flush()
}

// writeOn writes b to bw and says whether a walk writing an export goes
// on: bufio.Writer keeps its first error, which Flush then returns.
func writeOn(bw *bufio.Writer, b []byte) bool {
	_, err := bw.Write(b)
	return err == nil
}

// TXTStrings cuts a TXT value into character-strings of at most 255 bytes
// (RFC 1035 §3.3.14).
func TXTStrings(s string) []string {
	var out []string
	for len(s) > 255 {
		out = append(out, s[:255])
		s = s[255:]
	}
	return append(out, s)
}

// appendQuotedTXT appends the TXT value as master-file character-strings
// (RFC 1035 §5.1: quotes and backslashes escaped, other bytes outside
// printable ASCII as \DDD).
func appendQuotedTXT(b []byte, s []byte) []byte {
	for i := 0; i == 0 || len(s) > 0; i++ {
		part := s[:min(len(s), 255)]
		s = s[len(part):]
		if i > 0 {
			b = append(b, ' ')
		}
		b = append(b, '"')
		for _, c := range part {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c < 0x20 || c > 0x7e:
				b = append(b, '\\', '0'+c/100, '0'+c/10%10, '0'+c%10)
			default:
				b = append(b, c)
			}
		}
		b = append(b, '"')
	}
	return b
}

// WriteFileAtomic writes a file by temp file + fsync + rename, so a reader
// (rsync, rbldnsd) never sees half a file.
func WriteFileAtomic(path string, write func(io.Writer) error) error {
	return atomicfile.Write(path, 0o644, write)
}
