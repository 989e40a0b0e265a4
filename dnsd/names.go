package dnsd

import (
	"fmt"
	"net/netip"
	"strings"
)

// Names and text of a DNSBL zone: where a query name sits in the zone, the
// address (or range) its labels spell (RFC 5782 §2.1, §2.4), and the TXT
// template expansion. The fast path (fast.go) reads the same names from the
// wire without these; the two agree (TestFastEqualsSlow, FuzzPacket).

// inZone returns the labels of name below zone (lower-cased zone, no dot).
func inZone(name, zone string) (string, bool) {
	n := strings.TrimSuffix(name, ".")
	if len(n) < len(zone) || !strings.EqualFold(n[len(n)-len(zone):], zone) {
		return "", false
	}
	rest := n[:len(n)-len(zone)]
	if rest == "" {
		return "", true
	}
	if !strings.HasSuffix(rest, ".") {
		return "", false // e.g. "xbl.blowback.test" for zone "bl.blowback.test"
	}
	return rest[:len(rest)-1], true
}

// TXT expands a template: "$" becomes the queried address, "$$" a "$".
func TXT(tmpl string, a netip.Addr) string {
	return string(appendTXT(nil, tmpl, a))
}

func appendTXT(b []byte, tmpl string, a netip.Addr) []byte {
	for i := 0; i < len(tmpl); i++ {
		c := tmpl[i]
		if c != '$' {
			b = append(b, c)
			continue
		}
		if i+1 < len(tmpl) && tmpl[i+1] == '$' {
			b = append(b, '$')
			i++
			continue
		}
		b = a.Unmap().AppendTo(b)
	}
	return b
}

// splitTXT cuts a string into <=255-byte character-strings (RFC 1035 §3.3.14).
// miekg/dns stores them in presentation form, so special bytes are escaped.
func splitTXT(s string) []string {
	var out []string
	for {
		n := min(len(s), 255)
		out = append(out, escapeTXT(s[:n]))
		s = s[n:]
		if len(s) == 0 {
			return out
		}
	}
}

func escapeTXT(s string) string {
	clean := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == '"' || c == '\\' || c < ' ' || c > '~' {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < ' ' || c > '~':
			fmt.Fprintf(&b, "\\%03d", c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// parseRel parses the labels below the zone. A full IPv4 (4 decimal labels)
// or IPv6 (32 nibbles) name gives addr; fewer labels give partial with the
// range of addresses below the name (IPv4 as uint32 in lo/hi, IPv6 as /64
// units).
func parseRel(rel string) (addr netip.Addr, partial bool, lo, hi uint64, v6 bool, ok bool) {
	labels := strings.Split(rel, ".")
	if len(labels) <= 4 {
		var b [4]byte
		good := true
		for i, l := range labels {
			n, okn := octet(l)
			if !okn {
				good = false
				break
			}
			b[len(labels)-1-i] = n // reversed: first label is the last octet
		}
		if good {
			if len(labels) == 4 {
				return netip.AddrFrom4(b), false, 0, 0, false, true
			}
			// Labels fill from the top octet down.
			var v uint32
			for i := 0; i < len(labels); i++ {
				n, _ := octet(labels[len(labels)-1-i])
				v |= uint32(n) << (24 - 8*i)
			}
			span := uint32(1)<<(32-8*len(labels)) - 1
			return netip.Addr{}, true, uint64(v), uint64(v | span), false, true
		}
	}
	if len(labels) > 32 || !looksLikeNibbles(rel) {
		return netip.Addr{}, false, 0, 0, false, false
	}
	if len(labels) == 32 {
		var b [16]byte
		for i, l := range labels {
			n := hexVal(l[0])
			pos := 31 - i
			if pos%2 == 0 {
				b[pos/2] |= n << 4
			} else {
				b[pos/2] |= n
			}
		}
		return netip.AddrFrom16(b), false, 0, 0, true, true
	}
	l, h := nibbleRange(rel)
	return netip.Addr{}, true, l, h, true, true
}

// octet reads a decimal label 0-255 without leading zeros or signs.
func octet(l string) (byte, bool) {
	if len(l) == 0 || len(l) > 3 || (len(l) > 1 && l[0] == '0') {
		return 0, false
	}
	n := 0
	for i := 0; i < len(l); i++ {
		if l[i] < '0' || l[i] > '9' {
			return 0, false
		}
		n = n*10 + int(l[i]-'0')
	}
	if n > 255 {
		return 0, false
	}
	return byte(n), true
}

func looksLikeNibbles(rel string) bool {
	labels := strings.Split(rel, ".")
	for _, l := range labels {
		if len(l) != 1 || hexVal(l[0]) == 0xff {
			return false
		}
	}
	return len(labels) <= 32
}

// nibbleRange returns the /64 units covered by a partial nibble name.
func nibbleRange(rel string) (uint64, uint64) {
	labels := strings.Split(rel, ".")
	var v uint64
	n := 0
	for i := len(labels) - 1; i >= 0 && n < 16; i-- {
		v = v<<4 | uint64(hexVal(labels[i][0]))
		n++
	}
	if n == 16 {
		return v, v
	}
	shift := uint(64 - 4*n)
	v <<= shift
	return v, v | (uint64(1)<<shift - 1)
}

func hexVal(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10
	}
	return 0xff
}
