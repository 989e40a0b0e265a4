package trap

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"
)

// The PROXY protocol (HAProxy, proxy-protocol.txt, versions 1 and 2) lets a
// load balancer pass the client's address to the trap. It is read only from
// peers in Config.ProxyTrusted; anyone else who sends a header is refused,
// because evidence must be tied to the real TCP peer (issue 9: poisoning).

// ErrProxyHeader is returned for a missing or malformed PROXY header.
var ErrProxyHeader = errors.New("trap: bad PROXY protocol header")

const (
	proxyV1Max     = 107 // proxy-protocol.txt §2.1: the longest v1 line, CRLF included
	proxyV2HdrLen  = 16  // §2.2: signature, ver/cmd, fam/proto, length
	proxyV2MaxBody = 4096
)

// proxyV2Sig is the v2 signature (§2.2). It starts with CRLF CRLF NUL and
// ends in "QUIT\n", so an SMTP server that does not speak PROXY quits.
var proxyV2Sig = []byte("\r\n\r\n\x00\r\nQUIT\n")

// proxyHeader is a parsed PROXY header. Local is set for a v2 LOCAL command
// and a v1 UNKNOWN line: the connection's own endpoints are to be used
// (health checks).
type proxyHeader struct {
	Version  int
	Local    bool
	Src, Dst netip.AddrPort
}

// readProxyHeader reads one PROXY v1 or v2 header from r and nothing past it
// (bytes after the header stay buffered in r).
func readProxyHeader(r *bufio.Reader) (proxyHeader, error) {
	b, err := r.Peek(1)
	if err != nil {
		return proxyHeader{}, fmt.Errorf("%w: %w", ErrProxyHeader, err)
	}
	switch b[0] {
	case 'P':
		return readProxyV1(r)
	case '\r':
		return readProxyV2(r)
	}
	return proxyHeader{}, fmt.Errorf("%w: no signature", ErrProxyHeader)
}

// readProxyV1 reads "PROXY TCP4|TCP6|UNKNOWN src dst sport dport\r\n"
// (proxy-protocol.txt §2.1), byte by byte so that a short header followed by
// silence never blocks for more.
func readProxyV1(r *bufio.Reader) (proxyHeader, error) {
	line := make([]byte, 0, proxyV1Max)
	for {
		c, err := r.ReadByte()
		if err != nil {
			return proxyHeader{}, fmt.Errorf("%w: v1: %w", ErrProxyHeader, err)
		}
		line = append(line, c)
		if c == '\n' {
			break
		}
		if len(line) >= proxyV1Max {
			return proxyHeader{}, fmt.Errorf("%w: v1 line too long", ErrProxyHeader)
		}
	}
	return parseProxyV1(line)
}

func parseProxyV1(line []byte) (proxyHeader, error) {
	bad := func(why string) (proxyHeader, error) {
		return proxyHeader{}, fmt.Errorf("%w: v1: %s", ErrProxyHeader, why)
	}
	s, ok := strings.CutSuffix(string(line), "\r\n")
	if !ok {
		return bad("no CRLF")
	}
	f := strings.Split(s, " ")
	if len(f) < 2 || f[0] != "PROXY" {
		return bad("no PROXY keyword")
	}
	h := proxyHeader{Version: 1}
	switch f[1] {
	case "UNKNOWN": // §2.1: the rest of the line is to be ignored
		h.Local = true
		return h, nil
	case "TCP4", "TCP6":
	default:
		return bad("unknown protocol")
	}
	if len(f) != 6 {
		return bad("want 6 fields")
	}
	src, err1 := netip.ParseAddr(f[2])
	dst, err2 := netip.ParseAddr(f[3])
	sp, err3 := parseProxyPort(f[4])
	dp, err4 := parseProxyPort(f[5])
	if err := errors.Join(err1, err2, err3, err4); err != nil {
		return bad("bad address or port")
	}
	want4 := f[1] == "TCP4"
	if src.Is4() != want4 || dst.Is4() != want4 || src.Zone() != "" || dst.Zone() != "" {
		return bad("address family mismatch")
	}
	h.Src, h.Dst = netip.AddrPortFrom(src, sp), netip.AddrPortFrom(dst, dp)
	return h, nil
}

// parseProxyPort accepts 0..65535 in decimal without sign or leading zeros.
func parseProxyPort(s string) (uint16, error) {
	if s == "" || len(s) > 5 || (len(s) > 1 && s[0] == '0') || strings.TrimLeft(s, "0123456789") != "" {
		return 0, errors.New("bad port")
	}
	n, err := strconv.ParseUint(s, 10, 16)
	return uint16(n), err
}

