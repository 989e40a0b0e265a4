package main

import (
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/blowback-dnsbl/blowback/dnsd"
)

// DNSConfig is the [dns_server] table.
type DNSConfig struct {
	NS            []string `toml:"ns"`
	Hostmaster    string   `toml:"hostmaster"`
	TTL           Duration `toml:"ttl"`
	NegTTL        Duration `toml:"negative_ttl"`
	UDPSize       int      `toml:"udp_size"`        // EDNS payload size advertised; default 1232
	UDPSockets    int      `toml:"udp_sockets"`     // SO_REUSEPORT sockets; 0: one per CPU
	UDPRcvBufKB   int      `toml:"udp_rcvbuf_kb"`   // each UDP socket's SO_RCVBUF, KiB; 0: 4096
	TCPIdle       Duration `toml:"tcp_idle"`        // default 10s
	MaxTCPQueries int      `toml:"max_tcp_queries"` // per connection; default 128
	MaxTCPConns   int      `toml:"max_tcp_conns"`   // open at once; default 256
	// Per-client TCP limits (issue 13): connections per client network,
	// its size, slots kept for allow_transfer addresses, lifetime.
	MaxTCPConnsPerClient int         `toml:"max_tcp_conns_per_client"` // default 16
	TCPClientPrefix4     int         `toml:"tcp_client_prefix4"`       // default 24
	TCPClientPrefix6     int         `toml:"tcp_client_prefix6"`       // default 64
	TCPTransferReserve   int         `toml:"tcp_transfer_reserve"`     // default 8; -1: none
	TCPLifetime          Duration    `toml:"tcp_lifetime"`             // default 2m
	Cookies              bool        `toml:"cookies"`                  // DNS cookies (RFC 7873/9018)
	CookieSecret         string      `toml:"cookie_secret"`            // 32 hex digits, shared by anycast siblings; empty: random
	Allow                []string    `toml:"allow"`                    // ACL: only these CIDRs may query (empty: all)
	Deny                 []string    `toml:"deny"`                     // ACL: these CIDRs get REFUSED
	RRL                  RRLTable    `toml:"rrl"`
	Policy               PolicyTable `toml:"policy"` // refused-query policy
	Keys                 KeysTable   `toml:"keys"`   // keyed access
}

// PolicyTable is [dns_server.policy]: the refused-query policy (off unless
// refuse, refuse_file or budget is set). docs/dns.md "Refused queries".
type PolicyTable struct {
	Refuse     []string `toml:"refuse"`      // resolver networks (CIDRs) whose queries are refused
	RefuseFile string   `toml:"refuse_file"` // more of them, one CIDR or address a line, # comments
	Budget     int      `toml:"budget"`      // queries per client network per window; 0: none
	Window     Duration `toml:"window"`      // default 24h
	IPv4Prefix int      `toml:"ipv4_prefix"` // budget network size; default 32
	IPv6Prefix int      `toml:"ipv6_prefix"` // default 64
	Exempt     []string `toml:"exempt"`      // never refused nor counted
	Answer     string   `toml:"answer"`      // "refused" (default) or "code" (127.255.255.253-255)
}

// KeysTable is [dns_server.keys]: keyed access <ip>.<key>.<zone>.
type KeysTable struct {
	Enabled bool     `toml:"enabled"` // accept keyed names; keys managed at /api/v1/admin/dns/keys
	Require bool     `toml:"require"` // answer only keyed names with a valid key
	File    string   `toml:"file"`    // key file; default <data>/dns-keys.json
	Window  Duration `toml:"window"`  // key budget window; default 24h
}

// RRLTable is [dns_server.rrl]: response-rate limiting per client network.
type RRLTable struct {
	Rate       int      `toml:"rate"`        // responses/s per network; 0 turns RRL off
	Burst      int      `toml:"burst"`       // default: rate
	Slip       *int     `toml:"slip"`        // every slip-th limited answer goes out truncated; 0 drops all; default 2
	IPv4Prefix int      `toml:"ipv4_prefix"` // default 24
	IPv6Prefix int      `toml:"ipv6_prefix"` // default 56
	Exempt     []string `toml:"exempt"`      // CIDRs never limited; default loopback
}

func defaultDNSConfig() DNSConfig {
	return DNSConfig{TTL: Duration(300 * time.Second), NegTTL: Duration(60 * time.Second),
		// A DNSBL's clients are a few busy resolvers: a generous per-/24 rate.
		RRL:    RRLTable{Rate: 20000, Exempt: []string{"127.0.0.0/8", "::1/128"}},
		Policy: PolicyTable{Answer: "refused"}}
}

func (d *DNSConfig) validate() error {
	_, err := d.dnsd()
	return err
}

