//go:build linux

// Command udpload sends DNS queries over UDP at a fixed rate and times each
// answer by the kernel's receive timestamp (SO_TIMESTAMPNS), not by when the
// load generator got round to reading it.
//
// dnsperf -v, which bench/dns/ab.sh also runs, prints a line per answer from
// its receiving thread; at 50k QPS that takes 80-98% of its core on this
// machine, so every server's latencies there include dnsperf's own queueing.
// udpload keeps its measurements in memory and writes them after the run:
// each query is timed from just before its send system call to the moment
// the kernel received its answer, so neither the sender falling behind its
// schedule nor the receiver being slow to read moves the figure. It is open
// loop like dnsperf: queries go out on schedule whether or not answers came.
//
// A query is lost when no answer came within -t (an answer later than that
// counts as lost, as in dnsperf). Answers are matched by ID and checked
// against the question sent; a datagram that does not match is counted as
// wrong and its query stays in flight (lost, unless a right answer comes).
// Queries due in the first -w seconds of the schedule are a warm-up and
// count in no figure.
//
// Usage: udpload -p PORT -d QUERIES [-s ADDR] [-Q RATE] [-l SECONDS] [-w WARM]
//
//	[-c SOCKETS] [-t TIMEOUT] [-tick DURATION] [-o LATENCIES]
//
// QUERIES has dnsperf's format ("name type" a line). -o writes the latency
// in seconds of every answer after the warm-up, one a line. The summary on
// standard output is one line of key=value pairs.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/miekg/dns"
)

func main() {
	var c config
	flag.StringVar(&c.server, "s", "127.0.0.1", "server address")
	flag.IntVar(&c.port, "p", 53, "server port")
	queries := flag.String("d", "", "queries file, dnsperf's format (\"name type\" a line)")
	flag.IntVar(&c.rate, "Q", 10000, "queries per second")
	flag.Float64Var(&c.seconds, "l", 5, "seconds to send for, warm-up included")
	flag.Float64Var(&c.warm, "w", 1, "warm-up seconds: queries sent in them count in no figure")
	flag.IntVar(&c.sockets, "c", 4, "client sockets (source ports), used in turn")
	flag.DurationVar(&c.timeout, "t", 2*time.Second, "an answer later than this counts as lost")
	flag.DurationVar(&c.tick, "tick", 100*time.Microsecond, "the sender wakes at most this often and sends what is due")
	out := flag.String("o", "", "write the latency in seconds of every answer after the warm-up here, one a line")
	flag.Parse()
	if *queries == "" {
		fmt.Fprintln(os.Stderr, "udpload: -d QUERIES is needed")
		os.Exit(2)
	}
	var err error
	if c.queries, err = readQueries(*queries); err != nil {
		fmt.Fprintln(os.Stderr, "udpload:", err)
		os.Exit(1)
	}
	r, err := run(c)
	if err != nil {
		fmt.Fprintln(os.Stderr, "udpload:", err)
		os.Exit(1)
	}
	if *out != "" {
		if err := writeLatencies(*out, r.latencies); err != nil {
			fmt.Fprintln(os.Stderr, "udpload:", err)
			os.Exit(1)
		}
	}
	fmt.Println(r.summary())
}

// readQueries reads dnsperf's query format and encodes each as a DNS query.
func readQueries(path string) ([][]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var qs [][]byte
	var pool []byte // the queries share large arrays: fewer objects to allocate and scan
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 || strings.HasPrefix(fields[0], "#") {
			continue
		}
		qtype := dns.TypeA
		if len(fields) > 1 {
			t, ok := dns.StringToType[strings.ToUpper(fields[1])]
			if !ok {
				return nil, fmt.Errorf("%s:%d: unknown type %q", path, n, fields[1])
			}
			qtype = t
		}
		if _, ok := dns.IsDomainName(fields[0]); !ok {
			return nil, fmt.Errorf("%s:%d: not a domain name: %q", path, n, fields[0])
		}
		m := new(dns.Msg)
		m.SetQuestion(dns.Fqdn(fields[0]), qtype)
		b, err := m.PackBuffer(pool[len(pool):cap(pool)])
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %v", path, n, err)
		}
		if len(pool)+len(b) > cap(pool) { // PackBuffer allocated: b is elsewhere
			pool = make([]byte, 0, 1<<20)
			b = append(pool, b...)
		}
		pool = pool[:len(pool)+len(b)]
		qs = append(qs, b[:len(b):len(b)])
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(qs) == 0 {
		return nil, fmt.Errorf("%s: no queries", path)
	}
	return qs, nil
}

func writeLatencies(path string, lat []int64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	for _, ns := range lat {
		fmt.Fprintf(w, "%.6f\n", float64(ns)/1e9)
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func (r *result) summary() string {
	lat := slices.Clone(r.latencies)
	slices.Sort(lat)
	p := func(q float64) string {
		if len(lat) == 0 {
			return "-"
		}
		return fmt.Sprintf("%.3f", float64(lat[min(len(lat)-1, int(float64(len(lat))*q))])/1e6)
	}
	return fmt.Sprintf("sent=%d answered=%d lost=%d late=%d wrong=%d steady_sent=%d steady_answered=%d steady_lost=%d p50_ms=%s p99_ms=%s p999_ms=%s behind_max_us=%d no_kernel_ts=%d noerror=%d nxdomain=%d other_rcode=%d cpu_pct=%.0f",
		r.sent, r.answered, r.lost, r.late, r.wrong, r.steadySent, len(lat), r.steadyLost,
		p(0.5), p(0.99), p(0.999), r.behindMax/1000, r.noKernelTS, r.rcodes[dns.RcodeSuccess], r.rcodes[dns.RcodeNameError],
		r.otherRcodes(), r.cpuPct)
}

func (r *result) otherRcodes() int {
	n := 0
	for rc, c := range r.rcodes {
		if rc != dns.RcodeSuccess && rc != dns.RcodeNameError {
			n += c
		}
	}
	return n
}
