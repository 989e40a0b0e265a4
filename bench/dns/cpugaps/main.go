// Command cpugaps spins on one thread and reports every gap longer than
// -min between two reads of the clock: time the thread did not run. Pinned
// to a core (taskset -c 0 cpugaps) next to `perf sched record -C 0`, it
// tells whether a server's latency tail is another task on its core or the
// core itself going away (a hypervisor taking the virtual CPU: the gap
// shows here and no task ran in it). It uses a whole core while it runs.
//
// Usage: cpugaps [-s SECONDS] [-min DURATION]
package main

import (
	"flag"
	"fmt"
	"runtime"
	"time"
)

func main() {
	secs := flag.Int("s", 30, "how long to spin, seconds")
	minGap := flag.Duration("min", time.Millisecond, "report gaps longer than this")
	flag.Parse()
	runtime.LockOSThread()
	end := time.Now().Add(time.Duration(*secs) * time.Second)
	var n int
	var longest, total time.Duration
	last := time.Now()
	for last.Before(end) {
		now := time.Now()
		if d := now.Sub(last); d > *minGap {
			n++
			total += d
			longest = max(longest, d)
			fmt.Printf("%s gap %v\n", now.Format("15:04:05.000"), d.Round(time.Microsecond))
		}
		last = now
	}
	fmt.Printf("%d gaps > %v in %d s, longest %v, %v in all\n", n, *minGap, *secs, longest.Round(time.Microsecond), total.Round(time.Microsecond))
}