// dnsd turns the table into the server's configuration.
func (d *DNSConfig) dnsd() (dnsd.Config, error) {
	c := dnsd.Config{NS: d.NS, Hostmaster: d.Hostmaster, TTL: time.Duration(d.TTL), NegTTL: time.Duration(d.NegTTL),
		UDPSockets: d.UDPSockets, UDPReceiveBuffer: d.UDPRcvBufKB << 10, TCPIdle: time.Duration(d.TCPIdle), MaxTCPQueries: d.MaxTCPQueries, MaxTCPConns: d.MaxTCPConns,
		Cookies: d.Cookies, MaxTCPConnsPerClient: d.MaxTCPConnsPerClient, TCPClientPrefix4: d.TCPClientPrefix4,
		TCPClientPrefix6: d.TCPClientPrefix6, TCPTransferReserve: d.TCPTransferReserve, TCPLifetime: time.Duration(d.TCPLifetime)}
	var errs []error
	if d.UDPRcvBufKB < 0 || d.UDPRcvBufKB > 1<<20 {
		errs = append(errs, fmt.Errorf("dns_server udp_rcvbuf_kb %d: want 0 (4096) or 1..1048576", d.UDPRcvBufKB))
	}
	if d.UDPSize != 0 {
		if d.UDPSize < 512 || d.UDPSize > 4096 {
			errs = append(errs, fmt.Errorf("dns_server udp_size %d: want 512..4096", d.UDPSize))
		}
		c.UDPSize = uint16(d.UDPSize)
	}
	if d.CookieSecret != "" {
		b, err := hex.DecodeString(d.CookieSecret)
		if err != nil || len(b) != 16 {
			errs = append(errs, errors.New("dns_server cookie_secret: want 32 hex digits"))
		}
		c.CookieSecret = b
	}
	var err error
	if c.ACL.Allow, err = prefixes("dns_server allow", d.Allow); err != nil {
		errs = append(errs, err)
	}
	if c.ACL.Deny, err = prefixes("dns_server deny", d.Deny); err != nil {
		errs = append(errs, err)
	}
	r := d.RRL
	c.RRL = dnsd.RRLConfig{Rate: r.Rate, Burst: r.Burst, IPv4PrefixLen: r.IPv4Prefix, IPv6PrefixLen: r.IPv6Prefix}
	if r.Slip != nil {
		c.RRL.Slip, c.RRL.SlipSet = *r.Slip, true
	}
	if c.RRL.Exempt, err = prefixes("dns_server rrl exempt", r.Exempt); err != nil {
		errs = append(errs, err)
	}
	if c.Policy, err = d.Policy.policy(); err != nil {
		errs = append(errs, err)
	}
	if d.Keys.Require && !d.Keys.Enabled {
		errs = append(errs, errors.New("dns_server keys: require needs enabled"))
	}
	if len(errs) == 0 {
		if err := c.Validate(); err != nil {
			errs = append(errs, err)
		}
	}
	return c, errors.Join(errs...)
}

func (p *PolicyTable) policy() (dnsd.Policy, error) {
	out := dnsd.Policy{Budget: p.Budget, Window: time.Duration(p.Window), IPv4PrefixLen: p.IPv4Prefix, IPv6PrefixLen: p.IPv6Prefix}
	var errs []error
	var err error
	if out.Refuse, err = prefixes("dns_server policy refuse", p.Refuse); err != nil {
		errs = append(errs, err)
	}
	if p.RefuseFile != "" {
		f, err := os.Open(p.RefuseFile)
		if err != nil {
			errs = append(errs, fmt.Errorf("dns_server policy refuse_file: %v", err))
		} else {
			more, err := dnsd.ParsePrefixList(f)
			f.Close()
			if err != nil {
				errs = append(errs, fmt.Errorf("dns_server policy refuse_file %s: %v", p.RefuseFile, err))
			}
			out.Refuse = append(out.Refuse, more...)
		}
	}
	if out.Exempt, err = prefixes("dns_server policy exempt", p.Exempt); err != nil {
		errs = append(errs, err)
	}
	switch p.Answer {
	case "", "refused":
		out.Answer = dnsd.AnswerRefused
	case "code":
		out.Answer = dnsd.AnswerCode
	default:
		errs = append(errs, fmt.Errorf("dns_server policy answer %q: want refused or code", p.Answer))
	}
	return out, errors.Join(errs...)
}

// dnsServerConfig is the DNS server's configuration with its key store
// (opened from the key file when keyed access is on).
func (c *Config) dnsServerConfig() (dnsd.Config, error) {
	d, err := c.DNSCfg.dnsd()
	if err != nil {
		return d, err
	}
	// The process is ours: let the DNS server keep a P free beside its
	// blocking UDP readers (dnsd.Config.RaiseGOMAXPROCS).
	d.RaiseGOMAXPROCS = true
	if k := c.DNSCfg.Keys; k.Enabled {
		path := k.File
		if path == "" {
			path = filepath.Join(c.Data, "dns-keys.json")
		}
		if d.Keys, err = dnsd.NewKeys(path, time.Duration(k.Window)); err != nil {
			return d, err
		}
		d.RequireKey = k.Require
	}
	return d, nil
}

// dnsConfig is the DNS server's configuration (validated with the config).
func (c *Config) dnsConfig() dnsd.Config {
	d, _ := c.DNSCfg.dnsd()
	return d
}
