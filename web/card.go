package web

import (
	"fmt"
	"math"
	"net/http"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/blowback-dnsbl/blowback/deploy/consumers"
	"github.com/blowback-dnsbl/blowback/scoring"
	"github.com/blowback-dnsbl/blowback/store"
	"github.com/blowback-dnsbl/blowback/zones"
)

// The list's card: what a mail admin reads before using the list
// (GET /zone, GET /api/v1/zone; CONTRACT.md "Additions").

// CardConfig is what the card says beyond the zone and the policy, which
// it reads from the running configuration.
type CardConfig struct {
	// Rsync is the rsync URL of the zone exports (deploy/rsyncd.conf);
	// empty: not offered.
	Rsync string
	// AXFR names where mirrors transfer the zone (AXFR/IXFR) from and who
	// may; empty: not offered.
	AXFR string
	// Terms are the usage terms in plain words; empty: a default sentence.
	Terms string
	// MirrorAbove is the query volume per day above which users should
	// mirror the zone instead of querying it; 0: not stated.
	MirrorAbove int
	// TTL is the TTL of the DNS answers.
	TTL time.Duration
}

// Card is the list's card (GET /api/v1/zone).
type Card struct {
	Zone        string        `json:"zone"`
	Title       string        `json:"title"`
	Serial      uint32        `json:"serial"`
	LastChange  *time.Time    `json:"last_change"`
	Entries     int           `json:"entries"`
	TTLSeconds  int           `json:"ttl_seconds,omitempty"`
	ReturnCodes []CardCode    `json:"return_codes"`
	NotListed   string        `json:"not_listed"`
	TestPoints  []TestPoint   `json:"test_points"`
	Policy      CardPolicy    `json:"policy"`
	Usage       CardUsage     `json:"usage"`
	Mirroring   CardMirroring `json:"mirroring"`
	Contact     string        `json:"contact"`
	Lookup      string        `json:"lookup"`    // lookup page URL template, $ for the address
	SelfTest    bool          `json:"self_test"` // listed operators can run the self-test
	API         []string      `json:"api"`
}

// CardCode is one return code and its meaning.
type CardCode struct {
	Address string `json:"address"`
	Name    string `json:"name"`
	Meaning string `json:"meaning"`
}

// TestPoint is an RFC 5782 §5 test address and the name to query.
type TestPoint struct {
	Address string   `json:"address"`
	Family  string   `json:"family"` // ipv4 or ipv6
	Query   string   `json:"query"`
	Listed  bool     `json:"listed"`
	Answer  []string `json:"answer"` // the A records, or ["NXDOMAIN"]
}

// CardPolicy is the listing and expiry policy in plain words, with the
// settings it comes from (by their TOML names).
type CardPolicy struct {
	Summary  []string          `json:"summary"`
	Settings map[string]string `json:"settings"`
}

// CardUsage is how to use the list safely.
type CardUsage struct {
	SafeMode  string        `json:"safe_mode"`
	Terms     string        `json:"terms"`
	Consumers []CardSnippet `json:"consumers"`
}

// CardSnippet is a consumer configuration (from deploy/consumers).
type CardSnippet struct {
	File  string `json:"file"`
	Title string `json:"title"`
	Text  string `json:"text"`
}

// CardMirroring says how to mirror the zone.
type CardMirroring struct {
	Rsync   string   `json:"rsync,omitempty"`
	AXFR    string   `json:"axfr,omitempty"`
	Formats []string `json:"formats"`
	Note    string   `json:"note"`
}

const safeMode = "Query the list only for mail whose envelope sender is null (<>) or postmaster@: bounces and sender callouts. " +
	"A listed server may also send wanted mail; do not reject all its mail."

const defaultTerms = "Free to query for any mail system. Heavy users (many queries a day) mirror the zone instead of querying it. " +
	"No warranty: the list says only that backscatter from an address reached our traps."