// readProxyV2 reads the binary header of proxy-protocol.txt §2.2.
func readProxyV2(r *bufio.Reader) (proxyHeader, error) {
	var hdr [proxyV2HdrLen]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return proxyHeader{}, fmt.Errorf("%w: v2: %w", ErrProxyHeader, err)
	}
	if !bytes.Equal(hdr[:12], proxyV2Sig) {
		return proxyHeader{}, fmt.Errorf("%w: v2: bad signature", ErrProxyHeader)
	}
	n := int(binary.BigEndian.Uint16(hdr[14:16]))
	if n > proxyV2MaxBody {
		return proxyHeader{}, fmt.Errorf("%w: v2: %d-byte body over the %d limit", ErrProxyHeader, n, proxyV2MaxBody)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return proxyHeader{}, fmt.Errorf("%w: v2: %w", ErrProxyHeader, err)
	}
	return parseProxyV2(hdr, body)
}

func parseProxyV2(hdr [proxyV2HdrLen]byte, body []byte) (proxyHeader, error) {
	bad := func(why string) (proxyHeader, error) {
		return proxyHeader{}, fmt.Errorf("%w: v2: %s", ErrProxyHeader, why)
	}
	if hdr[12]>>4 != 2 {
		return bad("version is not 2")
	}
	h := proxyHeader{Version: 2}
	switch hdr[12] & 0x0f {
	case 0x0: // LOCAL: §2.2 "the receiver must ... use the real connection endpoints"
		h.Local = true
		return h, nil
	case 0x1: // PROXY
	default:
		return bad("unknown command")
	}
	fam, proto := hdr[13]>>4, hdr[13]&0x0f
	if proto != 0x1 && fam != 0x0 { // only STREAM carries SMTP
		return bad("not a stream")
	}
	switch fam {
	case 0x0: // AF_UNSPEC: addresses unknown, like LOCAL
		h.Local = true
		return h, nil
	case 0x1: // AF_INET: 4+4+2+2
		if len(body) < 12 {
			return bad("short IPv4 block")
		}
		src, _ := netip.AddrFromSlice(body[0:4])
		dst, _ := netip.AddrFromSlice(body[4:8])
		h.Src = netip.AddrPortFrom(src, binary.BigEndian.Uint16(body[8:10]))
		h.Dst = netip.AddrPortFrom(dst, binary.BigEndian.Uint16(body[10:12]))
	case 0x2: // AF_INET6: 16+16+2+2
		if len(body) < 36 {
			return bad("short IPv6 block")
		}
		src, _ := netip.AddrFromSlice(body[0:16])
		dst, _ := netip.AddrFromSlice(body[16:32])
		h.Src = netip.AddrPortFrom(src.Unmap(), binary.BigEndian.Uint16(body[32:34]))
		h.Dst = netip.AddrPortFrom(dst.Unmap(), binary.BigEndian.Uint16(body[34:36]))
	default: // AF_UNIX and unknown families carry no address we can list
		return bad("unsupported address family")
	}
	return h, nil
}

// looksLikeProxy reports whether the first bytes a client sent start a PROXY
// header (v1 or v2). No SMTP command begins with either.
func looksLikeProxy(b []byte) bool {
	return bytes.HasPrefix(b, []byte("PROXY ")) || (len(b) >= 5 && bytes.HasPrefix(proxyV2Sig, b[:min(len(b), len(proxyV2Sig))]))
}

// appendProxyV1 and appendProxyV2 encode a header (tests, and the fuzz
// round trip).
func appendProxyV1(b []byte, h proxyHeader) []byte {
	if h.Local {
		return append(b, "PROXY UNKNOWN\r\n"...)
	}
	fam := "TCP4"
	if !h.Src.Addr().Is4() {
		fam = "TCP6"
	}
	return fmt.Appendf(b, "PROXY %s %s %s %d %d\r\n", fam, h.Src.Addr(), h.Dst.Addr(), h.Src.Port(), h.Dst.Port())
}

func appendProxyV2(b []byte, h proxyHeader, tlvs []byte) []byte {
	b = append(b, proxyV2Sig...)
	if h.Local {
		b = append(b, 0x20, 0x00)
		return binary.BigEndian.AppendUint16(b, 0)
	}
	var body []byte
	fam := byte(0x11)
	if h.Src.Addr().Is4() {
		s, d := h.Src.Addr().As4(), h.Dst.Addr().As4()
		body = append(append(body, s[:]...), d[:]...)
	} else {
		fam = 0x21
		s, d := h.Src.Addr().As16(), h.Dst.Addr().As16()
		body = append(append(body, s[:]...), d[:]...)
	}
	body = binary.BigEndian.AppendUint16(body, h.Src.Port())
	body = binary.BigEndian.AppendUint16(body, h.Dst.Port())
	body = append(body, tlvs...)
	b = append(b, 0x21, fam)
	b = binary.BigEndian.AppendUint16(b, uint16(len(body)))
	return append(b, body...)
}
