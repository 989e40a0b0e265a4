package testenv

import (
	"fmt"
	"slices"
	"strings"

	"github.com/miekg/dns"
)

// Answer is what DNS responses for one name say to a DNSBL client: the
// rcode (of the last response), the A records and the TXT strings (each
// record's character-strings joined), both sorted.
type Answer struct {
	Rcode  string
	A, TXT []string
}

// AnswerOf reads rs, the responses to one name's queries (A, TXT).
func AnswerOf(rs ...*dns.Msg) Answer {
	var x Answer
	for _, r := range rs {
		x.Rcode = dns.RcodeToString[r.Rcode]
		for _, rr := range r.Answer {
			switch v := rr.(type) {
			case *dns.A:
				x.A = append(x.A, v.A.String())
			case *dns.TXT:
				x.TXT = append(x.TXT, strings.Join(v.Txt, ""))
			}
		}
	}
	slices.Sort(x.A)
	slices.Sort(x.TXT)
	return x
}

func (x Answer) String() string {
	return fmt.Sprintf("%s A=%v TXT=%q", x.Rcode, x.A, x.TXT)
}
