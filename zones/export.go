package zones

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
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
	Minimum    uint32 // negative-caching TTL
}

// DefaultSOA fills in what is unset.
func (s SOA) withDefaults(zone string) SOA {
	if len(s.NS) == 0 {
		s.NS = []string{"ns1." + zone}
	}
	if s.Hostmaster == "" {
		s.Hostmaster = "hostmaster." + zone
	}
	s.Hostmaster = strings.Replace(s.Hostmaster, "@", ".", 1)
	if s.TTL == 0 {
		s.TTL = 300
	}
	if s.Refresh == 0 {
		s.Refresh = 600
	}
	if s.Retry == 0 {
		s.Retry = 60
	}
	if s.Expire == 0 {
		s.Expire = 604800
	}
	if s.Minimum == 0 {
		s.Minimum = 60
	}
	return s
}

func fqdn(s string) string {
	if strings.HasSuffix(s, ".") {
		return s
	}
	return s + "."
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

// WriteRbldnsd writes an rbldnsd "combined" dataset: an ip4set for IPv4 and
// an ip6tset for IPv6, each entry with its own A value (rbldnsd returns one
// A per line; entries with several codes are written once per code).
func WriteRbldnsd(w io.Writer, s *Snapshot, soa SOA) error {
	soa = soa.withDefaults(s.Zone)
	bw := bufio.NewWriterSize(w, 1<<16)
	fmt.Fprintf(bw, "# blowback export of %s, serial %d, %d entries\n", s.Zone, s.Serial, s.Len())
	fmt.Fprintf(bw, "$SOA %d %s %s %d %d %d %d %d\n", soa.TTL, fqdn(soa.NS[0]), fqdn(soa.Hostmaster), s.Serial, soa.Refresh, soa.Retry, soa.Expire, soa.Minimum)
	fmt.Fprintf(bw, "$NS %d %s\n", soa.TTL, strings.Join(mapFqdn(soa.NS), " "))
	fmt.Fprintf(bw, "$TTL %d\n", soa.TTL)
	fmt.Fprintf(bw, "$DATASET ip4set @\n")
	fmt.Fprintf(bw, ":127.0.0.2:%s\n", s.TXT)
	fmt.Fprintf(bw, "127.0.0.2 :127.0.0.2:%s\n", s.TXT)
	var err error
	s.Entries(func(e Entry) bool {
		if !e.Prefix.Addr().Is4() {
			return true
		}
		err = writeRbldnsdEntry(bw, e, s.TXT)
		return err == nil
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(bw, "$DATASET ip6tset @\n")
	fmt.Fprintf(bw, ":127.0.0.2:%s\n", s.TXT)
	s.Entries(func(e Entry) bool {
		if e.Prefix.Addr().Is4() {
			return true
		}
		err = writeRbldnsdEntry(bw, e, s.TXT)
		return err == nil
	})
	if err != nil {
		return err
	}
	return bw.Flush()
}

func writeRbldnsdEntry(w *bufio.Writer, e Entry, txt string) error {
	p := e.Prefix.String()
	if e.Prefix.Addr().Is6() && e.Prefix.Bits() == 64 {
		// ip6tset takes /64 prefixes as the first four groups.
		b := e.Prefix.Addr().As16()
		p = fmt.Sprintf("%x:%x:%x:%x", uint16(b[0])<<8|uint16(b[1]), uint16(b[2])<<8|uint16(b[3]), uint16(b[4])<<8|uint16(b[5]), uint16(b[6])<<8|uint16(b[7]))
	}
	if e.Exclude {
		_, err := fmt.Fprintf(w, "!%s\n", p)
		return err
	}
	for _, a := range e.Codes.Addrs() {
		if _, err := fmt.Fprintf(w, "%s :%s:%s\n", p, a, txt); err != nil {
			return err
		}
	}
	return nil
}

func mapFqdn(ns []string) []string {
	out := make([]string, len(ns))
	for i, n := range ns {
		out[i] = fqdn(n)
	}
	return out
}

// WriteBIND writes a master file (RFC 1035 §5) for the zone.
func WriteBIND(w io.Writer, s *Snapshot, soa SOA) error {
	soa = soa.withDefaults(s.Zone)
	bw := bufio.NewWriterSize(w, 1<<16)
	zone := fqdn(s.Zone)
	fmt.Fprintf(bw, "; blowback export of %s, serial %d, %d entries\n", s.Zone, s.Serial, s.Len())
	fmt.Fprintf(bw, "$ORIGIN %s\n$TTL %d\n", zone, soa.TTL)
	fmt.Fprintf(bw, "@ IN SOA %s %s %d %d %d %d %d\n", fqdn(soa.NS[0]), fqdn(soa.Hostmaster), s.Serial, soa.Refresh, soa.Retry, soa.Expire, soa.Minimum)
	for _, n := range soa.NS {
		fmt.Fprintf(bw, "@ IN NS %s\n", fqdn(n))
	}
	writeName := func(name string, c Codes, shown string) {
		for _, a := range c.Addrs() {
			fmt.Fprintf(bw, "%s IN A %s\n", name, a)
		}
		fmt.Fprintf(bw, "%s IN TXT %s\n", name, quoteTXT(strings.ReplaceAll(s.TXT, "$", shown)))
	}
	// RFC 5782 §5 test points.
	writeName("2.0.0.127", CodeAll, "127.0.0.2")
	writeName(nibbles6(TestListed.As16(), 32, true), CodeAll, "::ffff:127.0.0.2")
	var err error
	s.Entries(func(e Entry) bool {
		if e.Exclude {
			return true // BIND has no exclusions: an excluded address is simply absent
		}
		a := e.Prefix.Addr()
		if a.Is4() {
			if e.Prefix.Bits() == 32 {
				b := a.As4()
				writeName(fmt.Sprintf("%d.%d.%d.%d", b[3], b[2], b[1], b[0]), e.Codes, a.String())
				return true
			}
			// Wider prefixes: a wildcard per /24 or /16 boundary.
			for _, p := range splitToOctets(e.Prefix) {
				writeName(p, e.Codes, e.Prefix.String())
			}
			return true
		}
		if e.Prefix.Bits() == 64 {
			writeName("*."+nibbles6(a.As16(), 16, false), e.Codes, e.Prefix.String())
			return true
		}
		for _, p := range splitToNibbles(e.Prefix) {
			writeName(p, e.Codes, e.Prefix.String())
		}
		return true
	})
	if err != nil {
		return err
	}
	return bw.Flush()
}

// WritePlain writes one prefix per line with its code names.
func WritePlain(w io.Writer, s *Snapshot) error {
	bw := bufio.NewWriterSize(w, 1<<16)
	var err error
	s.Entries(func(e Entry) bool {
		if e.Exclude {
			_, err = fmt.Fprintf(bw, "!%s\n", e.Prefix)
			return err == nil
		}
		p := e.Prefix.String()
		if e.Prefix.Addr().Is4() && e.Prefix.Bits() == 32 {
			p = e.Prefix.Addr().String()
		}
		_, err = fmt.Fprintf(bw, "%s %s\n", p, strings.Join(e.Codes.Names(), ","))
		return err == nil
	})
	if err != nil {
		return err
	}
	return bw.Flush()
}

func quoteTXT(s string) string {
	var b strings.Builder
	for len(s) > 0 {
		n := min(len(s), 255)
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteByte('"')
		for _, c := range []byte(s[:n]) {
			if c == '"' || c == '\\' {
				b.WriteByte('\\')
			}
			b.WriteByte(c)
		}
		b.WriteByte('"')
		s = s[n:]
	}
	if b.Len() == 0 {
		return `""`
	}
	return b.String()
}

// nibbles6 returns the reversed nibble labels of the first n nibbles.
func nibbles6(b [16]byte, n int, _ bool) string {
	labels := make([]string, 0, n)
	for i := n - 1; i >= 0; i-- {
		v := b[i/2]
		if i%2 == 0 {
			v >>= 4
		}
		labels = append(labels, fmt.Sprintf("%x", v&0xf))
	}
	return strings.Join(labels, ".")
}

// splitToOctets expresses an IPv4 prefix wider than /32 as wildcard owner
// names on octet boundaries (a /20 becomes sixteen "*.X.B.A" names).
func splitToOctets(p netip.Prefix) []string {
	bits := p.Bits()
	o := (bits + 7) / 8 * 8
	if o == 0 {
		return nil // never publish "list the world"
	}
	base := binary.BigEndian.Uint32(p.Masked().Addr().AsSlice())
	n := uint32(1) << (o - bits)
	out := make([]string, 0, n)
	for i := uint32(0); i < n; i++ {
		v := base + i<<(32-o)
		var labels []string
		for k := o/8 - 1; k >= 0; k-- {
			labels = append(labels, fmt.Sprint(byte(v>>(24-8*k))))
		}
		out = append(out, "*."+strings.Join(labels, "."))
	}
	return out
}

// splitToNibbles is splitToOctets for IPv6 prefixes wider than /64, on
// nibble boundaries.
func splitToNibbles(p netip.Prefix) []string {
	bits := p.Bits()
	nb := (bits + 3) / 4
	if nb == 0 {
		return nil
	}
	b := p.Masked().Addr().As16()
	base := binary.BigEndian.Uint64(b[:8])
	n := uint64(1) << (4*nb - bits)
	out := make([]string, 0, n)
	for i := uint64(0); i < n; i++ {
		var v [16]byte
		binary.BigEndian.PutUint64(v[:8], base+i<<(64-4*nb))
		out = append(out, "*."+nibbles6(v, nb, false))
	}
	return out
}

// WriteFileAtomic writes a file by temp file + fsync + rename, so a reader
// (rsync, rbldnsd) never sees half a file.
func WriteFileAtomic(path string, write func(io.Writer) error) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err := write(f); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Chmod(tmp, 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	ok = true
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
