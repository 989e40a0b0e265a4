// Command zonesize measures what answering from many places costs at a
// given zone size: the export files (rbldnsd, BIND), what rsync moves for a
// first copy and for a small update, and what a full (AXFR) and an
// incremental (IXFR) zone transfer put on the wire, from blowback's own
// transfer server on loopback.
//
//	go run ./bench/forward/zonesize -n 1000000 [-changes 100] [-axfr=true] [-rsync=true]
//
// The zone holds n IPv4 /32 entries (random, bounce code; one in ten with
// a second code), as a busy backscatter list would; the TXT template is the
// default one. Output: one "name value unit" line per figure.
package main

import (
	"bufio"
	"compress/gzip"
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/blowback-dnsbl/blowback/dnsd"
	"github.com/blowback-dnsbl/blowback/zones"
)

const zone = "bl.blowback.test"

func main() {
	n := flag.Int("n", 1000000, "zone entries")
	changes := flag.Int("changes", 100, "entries changed between two versions (IXFR, rsync update)")
	doAXFR := flag.Bool("axfr", true, "measure AXFR and IXFR")
	doRsync := flag.Bool("rsync", true, "measure rsync transfers (needs rsync)")
	flag.Parse()
	if err := run(*n, *changes, *doAXFR, *doRsync); err != nil {
		fmt.Fprintln(os.Stderr, "zonesize:", err)
		os.Exit(1)
	}
}

type countW struct{ n int64 }

func (c *countW) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

func report(name string, v float64, unit string) { fmt.Printf("%-28s %14.0f %s\n", name, v, unit) }

func run(n, changes int, doAXFR, doRsync bool) error {
	info := zones.Info{Zone: zone, Serial: 1, TTL: 2100 * time.Second,
		TXT: "Backscatter from $ hit blowback traps; see https://bl.blowback.test/lookup?ip=$"}
	r := rand.New(rand.NewPCG(8, 8))
	start := time.Now()
	b := zones.NewBuilder(info)
	b.Grow(n)
	for range n {
		c := zones.CodeBounce
		if r.IntN(10) == 0 {
			c |= zones.Codes(1 << r.IntN(4))
		}
		b.Add4(r.Uint32()|0x01000000, c, 0)
	}
	v1 := b.Snapshot()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	report("entries", float64(v1.Len()), "")
	report("build", float64(time.Since(start).Milliseconds()), "ms")
	report("heap in use", float64(ms.HeapInuse>>20), "MiB")

	// v2: `changes` entries added (new senders listed), as between two exports.
	var ch []zones.Entry
	for i := range changes {
		ch = append(ch, zones.Entry{Prefix: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 99, byte(i >> 8), byte(i)}), 32), Codes: zones.CodeBounce})
	}
	info2 := info
	info2.Serial = 2
	v2 := v1.With(info2, ch)

	soa := zones.SOA{NS: []string{"ns1.blowback.test"}, Hostmaster: "hostmaster.blowback.test", TTL: 2100, Minimum: 300}
	dir, err := os.MkdirTemp("", "zonesize-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	for _, f := range []zones.Format{zones.FormatRbldnsd, zones.FormatBIND} {
		var c countW
		zw := gzip.NewWriter(&c)
		var plain countW
		t0 := time.Now()
		if err := zones.Write(io.MultiWriter(zw, &plain), f, v1, soa); err != nil {
			return err
		}
		zw.Close()
		report("export "+string(f), float64(plain.n), "bytes")
		report("export "+string(f)+" gzip", float64(c.n), "bytes")
		report("export "+string(f)+" time", float64(time.Since(t0).Milliseconds()), "ms (with gzip)")
	}
	if doRsync {
		if err := rsync(dir, v1, v2, soa); err != nil {
			return err
		}
	}
	if doAXFR {
		if err := xfr(v1, v2); err != nil {
			return err
		}
	}
	return nil
}

