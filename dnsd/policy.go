package dnsd

import (
	"bufio"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"

	"github.com/blowback-dnsbl/blowback/internal/netx"
	"github.com/blowback-dnsbl/blowback/zones"
)

// Refused-query policy (issue 17): large lists refuse queries that come
// through public resolvers (the list cannot tell their users apart, and
// their volume is the list's cost) and queries over a volume quota. How the
// list says no matters: an MTA that reads an error code as "listed" loses
// mail. Policy offers both ways, off by default:
//
//   - AnswerRefused: rcode REFUSED (RFC 1035 §4.1.1). Every DNSBL client
//     treats it as "no answer": nothing is listed, nothing is lost.
//   - AnswerCode: NOERROR with an A record in 127.255.255.0/24 (the range
//     large lists use for this, outside the 127.0.0.x listing codes):
//     127.255.255.254 public resolver, 127.255.255.255 over quota,
//     127.255.255.253 keyed zone: key missing, unknown or over its budget.
//     A TXT query gets the reason as text. Consumers must match listing
//     codes exactly (deploy/consumers does: 127.0.0.[2..5]); an operator
//     sees the code in their logs, which REFUSED does not give.
//
// Either way, when the query has EDNS, the answer carries an RFC 8914
// Extended DNS Error, INFO-CODE 18 (Prohibited), whose EXTRA-TEXT names
// the reason and the querying address as the server saw it (so an operator
// learns which resolver of theirs reaches the list).

// Refusal is how refused queries are answered.
type Refusal uint8

const (
	// AnswerRefused answers REFUSED (the default).
	AnswerRefused Refusal = iota
	// AnswerCode answers with a 127.255.255.x code (see the package doc of policy.go).
	AnswerCode
)

// Refusal codes (AnswerCode).
var (
	CodeBadKey         = netip.AddrFrom4([4]byte{127, 255, 255, 253})
	CodePublicResolver = netip.AddrFrom4([4]byte{127, 255, 255, 254})
	CodeOverQuota      = netip.AddrFrom4([4]byte{127, 255, 255, 255})
)

// EDE INFO-CODE 18, Prohibited (RFC 8914 §4.19).
const edeProhibited = dns.ExtendedErrorCodeProhibited

// Policy is the refused-query policy; off unless Refuse or Budget is set.
type Policy struct {
	// Refuse lists resolver networks (public resolvers) whose queries are
	// refused. See ParsePrefixList for the list format.
	Refuse []netip.Prefix
	// Budget is how many queries one client network may send per Window;
	// 0: no budget. Over it, queries are refused until the window ends.
	Budget int
	// Window is the budget's period; default 24h.
	Window time.Duration
	// IPv4PrefixLen and IPv6PrefixLen size a client network for the
	// budget; default 32 and 64.
	IPv4PrefixLen, IPv6PrefixLen int
	// Exempt networks are never refused nor counted.
	Exempt []netip.Prefix
	// Answer says how to refuse.
	Answer Refusal
	// MaxClients bounds the budget table; default 1M networks. When it is
	// full, new networks are not counted (and not refused) until the next
	// window.
	MaxClients int
}

// On reports whether the policy refuses anything.
func (p Policy) On() bool { return len(p.Refuse) > 0 || p.Budget > 0 }

func (p *Policy) defaults() {
	if p.Window <= 0 {
		p.Window = 24 * time.Hour
	}
	if p.IPv4PrefixLen == 0 {
		p.IPv4PrefixLen = 32
	}
	if p.IPv6PrefixLen == 0 {
		p.IPv6PrefixLen = 64
	}
	if p.MaxClients <= 0 {
		p.MaxClients = 1 << 20
	}
}

func (p Policy) validate() error {
	if p.Budget < 0 || p.IPv4PrefixLen < 0 || p.IPv4PrefixLen > 32 || p.IPv6PrefixLen < 0 || p.IPv6PrefixLen > 128 {
		return fmt.Errorf("%w: policy: negative budget or prefix length out of range", ErrConfig)
	}
	if p.Answer > AnswerCode {
		return fmt.Errorf("%w: policy: unknown answer %d", ErrConfig, p.Answer)
	}
	return nil
}

// verdict is what the policy says about one query.
type verdict uint8

const (
	allow verdict = iota
	denyResolver
	denyQuota
	denyKeyMissing
	denyKeyUnknown
	denyKeyQuota
)

// verdictLabels are the reason label values of blowback_dns_refused_total.
var verdictLabels = [...]string{"", "resolver", "quota", "key_missing", "key_unknown", "key_quota"}

func (v verdict) code() netip.Addr {
	switch v {
	case denyResolver:
		return CodePublicResolver
	case denyQuota:
		return CodeOverQuota
	}
	return CodeBadKey
}

