package zones

import (
	"net/netip"

	"github.com/blowback-dnsbl/blowback/store"
)

// Codes is a set of return codes: bit i stands for 127.0.0.(2+i).
type Codes uint8

// Return codes (CONTRACT.md "DNS").
const (
	CodeBounce    Codes = 1 << 0 // 127.0.0.2 bounce
	CodeAutoreply Codes = 1 << 1 // 127.0.0.3 autoreply or mdn
	CodeCallout   Codes = 1 << 2 // 127.0.0.4 callout
	CodeChallenge Codes = 1 << 3 // 127.0.0.5 challenge
	CodeAll             = CodeBounce | CodeAutoreply | CodeCallout | CodeChallenge
	numCodes            = 4
)

// CodeOf maps a kind to its return code (zero for kinds that are not listed).
func CodeOf(k store.Kind) Codes {
	switch k {
	case store.KindBounce:
		return CodeBounce
	case store.KindAutoreply, store.KindMDN:
		return CodeAutoreply
	case store.KindCallout:
		return CodeCallout
	case store.KindChallenge:
		return CodeChallenge
	}
	return 0
}

// CodesOf maps a set of kinds to return codes.
func CodesOf(ks store.KindSet) Codes {
	var c Codes
	for _, k := range ks.Kinds() {
		c |= CodeOf(k)
	}
	return c
}

// Addrs returns the A record values for the codes, lowest first.
func (c Codes) Addrs() []netip.Addr {
	var out []netip.Addr
	for i := 0; i < numCodes; i++ {
		if c&(1<<i) != 0 {
			out = append(out, netip.AddrFrom4([4]byte{127, 0, 0, byte(2 + i)}))
		}
	}
	return out
}

// Names returns the code names ("bounce", "autoreply", "callout", "challenge").
func (c Codes) Names() []string {
	names := [numCodes]string{"bounce", "autoreply", "callout", "challenge"}
	var out []string
	for i := 0; i < numCodes; i++ {
		if c&(1<<i) != 0 {
			out = append(out, names[i])
		}
	}
	return out
}

// CodeFromAddr is the inverse of Addrs for one address (0 if not a return code).
func CodeFromAddr(a netip.Addr) Codes {
	a = a.Unmap()
	if !a.Is4() {
		return 0
	}
	b := a.As4()
	if b[0] != 127 || b[1] != 0 || b[2] != 0 || b[3] < 2 || b[3] >= 2+numCodes {
		return 0
	}
	return 1 << (b[3] - 2)
}
