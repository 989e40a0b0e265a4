package scoring

import "net/netip"

// neverListed are the ranges no evidence can list: no mail server sends
// from them, and a DNSBL that lists them answers nonsense.
//
//   - 127.0.0.1 (and ::FFFF:7F00:1, which unmaps to it): the RFC 5782 §5
//     test point that must never be listed.
//   - ::/64, which holds ::1 (loopback) and :: (unspecified); IPv6 is
//     listed per /64, so the whole /64 goes.
//   - 0.0.0.0/8 ("this network", RFC 1122 §3.2.1.3), 169.254.0.0/16 and
//     fe80::/10 (link-local, RFC 3927, RFC 4291 §2.5.6), 224.0.0.0/4 and
//     ff00::/8 (multicast), 240.0.0.0/4 (reserved, with the limited
//     broadcast 255.255.255.255, RFC 1112 §4, RFC 919).
//
// The rest of 127.0.0.0/8 stays listable on purpose: the tests and the
// reliability bench run traps and senders on one host and use 127.0.0.x
// source addresses as stand-ins for the internet; no real sender has them,
// and the RFC 5782 test point 127.0.0.2 is listed anyway.
var neverListed = []netip.Prefix{
	netip.MustParsePrefix("127.0.0.1/32"),
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("169.254.0.0/16"),
	netip.MustParsePrefix("224.0.0.0/4"),
	netip.MustParsePrefix("240.0.0.0/4"),
	netip.MustParsePrefix("::/64"),
	netip.MustParsePrefix("fe80::/10"),
	netip.MustParsePrefix("ff00::/8"),
}

// Listable reports whether evidence may ever list a: false for the
// ranges above. Every path uses it: evidence for them is refused at
// intake (listing.Engine.Ingest), a decision for them is "not listed"
// whatever is stored (Decide), and the public delist answers that there
// is nothing to delist. A zero or invalid address is not listable.
func Listable(a netip.Addr) bool {
	if !a.IsValid() {
		return false
	}
	a = a.Unmap()
	if a.Zone() != "" {
		return false
	}
	for _, p := range neverListed {
		if p.Contains(a) {
			return false
		}
	}
	return true
}

// notListableReason is the decision's reason for an address Listable refuses.
func notListableReason(a netip.Addr) string {
	if a.Unmap() == netip.AddrFrom4([4]byte{127, 0, 0, 1}) {
		return "RFC 5782 test point: never listed"
	}
	return "reserved address (loopback, link-local, multicast or unspecified): never listed"
}