// text is the EXTRA-TEXT and TXT of a refusal; src as the server saw it.
func (v verdict) text(src netip.Addr) string {
	a := "unknown"
	if src.IsValid() {
		a = src.String()
	}
	switch v {
	case denyResolver:
		return "queries through public resolvers are refused; query from your own resolver (seen from " + a + ")"
	case denyQuota:
		return "query budget exceeded (seen from " + a + ")"
	case denyKeyMissing:
		return "this zone needs a key: <reversed-ip>.<key>.<zone> (seen from " + a + ")"
	case denyKeyUnknown:
		return "unknown key (seen from " + a + ")"
	case denyKeyQuota:
		return "key over its query budget (seen from " + a + ")"
	}
	return ""
}

// policyState is the running policy: the budget table in shards.
type policyState struct {
	cfg    Policy
	shards [rrlShards]budgetShard
}

type budgetShard struct {
	mu  sync.Mutex
	win int64 // the window the counts are for
	m   map[rrlKey]uint32
	_   [40]byte
}

func newPolicy(p Policy) *policyState {
	p.defaults()
	ps := &policyState{cfg: p}
	for i := range ps.shards {
		ps.shards[i].m = map[rrlKey]uint32{}
	}
	return ps
}

func (ps *policyState) key(a netip.Addr) rrlKey {
	p4, p6 := ps.cfg.IPv4PrefixLen, ps.cfg.IPv6PrefixLen
	if a.Is4() {
		b := a.As4()
		v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
		if p4 < 32 {
			v &^= 1<<(32-p4) - 1
		}
		return rrlKey{false, uint64(v)}
	}
	b := a.As16()
	var v uint64
	for i := 0; i < 8; i++ {
		v = v<<8 | uint64(b[i])
	}
	if p6 < 64 {
		v &^= 1<<(64-p6) - 1
	}
	return rrlKey{true, v}
}

// check counts a query from src and says whether to answer it.
func (ps *policyState) check(src netip.Addr, now time.Time) verdict {
	if !src.IsValid() {
		return allow
	}
	src = src.Unmap()
	for _, p := range ps.cfg.Exempt {
		if p.Contains(src) {
			return allow
		}
	}
	for _, p := range ps.cfg.Refuse {
		if p.Contains(src) {
			return denyResolver
		}
	}
	if ps.cfg.Budget <= 0 {
		return allow
	}
	k := ps.key(src)
	sh := &ps.shards[(k.k*0x9e3779b97f4a7c15)>>58]
	win := now.UnixNano() / int64(ps.cfg.Window)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.win != win {
		sh.win = win
		clear(sh.m) // a new window: every budget is full again
	}
	n, ok := sh.m[k]
	if !ok && len(sh.m) >= ps.cfg.MaxClients/rrlShards+1 {
		return allow // table full: fail open
	}
	if int(n) >= ps.cfg.Budget {
		return denyQuota
	}
	sh.m[k] = n + 1
	return allow
}

// refuse turns m (a reply to a query for q) into the refusal for v.
func (s *Server) refuse(m *dns.Msg, q dns.Question, v verdict, src netip.Addr, snap *zones.Snapshot) {
	s.metrics.refused.WithLabelValues(verdictLabels[v]).Inc()
	text := v.text(src)
	if opt := m.IsEdns0(); opt != nil {
		// RFC 8914 §2: INFO-CODE and EXTRA-TEXT (UTF-8, here ASCII).
		opt.Option = append(opt.Option, &dns.EDNS0_EDE{InfoCode: edeProhibited, ExtraText: text})
	}
	if s.cfg.Policy.Answer != AnswerCode {
		m.Rcode = dns.RcodeRefused
		m.Authoritative = false
		return
	}
	ax := s.apexOf(snap)
	// A short TTL: a refusal should not outlive its cause in caches.
	ttl := min(ax.negTTL, 60)
	hdr := dns.RR_Header{Name: q.Name, Class: dns.ClassINET, Ttl: ttl}
	switch q.Qtype {
	case dns.TypeA, dns.TypeANY:
		hdr.Rrtype = dns.TypeA
		m.Answer = append(m.Answer, &dns.A{Hdr: hdr, A: v.code().AsSlice()})
	case dns.TypeTXT:
		hdr.Rrtype = dns.TypeTXT
		m.Answer = append(m.Answer, &dns.TXT{Hdr: hdr, Txt: splitTXT(text)})
	default:
		m.Ns = append(m.Ns, ax.negSOA()) // NODATA
	}
}

// ParsePrefixList reads a list of networks, the format of a resolver list
// file: one address or CIDR prefix per line (IPv4 or IPv6, e.g. 8.8.8.0/24,
// 2001:4860::/32, 9.9.9.9), blank lines and text after "#" ignored. At
// most maxListLines lines are read.
func ParsePrefixList(r io.Reader) ([]netip.Prefix, error) {
	var out []netip.Prefix
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		if n > maxListLines {
			return nil, fmt.Errorf("%w: list longer than %d lines", ErrConfig, maxListLines)
		}
		line := sc.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		p, err := netx.ParsePrefix(line)
		if err != nil {
			return nil, fmt.Errorf("%w: line %d: %v", ErrConfig, n, err)
		}
		out = append(out, p)
	}
	return out, sc.Err()
}

const maxListLines = 1 << 20
