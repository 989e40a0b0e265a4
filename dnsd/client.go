package dnsd

import (
	"context"
	"fmt"
	"net/netip"
	"strings"

	"github.com/miekg/dns"

	"github.com/blowback-dnsbl/blowback/zones"
)

// QueryName returns the DNSBL name for a in zone (RFC 5782 §2.1, §2.4):
// reversed octets for IPv4, 32 reversed nibbles for IPv6.
func QueryName(a netip.Addr, zone string) string {
	zone = zones.CanonicalZone(zone)
	a = a.Unmap()
	if a.Is4() {
		b := a.As4()
		return fmt.Sprintf("%d.%d.%d.%d.%s.", b[3], b[2], b[1], b[0], zone)
	}
	b := a.As16()
	var sb strings.Builder
	const hex = "0123456789abcdef"
	for i := 15; i >= 0; i-- {
		sb.WriteByte(hex[b[i]&0xf])
		sb.WriteByte('.')
		sb.WriteByte(hex[b[i]>>4])
		sb.WriteByte('.')
	}
	return sb.String() + zone + "."
}

// Result is the answer to a DNSBL query.
type Result struct {
	// Listed: a listing code (127.0.0.0/8, RFC 5782 §2.3) other than a
	// refusal code (127.255.255.0/24, policy.go) was answered.
	Listed bool
	Codes  []netip.Addr // A records
	TXT    []string
	Rcode  string
}

// Check queries server (host:port) for a in zone, A and TXT, like rblcheck.
func Check(ctx context.Context, server, zone string, a netip.Addr) (Result, error) {
	name := QueryName(a, zone)
	c := &dns.Client{}
	var res Result
	for _, qt := range []uint16{dns.TypeA, dns.TypeTXT} {
		m := new(dns.Msg)
		m.SetQuestion(name, qt)
		m.SetEdns0(1232, false)
		r, _, err := c.ExchangeContext(ctx, m, server)
		if err == nil && r.Truncated {
			tc := &dns.Client{Net: "tcp"}
			r, _, err = tc.ExchangeContext(ctx, m, server)
		}
		if err != nil {
			return res, fmt.Errorf("dnsd: query %s: %w", name, err)
		}
		res.Rcode = dns.RcodeToString[r.Rcode]
		switch r.Rcode {
		case dns.RcodeSuccess, dns.RcodeNameError:
		default:
			return res, fmt.Errorf("dnsd: query %s: %s", name, res.Rcode)
		}
		for _, rr := range r.Answer {
			switch v := rr.(type) {
			case *dns.A:
				if ip, ok := netip.AddrFromSlice(v.A); ok {
					res.Codes = append(res.Codes, ip.Unmap())
				}
			case *dns.TXT:
				res.TXT = append(res.TXT, strings.Join(v.Txt, ""))
			}
		}
		if qt == dns.TypeA && r.Rcode == dns.RcodeNameError {
			return res, nil
		}
	}
	for _, c := range res.Codes {
		res.Listed = res.Listed || IsListingCode(c)
	}
	return res, nil
}

// refusalCodes is the range of the answers that say no (policy.go): never
// a listing.
var refusalCodes = netip.MustParsePrefix("127.255.255.0/24")

// IsListingCode reports whether an A record of a DNSBL answer means
// "listed": in 127.0.0.0/8 (RFC 5782 §2.3) and not a refusal code in
// 127.255.255.0/24.
func IsListingCode(a netip.Addr) bool {
	a = a.Unmap()
	return a.Is4() && a.As4()[0] == 127 && !refusalCodes.Contains(a)
}
