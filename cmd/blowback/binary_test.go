package main

// Tests that run the blowback binary itself: it is built once per test
// binary, started as a child process whose log is kept, and ready once it
// logs its "blowback running" line (internal/runline), which names the
// addresses it bound.

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/blowback-dnsbl/blowback/internal/runline"
	"github.com/blowback-dnsbl/blowback/internal/testenv"
)

// buildOnce holds what buildBinary built.
var buildOnce struct {
	sync.Once
	path string
	err  error
	out  []byte
}

// buildBinary builds blowback into a temp dir (once per test binary).
func buildBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "blowback-bin-")
		if err != nil {
			buildOnce.err = err
			return
		}
		buildOnce.path = filepath.Join(dir, "blowback")
		cmd := exec.Command("go", "build", "-o", buildOnce.path, ".")
		buildOnce.out, buildOnce.err = cmd.CombinedOutput()
	})
	if buildOnce.err != nil {
		t.Fatalf("go build: %v\n%s", buildOnce.err, buildOnce.out)
	}
	return buildOnce.path
}

// binProc is a child process whose stderr (the log) is kept and watched for
// the "blowback running" line (runline.Proc).
type binProc struct {
	name string
	proc *runline.Proc
	cmd  *exec.Cmd
	log  *testenv.Output
	done <-chan struct{}
}

func startProc(t testing.TB, name, bin string, args ...string) *binProc {
	t.Helper()
	p := &binProc{name: name, log: &testenv.Output{}, cmd: exec.Command(bin, args...)}
	p.cmd.Stdout = p.log
	proc, err := runline.Start(p.cmd, p.log)
	if err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	p.proc, p.done = proc, proc.Done()
	t.Cleanup(func() {
		p.stop(syscall.SIGKILL)
		if t.Failed() || testing.Verbose() {
			t.Logf("--- %s log:\n%s", name, p.log.String())
		}
	})
	return p
}

// waitReady returns the key=value pairs of the "blowback running" line.
func (p *binProc) waitReady(t testing.TB) map[string]string {
	t.Helper()
	kv, err := p.running()
	if err != nil {
		t.Fatal(err)
	}
	return kv
}

// running waits for the "blowback running" line and returns its
// key=value pairs, or an error with the log when the process exits first
// or is not running after 2 minutes.
func (p *binProc) running() (map[string]string, error) {
	line, err := p.proc.Running(2 * time.Minute)
	if err != nil {
		return nil, fmt.Errorf("%s %w:\n%s", p.name, err, p.log.String())
	}
	return runline.Fields(line), nil
}

func (p *binProc) stop(sig syscall.Signal) { p.proc.Stop(sig, 30*time.Second) }