func (s *Server) card() Card {
	zone := s.zone()
	c := Card{Zone: zone, Title: s.cfg.Title, Contact: s.cfg.Contact,
		NotListed: "NXDOMAIN, with the zone's SOA in the authority section",
		Lookup:    s.cfg.PublicURL + "/lookup?ip=$",
		SelfTest:  s.cfg.SelfTest != nil,
		API:       []string{"GET /api/v1/lookup/{ip}", "GET /api/v1/history/{ip}", "GET /api/v1/zone", "POST /api/v1/delist"}}
	if c.SelfTest {
		c.API = append(c.API, "POST /api/v1/selftest", "GET /api/v1/selftest/{id}")
	}
	if snap := s.cur.Load(); snap != nil {
		c.Serial, c.Entries, c.LastChange = snap.Serial, snap.Len(), tptr(snap.Built)
	}
	if s.cfg.Card.TTL > 0 {
		c.TTLSeconds = int(s.cfg.Card.TTL / time.Second)
	}
	for _, v := range allCodes() {
		c.ReturnCodes = append(c.ReturnCodes, CardCode{Address: v.Addr, Name: v.Name, Meaning: v.Meaning + " sent to trap addresses"})
	}
	var all []string
	for _, a := range zones.CodeAll.Addrs() {
		all = append(all, a.String())
	}
	// RFC 5782 §5: 127.0.0.2 (and ::FFFF:7F00:2) always listed, 127.0.0.1 (::FFFF:7F00:1) never.
	for _, tp := range []struct {
		a      netip.Addr
		listed bool
	}{
		{netip.MustParseAddr("127.0.0.2"), true}, {netip.MustParseAddr("127.0.0.1"), false},
		{netip.MustParseAddr("::ffff:7f00:2"), true}, {netip.MustParseAddr("::ffff:7f00:1"), false},
	} {
		p := TestPoint{Address: strings.ToUpper(tp.a.String()), Family: "ipv4", Query: queryName(tp.a, zone), Listed: tp.listed,
			Answer: []string{"NXDOMAIN"}}
		if tp.a.Is4In6() {
			b := tp.a.As16()
			p.Family, p.Query = "ipv6", nibbles(tp.a, zone)
			p.Address = fmt.Sprintf("::FFFF:%X:%X", uint16(b[12])<<8|uint16(b[13]), uint16(b[14])<<8|uint16(b[15]))
		}
		if tp.listed {
			p.Answer = all
		}
		c.TestPoints = append(c.TestPoints, p)
	}
	c.Policy = policyCard(s.eng.Policy())
	terms := s.cfg.Card.Terms
	if terms == "" {
		terms = defaultTerms
	}
	if s.cfg.Card.MirrorAbove > 0 {
		terms += fmt.Sprintf(" Please mirror the zone if you send more than %s queries a day.", thousands(s.cfg.Card.MirrorAbove))
	}
	c.Usage = CardUsage{SafeMode: safeMode, Terms: terms, Consumers: []CardSnippet{}}
	for _, sn := range consumers.Snippets(zone) {
		c.Usage.Consumers = append(c.Usage.Consumers, CardSnippet{File: "deploy/consumers/" + sn.File, Title: sn.Title, Text: sn.Text})
	}
	c.Mirroring = CardMirroring{Rsync: s.cfg.Card.Rsync, AXFR: s.cfg.Card.AXFR,
		Formats: []string{"rbldnsd (" + zone + ".rbldnsd)", "RFC 1035 master file (" + zone + ".zone)"},
		Note:    "Both files are replaced atomically at most once a second while the listing changes; the SOA serial only grows."}
	if c.Mirroring.Rsync == "" && c.Mirroring.AXFR == "" {
		c.Mirroring.Note = "Mirroring is not offered publicly here; ask the contact."
	}
	return c
}

// nibbles is the RFC 5782 §2.4 query name of an IPv6 address, also for
// an IPv4-mapped one (queryName would query it as IPv4).
func nibbles(a netip.Addr, zone string) string {
	b := a.As16()
	const hex = "0123456789abcdef"
	var sb strings.Builder
	for i := 15; i >= 0; i-- {
		if i < 15 {
			sb.WriteByte('.')
		}
		sb.WriteByte(hex[b[i]&0xf])
		sb.WriteByte('.')
		sb.WriteByte(hex[b[i]>>4])
	}
	if zone != "" {
		sb.WriteString("." + zone)
	}
	return sb.String()
}

