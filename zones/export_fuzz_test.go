package zones

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// rbldnsdExpand is rbldnsd's TXT substitution for templates RbldnsdTXT
// accepts (rbldnsd(8): "$" the address, "$$" a "$").
func rbldnsdExpand(tmpl, addr string) string {
	var b strings.Builder
	for i := 0; i < len(tmpl); i++ {
		switch {
		case tmpl[i] != '$':
			b.WriteByte(tmpl[i])
		case i+1 < len(tmpl) && tmpl[i+1] == '$':
			b.WriteByte('$')
			i++
		default:
			b.WriteString(addr)
		}
	}
	return b.String()
}

func FuzzTXTTemplate(f *testing.F) {
	for _, s := range []string{"listed $", "$$5", "a $5", "$=", "$", "", " x", "é $ \"q\" \\"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, tmpl string) {
		got := ExpandTXT(tmpl, "192.0.2.1")
		if _, err := RbldnsdTXT(tmpl); err == nil {
			if want := rbldnsdExpand(tmpl, "192.0.2.1"); got != want {
				t.Fatalf("%q: blowback %q, rbldnsd %q", tmpl, got, want)
			}
		}
		// Whatever the bytes, the BIND export quotes them so that the
		// master file reads back the same TXT data.
		s := Build(Info{Zone: "bl.example", Serial: 1, TXT: tmpl}, []Entry{{Prefix: netip.MustParsePrefix("192.0.2.1/32"), Codes: CodeBounce}})
		var buf bytes.Buffer
		if err := WriteBIND(&buf, s, SOA{NS: []string{"ns.example.net"}}); err != nil {
			t.Fatal(err)
		}
		if tmpl == "" {
			return
		}
		zp := dns.NewZoneParser(&buf, "bl.example.", "")
		for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
			if rr.Header().Name != "1.2.0.192.bl.example." || rr.Header().Rrtype != dns.TypeTXT {
				continue
			}
			wire := make([]byte, 70000)
			off, err := dns.PackRR(rr, wire, 0, nil, false)
			if err != nil {
				t.Fatal(err)
			}
			var data []byte
			rd := wire[off-int(rr.Header().Rdlength) : off]
			for len(rd) > 0 {
				n := int(rd[0])
				data = append(data, rd[1:1+n]...)
				rd = rd[1+n:]
			}
			if string(data) != got {
				t.Fatalf("%q: zone file TXT reads back %q, want %q", tmpl, data, got)
			}
			return
		}
		t.Fatalf("%q: no TXT in\n%s (%v)", tmpl, buf.String(), zp.Err())
	})
}

func FuzzReadHeader(f *testing.F) {
	f.Add("# blowback zone bl.example serial 5 entries 10\n")
	f.Add("; blowback zone z serial 4294967295 entries 0\n")
	f.Add("garbage")
	f.Add("# blowback zone z serial 1 entries -5\n")
	f.Fuzz(func(t *testing.T, s string) {
		h, err := ReadHeader(strings.NewReader(s))
		if err == nil && h.Entries < 0 {
			t.Fatalf("negative entries from %q", s)
		}
	})
}
