// Package netx parses the networks an operator writes: in the config
// (allow, deny, exempt and trusted-proxy lists), in a resolver list file,
// on the command line (`blowback allow`) and in the admin API.
//
// Every one of them is compared with client addresses that have been
// unmapped (::ffff:192.0.2.1 is 192.0.2.1), so the parser unmaps too: an
// IPv4-mapped address or prefix stands for its IPv4 network.
package netx

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// ErrPrefix: the text is not an address or a CIDR prefix we accept.
var ErrPrefix = errors.New("not an address or CIDR prefix")

// ParsePrefix parses a CIDR prefix (192.0.2.0/24, 2001:db8::/32) or a
// single address (its host prefix: 192.0.2.1 is 192.0.2.1/32), with
// surrounding white space ignored. The result is valid and masked
// (192.0.2.7/24 is 192.0.2.0/24) and never IPv4-mapped: ::ffff:192.0.2.1
// is 192.0.2.1/32 and ::ffff:192.0.2.0/120 is 192.0.2.0/24. A mapped
// prefix shorter than /96 reaches past the mapped space and is refused. An
// address's zone is dropped (fe80::1%eth0 is fe80::1/128); a prefix with a
// zone does not parse. Errors wrap ErrPrefix and quote s.
func ParsePrefix(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%w: %q", ErrPrefix, s)
		}
		if p.Addr().Is4In6() {
			if p.Bits() < 96 {
				return netip.Prefix{}, fmt.Errorf("%w: %q: IPv4-mapped prefix shorter than /96", ErrPrefix, s)
			}
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%w: %q", ErrPrefix, s)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}
