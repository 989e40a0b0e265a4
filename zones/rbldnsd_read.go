package zones

import (
	"bytes"
	"fmt"
	"io"
	"runtime"
	"sync/atomic"
)

// Reading an rbldnsd file in chunks (ParseRbldnsd).
//
// A large list's file is millions of lines that are a bare IPv4 address
// ("a.b.c.d\n"). The file is read in chunks of whole lines; worker
// goroutines (one per CPU, at most rbMaxWorkers) find the runs of such
// lines in a chunk and decode their addresses, and the parser takes the
// chunks in file order: a run of bare addresses is added in one loop with
// the value that an empty value text has at that point of the file; every
// other line goes through rbParser.line as before. The result is the same
// as a line-by-line parse (TestParseRbldnsdChunked); the parse reads the
// file once, copies no line, and uses the CPUs there are.

const (
	rbChunkSize  = 2 << 20 // bytes read at once (whole lines)
	rbMaxLine    = 1 << 16 // longest line accepted, newline excluded
	rbMaxWorkers = 4
)

// rbChunk is a piece of the file made of whole lines, and what the worker
// found in it.
type rbChunk struct {
	data  []byte
	segs  []rbSeg
	addrs []uint32 // the addresses of the fast segments, in order
	long  bool     // a line longer than rbMaxLine follows data
	err   error    // a read error follows data
	// claimed is set by whoever scans the chunk: a worker, or the parser
	// when it reaches the chunk first (on a busy machine a parked worker
	// may wait milliseconds for a CPU; the parser does not wait for it).
	claimed atomic.Bool
	done    chan struct{}
}

// rbSeg is a run of lines of a chunk: data[previous end:end], and for a run
// of bare IPv4 addresses (fast) their values, addrs[previous a1:a1].
type rbSeg struct {
	end  int
	a1   int
	fast bool
}

// scan splits c.data into segments (fast: bare IPv4 address lines).
func (c *rbChunk) scan(fast bool) {
	defer close(c.done)
	d := c.data
	c.segs, c.addrs = c.segs[:0], c.addrs[:0]
	start, mode := 0, false
	for i := 0; i < len(d); {
		v, next, ok := uint32(0), 0, false
		if fast {
			v, next, ok = plain4(d, i)
		}
		if !ok {
			if j := bytes.IndexByte(d[i:], '\n'); j >= 0 {
				next = i + j + 1
			} else {
				next = len(d)
			}
		}
		if i > start && ok != mode {
			c.segs = append(c.segs, rbSeg{end: i, a1: len(c.addrs), fast: mode})
			start = i
		}
		mode = ok
		if ok {
			c.addrs = append(c.addrs, v)
		}
		i = next
	}
	if len(d) > start {
		c.segs = append(c.segs, rbSeg{end: len(d), a1: len(c.addrs), fast: mode})
	}
}

// plain4 reads a line "a.b.c.d\n" (or "a.b.c.d" at the end of d) at d[i:]
// as addr4Fast reads the address: the address and the index after the line.
func plain4(d []byte, i int) (uint32, int, bool) {
	var v uint32
	for n := 0; n < 4; n++ {
		if n > 0 {
			if i >= len(d) || d[i] != '.' {
				return 0, 0, false
			}
			i++
		}
		if i >= len(d) || d[i]-'0' > 9 {
			return 0, 0, false
		}
		o := uint32(d[i] - '0')
		i++
		for k := 0; k < 2 && i < len(d) && d[i]-'0' <= 9; k++ {
			o = o*10 + uint32(d[i]-'0')
			i++
		}
		if o > 255 {
			return 0, 0, false
		}
		v = v<<8 | o
	}
	switch {
	case i == len(d):
		return v, i, true
	case d[i] == '\n':
		return v, i + 1, true
	}
	return 0, 0, false
}

