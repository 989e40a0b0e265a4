package selftest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sort"
	"strings"
	"time"
)

// Resolver looks up what the probe needs.
type Resolver interface {
	// LookupMX returns the MX records of domain; a "." host is a null MX
	// (RFC 7505). No records and no error: the domain has none.
	LookupMX(ctx context.Context, domain string) ([]MX, error)
	// LookupAddrs returns the A and AAAA addresses of host.
	LookupAddrs(ctx context.Context, host string) ([]netip.Addr, error)
}

// MX is one MX record.
type MX struct {
	Host string
	Pref uint16
}

// FakeResolver answers from maps (tests).
type FakeResolver struct {
	MXs   map[string][]MX
	Addrs map[string][]netip.Addr
}

var _ Resolver = FakeResolver{}

// LookupMX implements Resolver.
func (f FakeResolver) LookupMX(_ context.Context, d string) ([]MX, error) { return f.MXs[d], nil }

// LookupAddrs implements Resolver.
func (f FakeResolver) LookupAddrs(_ context.Context, h string) ([]netip.Addr, error) {
	return f.Addrs[strings.TrimSuffix(h, ".")], nil
}

// dnsResolver asks one DNS server (the configured resolver) with Go's
// own stub resolver.
type dnsResolver struct {
	r       *net.Resolver
	timeout time.Duration
}

// NewDNSResolver returns a Resolver that asks the DNS server at addr.
func NewDNSResolver(addr string, timeout time.Duration) Resolver {
	d := net.Dialer{Timeout: timeout}
	return &dnsResolver{timeout: timeout, r: &net.Resolver{PreferGo: true,
		Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return d.DialContext(ctx, network, addr)
		}}}
}

func notFound(err error) bool {
	var de *net.DNSError
	return errors.As(err, &de) && de.IsNotFound
}

func (d *dnsResolver) LookupMX(ctx context.Context, domain string) ([]MX, error) {
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	mxs, err := d.r.LookupMX(ctx, domain)
	if err != nil && !notFound(err) && len(mxs) == 0 {
		return nil, err
	}
	var out []MX
	for _, m := range mxs {
		out = append(out, MX{Host: m.Host, Pref: m.Pref})
	}
	return out, nil
}

func (d *dnsResolver) LookupAddrs(ctx context.Context, host string) ([]netip.Addr, error) {
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	as, err := d.r.LookupNetIP(ctx, "ip", host)
	if err != nil && !notFound(err) {
		return nil, err
	}
	for i := range as {
		as[i] = as[i].Unmap()
	}
	return as, nil
}

// usable reports whether the probe may connect to a: a public unicast
// address, unless private ones are allowed (tests).
func (t *Tester) usable(a netip.Addr) bool {
	if !a.IsValid() || a.IsUnspecified() || a.IsMulticast() || a.IsLinkLocalUnicast() {
		return false
	}
	if t.cfg.AllowPrivate {
		return true
	}
	return !a.IsLoopback() && !a.IsPrivate() && a.IsGlobalUnicast()
}

// resolve finds the addresses to probe, in MX preference order: at most
// MaxMX hosts and two addresses each. A domain without MX records is its
// own MX (RFC 5321 §5.1); a null MX (RFC 7505) accepts no mail.
func (t *Tester) resolve(ctx context.Context, domain string) ([]MXHost, []netip.Addr, error) {
	mxs, err := t.res.LookupMX(ctx, domain)
	if err != nil {
		return nil, nil, fmt.Errorf("the MX lookup for %s failed: %v", domain, err)
	}
	if len(mxs) == 1 && (mxs[0].Host == "." || mxs[0].Host == "") {
		return nil, nil, fmt.Errorf("%s publishes a null MX (RFC 7505): it accepts no mail, so it cannot be tested", domain)
	}
	implicit := false
	if len(mxs) == 0 {
		mxs, implicit = []MX{{Host: domain}}, true
	}
	sort.SliceStable(mxs, func(i, j int) bool { return mxs[i].Pref < mxs[j].Pref })
	var hosts []MXHost
	var addrs []netip.Addr
	seen := map[netip.Addr]bool{}
	for i, m := range mxs {
		h := MXHost{Host: strings.TrimSuffix(strings.ToLower(m.Host), "."), Pref: m.Pref, Addrs: []string{}}
		if implicit {
			h.Note = "no MX records: the domain itself (RFC 5321 §5.1)"
		}
		if i >= t.cfg.MaxMX {
			h.Note = "not tried (only the first few MX hosts are)"
			hosts = append(hosts, h)
			continue
		}
		as, err := t.res.LookupAddrs(ctx, h.Host)
		if err != nil {
			h.Note = "address lookup failed"
		}
		n := 0
		for _, a := range as {
			h.Addrs = append(h.Addrs, a.String())
			if !t.usable(a) {
				h.Note = "has addresses the test does not connect to (private, loopback or reserved)"
				continue
			}
			if n < 2 && !seen[a] {
				seen[a] = true
				addrs = append(addrs, a)
				n++
			}
		}
		if len(as) == 0 && err == nil {
			h.Note = "no addresses"
		}
		hosts = append(hosts, h)
	}
	if len(addrs) == 0 {
		return hosts, nil, fmt.Errorf("no usable address for the mail servers of %s", domain)
	}
	return hosts, addrs, nil
}
