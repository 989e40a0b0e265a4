// Command genzone writes the benchmark zone for bench/dns/run.sh: N random
// listed IPv4 addresses (and a few IPv6 /64s) in the rbldnsd format that
// blowback exports (zones.WriteRbldnsd), and a dnsperf query file, half
// listed and half unlisted names, shuffled.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/netip"
	"os"

	"github.com/blowback-dnsbl/blowback/zones"
)

func main() {
	n := flag.Int("n", 1000000, "listed IPv4 addresses")
	n6 := flag.Int("n6", 1000, "listed IPv6 /64s")
	zone := flag.String("zone", "bl.bench.test", "zone name")
	out := flag.String("out", "zone.rbldnsd", "zone file to write")
	qout := flag.String("queries", "queries.txt", "dnsperf query file to write")
	nq := flag.Int("nq", 1000000, "queries to write (half listed)")
	txt := flag.String("txt", "Backscatter from $ hit blowback traps; see http://127.0.0.1:8080/lookup?ip=$", "TXT template")
	typ := flag.String("qtype", "A", "query type (A or TXT; \"mix\" alternates)")
	flag.Parse()
	r := rand.New(rand.NewPCG(5782, 1))
	listed := make(map[uint32]bool, *n)
	keys := make([]uint32, 0, *n)
	entries := make([]zones.Entry, 0, *n+*n6)
	for len(keys) < *n {
		k := r.Uint32()
		if k>>24 == 0 || k>>24 == 127 || k>>24 >= 224 || listed[k] {
			continue
		}
		listed[k] = true
		keys = append(keys, k)
		c := zones.CodeBounce
		switch x := r.IntN(100); {
		case x < 10:
			c = zones.CodeAutoreply
		case x < 15:
			c = zones.CodeCallout
		case x < 17:
			c = zones.CodeChallenge
		case x < 20:
			c |= zones.CodeAutoreply
		}
		entries = append(entries, zones.Entry{Prefix: netip.PrefixFrom(addr4(k), 32), Codes: c})
	}
	for i := 0; i < *n6; i++ {
		var b [16]byte
		b[0], b[1] = 0x20, 0x01
		for j := 2; j < 8; j++ {
			b[j] = byte(r.Uint32())
		}
		entries = append(entries, zones.Entry{Prefix: netip.PrefixFrom(netip.AddrFrom16(b), 64), Codes: zones.CodeBounce})
	}
	snap := zones.Build(zones.Info{Zone: *zone, Serial: 2026112701, TXT: *txt}, entries)
	if err := zones.WriteFileAtomic(*out, func(w io.Writer) error {
		return zones.WriteRbldnsd(w, snap, zones.SOA{NS: []string{"ns1." + *zone}, Hostmaster: "hostmaster." + *zone})
	}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	f, err := os.Create(*qout)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	w := bufio.NewWriter(f)
	for i := 0; i < *nq; i++ {
		var k uint32
		if i%2 == 0 {
			k = keys[r.IntN(len(keys))]
		} else {
			for {
				k = r.Uint32()
				if !listed[k] && k>>24 != 127 && k>>24 != 0 {
					break
				}
			}
		}
		qt := *typ
		if qt == "mix" {
			qt = "A"
			if i%4 >= 2 {
				qt = "TXT"
			}
		}
		fmt.Fprintf(w, "%d.%d.%d.%d.%s %s\n", byte(k), byte(k>>8), byte(k>>16), byte(k>>24), *zone, qt)
	}
	if err := w.Flush(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	f.Close()
}

func addr4(k uint32) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(k >> 24), byte(k >> 16), byte(k >> 8), byte(k)})
}