// rsync copies the v1 rbldnsd file to an empty mirror, then the v2 file over
// it, and reports the bytes rsync moved each time (rsync -z, as mirrors run).
func rsync(dir string, v1, v2 *zones.Snapshot, soa zones.SOA) error {
	bin, err := exec.LookPath("rsync")
	if err != nil {
		fmt.Println("rsync: not installed, skipped")
		return nil
	}
	src, dst := filepath.Join(dir, "src"), filepath.Join(dir, "dst")
	os.MkdirAll(src, 0o755)
	os.MkdirAll(dst, 0o755)
	file := filepath.Join(src, zone+".rbldnsd")
	re := regexp.MustCompile(`Total bytes sent: ([\d,.]+)\s+Total bytes received: ([\d,.]+)`)
	for i, s := range []*zones.Snapshot{v1, v2} {
		if err := zones.WriteFileAtomic(file, func(w io.Writer) error { return zones.Write(w, zones.FormatRbldnsd, s, soa) }); err != nil {
			return err
		}
		// --no-whole-file: use the delta algorithm on a local copy too, as over a network.
		out, err := exec.Command(bin, "-az", "--no-whole-file", "--stats", file, dst+"/").CombinedOutput()
		if err != nil {
			return fmt.Errorf("rsync: %v: %s", err, out)
		}
		m := re.FindSubmatch(out)
		if m == nil {
			return fmt.Errorf("rsync: no stats in %s", out)
		}
		num := func(b []byte) float64 {
			v, _ := strconv.ParseFloat(strings.NewReplacer(",", "", ".", "").Replace(string(b)), 64)
			return v
		}
		what := "rsync first copy"
		if i == 1 {
			what = "rsync update"
		}
		report(what, num(m[1])+num(m[2]), "bytes on the wire")
	}
	return nil
}

// xfr serves v1 then v2 from blowback's transfer server and counts the
// bytes of an AXFR of v2 and of an IXFR from v1 to v2.
func xfr(v1, v2 *zones.Snapshot) error {
	cur := &zones.Current{}
	cur.Store(v1)
	j := zones.NewJournal(0)
	j.Record(v1)
	srv := dnsd.New(dnsd.Config{}, cur, nil, nil)
	if err := srv.Start("127.0.0.1:0"); err != nil {
		return err
	}
	defer srv.Stop(context.Background())
	if err := srv.SetTransfer(dnsd.TransferConfig{Journal: j, Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}, nil); err != nil {
		return err
	}
	defer srv.StopTransfer()
	cur.Store(v2)
	j.Record(v2)
	srv.ZoneChanged()
	addr := srv.Addr().String()
	for _, q := range []struct {
		name  string
		qtype uint16
	}{{"AXFR", dns.TypeAXFR}, {"IXFR", dns.TypeIXFR}} {
		t0 := time.Now()
		bytes, msgs, rrs, err := transfer(addr, q.qtype, v1.Serial)
		if err != nil {
			return fmt.Errorf("%s: %w", q.name, err)
		}
		report(q.name+" wire", float64(bytes), "bytes")
		report(q.name+" messages", float64(msgs), "")
		report(q.name+" records", float64(rrs), "")
		report(q.name+" time", float64(time.Since(t0).Milliseconds()), "ms")
	}
	return nil
}

// transfer does one zone transfer over TCP (RFC 5936 §4.2, RFC 1995) and
// counts its bytes, reading until the closing SOA.
func transfer(addr string, qtype uint16, serial uint32) (bytes int64, msgs, rrs int, err error) {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return 0, 0, 0, err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Minute))
	m := new(dns.Msg)
	if qtype == dns.TypeIXFR {
		m.SetIxfr(zone+".", serial, "ns1.blowback.test.", "hostmaster.blowback.test.")
	} else {
		m.SetAxfr(zone + ".")
	}
	q, err := m.Pack()
	if err != nil {
		return 0, 0, 0, err
	}
	if _, err := conn.Write(append(binary.BigEndian.AppendUint16(nil, uint16(len(q))), q...)); err != nil {
		return 0, 0, 0, err
	}
	br := bufio.NewReaderSize(conn, 64<<10)
	var lenb [2]byte
	soas, closing := 0, 1 // closing: SOAs with the first serial still to come
	var first uint32
	for {
		if _, err := io.ReadFull(br, lenb[:]); err != nil {
			return bytes, msgs, rrs, err
		}
		buf := make([]byte, binary.BigEndian.Uint16(lenb[:]))
		if _, err := io.ReadFull(br, buf); err != nil {
			return bytes, msgs, rrs, err
		}
		bytes += int64(len(buf)) + 2
		msgs++
		var r dns.Msg
		if err := r.Unpack(buf); err != nil {
			return bytes, msgs, rrs, err
		}
		if r.Rcode != dns.RcodeSuccess {
			return bytes, msgs, rrs, fmt.Errorf("rcode %s", dns.RcodeToString[r.Rcode])
		}
		for _, rr := range r.Answer {
			rrs++
			s, isSOA := rr.(*dns.SOA)
			if rrs == 2 && isSOA && qtype == dns.TypeIXFR {
				// Incremental (RFC 1995 §4): the last difference ends with
				// the new SOA, then the new SOA closes the answer.
				closing = 2
			}
			if !isSOA {
				continue
			}
			soas++
			if soas == 1 {
				first = s.Serial
				continue
			}
			if s.Serial == first {
				if closing--; closing == 0 {
					return bytes, msgs, rrs, nil
				}
			}
		}
	}
}
