package runline

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"
)

// Errors.
var (
	ErrExited     = errors.New("exited before running")
	ErrNotRunning = errors.New("not running in time")
)

// tailLines is how many of its last log lines a Proc keeps for Tail.
const tailLines = 20

// Proc is a started process (the blowback binary, for the tools and tests
// that run it) whose log, its stderr, is copied line by line and watched for
// the running line.
type Proc struct {
	Cmd *exec.Cmd

	ready chan string
	done  chan struct{}

	mu   sync.Mutex
	tail []string // the last tailLines log lines, under mu

	err error // what Cmd.Wait returned, set before done is closed
}

// Start starts cmd, whose Stderr must be unset (its Stdout is the
// caller's), and copies each line it writes to stderr to log.
func Start(cmd *exec.Cmd, log io.Writer) (*Proc, error) {
	p := &Proc{Cmd: cmd, ready: make(chan string, 1), done: make(chan struct{})}
	pr, pw := io.Pipe()
	cmd.Stderr = pw
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	exited := make(chan error, 1)
	go func() {
		err := cmd.Wait()
		pw.Close()
		exited <- err
	}()
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(log, line)
			p.mu.Lock()
			if p.tail = append(p.tail, line); len(p.tail) > tailLines {
				p.tail = p.tail[1:]
			}
			p.mu.Unlock()
			if _, ok := Parse(line); ok {
				select {
				case p.ready <- line:
				default:
				}
			}
		}
		_, _ = io.Copy(io.Discard, pr) // past a line too long to scan
		// Err reads err only once done is closed.
		p.err = <-exited
		close(p.done)
	}()
	return p, nil
}

// Running waits up to timeout for the running line and returns it; it
// returns ErrExited if the process exits first (its whole log copied by
// then), ErrNotRunning if the time runs out.
func (p *Proc) Running(timeout time.Duration) (string, error) {
	select {
	case line := <-p.ready:
		return line, nil
	case <-p.done:
		select {
		case line := <-p.ready:
			return line, nil
		default:
			return "", ErrExited
		}
	case <-time.After(timeout):
		return "", ErrNotRunning
	}
}

// Done is closed once the process has exited and its log is copied.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Err waits until Done is closed and returns what waiting for the
// process returned.
func (p *Proc) Err() error {
	<-p.done
	return p.err
}

// Tail is the last lines of the log, one a line.
func (p *Proc) Tail() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.tail, "\n")
}

// Stop sends sig unless the process is done, and waits for it; after
// grace it kills the process, waits and returns false.
func (p *Proc) Stop(sig os.Signal, grace time.Duration) bool {
	select {
	case <-p.done:
		return true
	default:
	}
	_ = p.Cmd.Process.Signal(sig)
	select {
	case <-p.done:
		return true
	case <-time.After(grace):
		_ = p.Cmd.Process.Kill()
		<-p.done
		return false
	}
}