// read parses everything r holds, chunk bytes at a time; fast enables
// the bare-address runs (off: every line through rbParser.line).
func (p *rbParser) read(r io.Reader, chunk int, fast bool) error {
	workers := min(max(runtime.GOMAXPROCS(0), 1), rbMaxWorkers)
	inflight := workers + 1
	work := make(chan *rbChunk, inflight)
	ordered := make(chan *rbChunk, inflight)
	free := make(chan *rbChunk, inflight+1)
	stop := make(chan struct{})
	defer close(stop)
	for range workers {
		go func() {
			for c := range work {
				if c.claimed.CompareAndSwap(false, true) {
					c.scan(fast)
				}
			}
		}()
	}
	go func() {
		defer close(work)
		defer close(ordered)
		var carry []byte
		for {
			// A recycled chunk's buffers go into a new rbChunk: a worker
			// may still hold the old one from the work queue (it lost the
			// claim to the parser), and must find it claimed for good, not
			// reset under it with this chunk's data.
			c := &rbChunk{done: make(chan struct{})}
			select {
			case old := <-free:
				c.data, c.segs, c.addrs = old.data[:0], old.segs[:0], old.addrs[:0]
			default:
			}
			buf := c.data[:0]
			if cap(buf) < len(carry)+chunk {
				buf = make([]byte, 0, max(len(carry)+chunk, 2*len(carry)))
			}
			buf = append(buf, carry...)
			n, err := io.ReadFull(r, buf[len(buf):cap(buf)])
			buf = buf[:len(buf)+n]
			last := err != nil
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				err = nil
			}
			if !last {
				// Whole lines only; the rest goes with the next chunk.
				k := bytes.LastIndexByte(buf, '\n') + 1
				carry = append(carry[:0], buf[k:]...)
				buf = buf[:k]
				if len(carry) >= rbMaxLine {
					c.long, last = true, true
				}
			}
			c.data, c.err = buf, err
			select {
			case work <- c:
			case <-stop:
				return
			}
			select {
			case ordered <- c:
			case <-stop:
				return
			}
			if last {
				return
			}
		}
	}()
	for c := range ordered {
		if c.claimed.CompareAndSwap(false, true) {
			c.scan(fast)
		}
		<-c.done
		if err := p.chunk(c); err != nil {
			return err
		}
		if c.long {
			return fmt.Errorf("%w: line %d longer than 64 KiB", ErrRbldnsd, p.stats.Lines+1)
		}
		if c.err != nil {
			return fmt.Errorf("%w: %v", ErrRbldnsd, c.err)
		}
		select {
		case free <- c:
		default:
		}
	}
	return nil
}

// chunk parses the lines of a scanned chunk in order.
func (p *rbParser) chunk(c *rbChunk) error {
	from, a0 := 0, 0
	for _, sg := range c.segs {
		lines := c.data[from:sg.end]
		from = sg.end
		if sg.fast {
			addrs := c.addrs[a0:sg.a1]
			a0 = sg.a1
			if p.fast4(addrs) {
				continue
			}
		}
		for len(lines) > 0 {
			var line []byte
			if j := bytes.IndexByte(lines, '\n'); j >= 0 {
				line, lines = lines[:j+1], lines[j+1:]
			} else {
				line, lines = lines, nil
			}
			if n := len(line); n > rbMaxLine || (n == rbMaxLine && line[n-1] != '\n') {
				return fmt.Errorf("%w: line %d longer than 64 KiB", ErrRbldnsd, p.stats.Lines+1)
			}
			p.stats.Lines++
			if err := p.line(line); err != nil {
				if !p.opts.Lenient {
					return fmt.Errorf("%w: line %d: %v", ErrRbldnsd, p.stats.Lines, err)
				}
				p.stats.warn(p.stats.Lines, "%v", err)
			}
		}
	}
	return nil
}

// fast4 adds a run of bare IPv4 address lines as rbParser.line would, one
// by one; false when the section needs them parsed one by one (an IPv6
// dataset: each line is an error).
func (p *rbParser) fast4(addrs []uint32) bool {
	if !p.sc.served {
		p.stats.Lines += len(addrs)
		return true
	}
	switch p.sc.typ {
	case "ip6tset", "ip6trie":
		return false
	}
	codes, val, err := p.value(nil)
	if err != nil {
		return false // never: an empty value text always resolves
	}
	p.stats.Lines += len(addrs)
	p.useN(val, len(addrs))
	for _, a := range addrs {
		p.b.Add4(a, codes, val)
	}
	return true
}
