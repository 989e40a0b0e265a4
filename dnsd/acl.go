package dnsd

import "net/netip"

// ACL says who may query the zone: a client in Deny is refused; with Allow
// set, so is every client outside it. Refused clients get REFUSED.
type ACL struct {
	Allow []netip.Prefix
	Deny  []netip.Prefix
}

// Empty reports whether the ACL lets everyone in.
func (a ACL) Empty() bool { return len(a.Allow) == 0 && len(a.Deny) == 0 }

// Allowed reports whether ip may query.
func (a ACL) Allowed(ip netip.Addr) bool {
	ip = ip.Unmap()
	for _, p := range a.Deny {
		if p.Contains(ip) {
			return false
		}
	}
	if len(a.Allow) == 0 {
		return true
	}
	for _, p := range a.Allow {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}
