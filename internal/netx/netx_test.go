package netx

import (
	"errors"
	"net/netip"
	"testing"
)

func TestParsePrefix(t *testing.T) {
	good := map[string]string{
		"192.0.2.1":             "192.0.2.1/32",
		"192.0.2.0/24":          "192.0.2.0/24",
		"192.0.2.7/24":          "192.0.2.0/24", // masked
		" 192.0.2.0/24\t":       "192.0.2.0/24", // white space around
		"0.0.0.0/0":             "0.0.0.0/0",
		"2001:db8::1":           "2001:db8::1/128",
		"2001:db8::/32":         "2001:db8::/32",
		"2001:db8:1:2::5/64":    "2001:db8:1:2::/64",
		"::/0":                  "::/0",
		"::ffff:192.0.2.1":      "192.0.2.1/32", // mapped address: its IPv4 host
		"::ffff:192.0.2.1/128":  "192.0.2.1/32",
		"::ffff:192.0.2.9/120":  "192.0.2.0/24",
		"::ffff:0.0.0.0/96":     "0.0.0.0/0",
		"fe80::1%eth0":          "fe80::1/128", // zone dropped
		"::ffff:192.0.2.1%eth0": "192.0.2.1/32",
	}
	for in, want := range good {
		p, err := ParsePrefix(in)
		if err != nil || p.String() != want {
			t.Errorf("ParsePrefix(%q) = %v, %v; want %s", in, p, err, want)
		}
	}
	for _, in := range []string{"", " ", "x", "192.0.2", "192.0.2.1/33", "2001:db8::/129", "192.0.2.0/",
		"/24", "192.0.2.0/-1", "::ffff:192.0.2.0/95", "::ffff:0.0.0.0/0", "fe80::1%eth0/64", "192.0.2.1 /24",
		"192.0.2.1\x00"} {
		if p, err := ParsePrefix(in); err == nil || !errors.Is(err, ErrPrefix) || p != (netip.Prefix{}) {
			t.Errorf("ParsePrefix(%q) = %v, %v; want ErrPrefix and no prefix", in, p, err)
		}
	}
}

// FuzzParsePrefix: what ParsePrefix accepts is a valid, masked, unmapped
// prefix that parses to itself again; what it refuses wraps ErrPrefix.
func FuzzParsePrefix(f *testing.F) {
	for _, s := range []string{"192.0.2.1", "192.0.2.0/24", "192.0.2.7/24", "2001:db8::/32", "::ffff:1.2.3.4/128",
		"::ffff:1.2.3.4/95", "fe80::1%eth0", "1.2.3.4/33", "", " 10.0.0.0/8 "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePrefix(s)
		if err != nil {
			if !errors.Is(err, ErrPrefix) {
				t.Fatalf("ParsePrefix(%q): error %v does not wrap ErrPrefix", s, err)
			}
			return
		}
		if !p.IsValid() || p != p.Masked() || p.Addr().Is4In6() || p.Addr().Zone() != "" {
			t.Fatalf("ParsePrefix(%q) = %v", s, p)
		}
		if q, err := ParsePrefix(p.String()); err != nil || q != p {
			t.Fatalf("ParsePrefix(%q) = %v, but %v parses to %v, %v", s, p, p, q, err)
		}
	})
}