func thousands(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// days says d in days (or hours under two days).
func days(d time.Duration) string {
	switch {
	case d <= 0:
		return "never"
	case d < 48*time.Hour:
		return strconv.FormatFloat(d.Hours(), 'g', 3, 64) + " hours"
	}
	return strconv.FormatFloat(d.Hours()/24, 'g', 3, 64) + " days"
}

func num(v float64) string { return strconv.FormatFloat(v, 'g', 4, 64) }

// policyCard says the policy in plain words, with its current figures.
func policyCard(p *scoring.Policy) CardPolicy {
	out := CardPolicy{Settings: p.Describe()}
	say := func(f string, a ...any) { out.Summary = append(out.Summary, fmt.Sprintf(f, a...)) }
	var counted, ignored []string
	minW := math.Inf(1)
	for _, k := range store.Kinds() {
		if w := p.Weight(k); w > 0 {
			counted = append(counted, fmt.Sprintf("%s (%s)", k, num(w)))
			minW = min(minW, w)
		} else {
			ignored = append(ignored, k.String())
		}
	}
	sort.Strings(ignored)
	say("Counted: %s. Not counted: %s.", strings.Join(counted, ", "), strings.Join(ignored, ", "))
	if minW >= p.ListThreshold {
		say("One message of any counted kind to a trap address lists the sending address (list threshold %s).", num(p.ListThreshold))
	} else {
		say("An address is listed when its score reaches %s; each message adds its kind's weight.", num(p.ListThreshold))
	}
	say("Repeats count less: another message to the same trap address adds %s of its weight, a new address in a trap domain already hit adds %s.",
		pct(p.SameAddress), pct(p.SameDomain))
	if p.HalfLife > 0 {
		say("The score halves every %s.", days(p.HalfLife))
	}
	exp := p.MaxAge
	if p.HalfLife > 0 && p.DelistThreshold > 0 && minW > p.DelistThreshold {
		if t := time.Duration(float64(p.HalfLife) * math.Log2(minW/p.DelistThreshold)); exp == 0 || t < exp {
			exp = t
		}
	}
	say("A listing ends by itself when the score falls below %s or %s after the last message, whichever comes first: one message alone is listed for about %s.",
		num(p.DelistThreshold), days(p.MaxAge), days(exp))
	if p.RepeatFactor > 1 {
		say("An address listed again within %s of an earlier listing stays listed %s times as long per earlier listing, at most %s times.",
			days(p.RepeatMemory), num(p.RepeatFactor), num(p.RepeatMax))
	}
	say("IPv4 addresses are listed one by one, IPv6 addresses by /64.")
	if p.Escalate.Enabled {
		say("When %d or more addresses of one IPv4 /%d (IPv6 /%d) are listed, the whole network is listed.", p.Escalate.Min, p.Escalate.Bits4, p.Escalate.Bits6)
	} else {
		say("Networks are never listed as a whole.")
	}
	if len(p.Allow) > 0 {
		say("%d allowlisted networks are never listed.", len(p.Allow))
	}
	say("Removal is free, self-service and immediate on the lookup page; evidence from before the removal no longer counts, new backscatter lists the address again.")
	return out
}

func pct(f float64) string { return strconv.FormatFloat(f*100, 'g', 3, 64) + "%" }

func (s *Server) apiZone(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.card())
}

type cardView struct {
	C                 Card
	LastChange, ISO   string
	SelfTestAvailable bool
}

func (s *Server) pageZone(w http.ResponseWriter, r *http.Request) {
	v := &cardView{C: s.card(), SelfTestAvailable: s.cfg.SelfTest != nil}
	v.LastChange, v.ISO = minute(v.C.LastChange)
	s.render(w, http.StatusOK, "card", pageData{Title: "About the list", Active: "zone", Card: v})
}
