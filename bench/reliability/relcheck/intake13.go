package main

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/blowback-dnsbl/blowback/forward"
	"github.com/blowback-dnsbl/blowback/internal/tally"
	"github.com/blowback-dnsbl/blowback/store"
)

// Issue 13, item 9: gzip bombs on the evidence intake. A valid batch whose
// node field inflates to 60 MiB (about 60 KB sent; under the old 64 MiB limit) is posted by 8 clients
// at once with a node token; the intake must stop inflating at its limit
// (413), refuse batches beyond the ones in flight (503), and take a real
// batch afterwards.
func (c *checker) intakeBombScenario() {
	const clients, inflated = 8, 60 << 20
	r := row{Scenario: "Intake gzip bomb",
		Load:   fmt.Sprintf("%d concurrent POST /api/v1/evidence with a node token", clients),
		Faults: fmt.Sprintf("gzip body inflating to %d MiB of valid JSON", inflated>>20)}
	n := c.scenarioNode(r, "intakebomb", c.work+"/intakebomb-data", c.baseConfig(""))
	if n == nil {
		return
	}
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	zw.Write([]byte(`{"node":"`))
	zw.Write(bytes.Repeat([]byte("a"), inflated))
	zw.Write([]byte(`","events":[]}`))
	zw.Close()
	bomb := buf.Bytes()
	hwm0 := peakRSS(n)
	var codes tally.Counter
	var wg sync.WaitGroup
	t0 := time.Now()
	for range clients {
		wg.Go(func() {
			code, _, err := do(httpFrom("127.0.0.1"), "POST", "http://"+n.http+forward.Path, "Bearer "+c.nodeTok, bomb,
				map[string]string{"Content-Encoding": "gzip"})
			if err != nil {
				codes.Add("error")
				return
			}
			codes.Add(strconv.Itoa(code))
		})
	}
	wg.Wait()
	took := time.Since(t0)
	hwm := peakRSS(n)
	ev := store.Event{ID: store.NewEventID(), Time: time.Now(), ClientIP: netip.MustParseAddr("192.0.2.99"), Kind: store.KindBounce,
		Rcpts: []string{"x@trap.blowback.test"}, TrapDomain: "trap.blowback.test", HELO: "mx.example"}
	good, _ := json.Marshal(forward.Batch{Events: []store.Event{ev}})
	gc, _, _ := do(httpFrom("127.0.0.1"), "POST", "http://"+n.http+forward.Path, "Bearer "+c.nodeTok, good, nil)
	alive := n.alive()
	stopErr := n.stop()
	r.Events = fmt.Sprintf("%d bombs of %d KB: %s in %s; a real batch after: %d", clients, len(bomb)>>10, codes.String(),
		took.Round(time.Millisecond), gc)
	r.Errors = fmt.Sprintf("node peak RSS %d MiB before, %d MiB after the bombs; alive %v; stop %s", hwm0>>20, hwm>>20, alive, errStr(stopErr))
	r.OK = codes.Get("413") > 0 && codes.Get("413")+codes.Get("503") == clients && gc == 200 && alive && stopErr == nil
	c.add(r)
}

// peakRSS is the node process's peak resident set (VmHWM), in bytes; 0
// when unknown.
func peakRSS(n *node) int64 {
	if n.cmd == nil || n.cmd.Process == nil {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", n.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}
