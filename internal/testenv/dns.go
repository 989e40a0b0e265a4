package testenv

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

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

// WithResolver returns the command line args with nameserver (an IPv4
// address serving DNS on port 53) as the system resolver: a resolv.conf
// written to dir is bind-mounted over /etc/resolv.conf in a mount
// namespace of the command's own (BindMounted), which only it sees. The
// command must run as root.
func WithResolver(t testing.TB, dir, nameserver string, args ...string) []string {
	t.Helper()
	return BindMounted(t, map[string]string{"/etc/resolv.conf": ResolvConf(t, dir, nameserver)}, args...)
}

// ResolvConf writes dir/resolv.conf pointing at nameserver and returns its path.
func ResolvConf(t testing.TB, dir, nameserver string) string {
	t.Helper()
	resolv := filepath.Join(dir, "resolv.conf")
	if err := os.WriteFile(resolv, []byte("nameserver "+nameserver+"\noptions timeout:2 attempts:2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return resolv
}
