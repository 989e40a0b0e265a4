// Command check counts bench/cluster's outcome in a stopped replica's
// store: events stored, acknowledged addresses without an event (lost) and
// events beyond the first per address (duplicates: each address sent once).
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"net/netip"
	"os"

	"github.com/blowback-dnsbl/blowback/store"
)

func main() {
	acked := flag.String("acked", "", "file of acknowledged source addresses")
	dir := flag.String("store", "", "a stopped replica's store directory (<data>/store)")
	flag.Parse()
	st, err := store.Open(*dir, store.DefaultOptions(), nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer st.Close()
	per := map[netip.Addr]int{}
	total := 0
	if err := st.ScanRefs(context.Background(), func(r store.Ref) error { per[r.Addr]++; total++; return nil }); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	dups := 0
	for _, c := range per {
		dups += c - 1
	}
	f, err := os.Open(*acked)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	lost, n := 0, 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		a, err := netip.ParseAddr(sc.Text())
		if err != nil {
			continue
		}
		n++
		if per[a] == 0 {
			lost++
		}
	}
	fmt.Printf("applied=%d acked=%d lost=%d duplicates=%d\n", total, n, lost, dups)
}
