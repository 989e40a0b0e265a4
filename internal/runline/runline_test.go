package runline

import (
	"bytes"
	"errors"
	"log/slog"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestParse reads back what slog's text handler writes for the running
// line, as cmd/blowback logs it.
func TestParse(t *testing.T) {
	var b bytes.Buffer
	slog.New(slog.NewTextHandler(&b, nil)).Info(Msg, "zone", "bl.example", "smtp", "127.0.0.1:2525",
		"dns", "[::1]:5353", "http", "127.0.0.1:8080", "ready", true)
	a, ok := Parse(b.String())
	if want := (Addrs{SMTP: "127.0.0.1:2525", DNS: "[::1]:5353", HTTP: "127.0.0.1:8080"}); !ok || a != want {
		t.Fatalf("Parse(%q) = %+v, %v; want %+v", b.String(), a, ok, want)
	}
	b.Reset()
	slog.New(slog.NewTextHandler(&b, nil)).Info(Msg, "mode", "trap", "smtp", "127.0.0.1:25", "http", "127.0.0.1:80")
	if a, ok := Parse(b.String()); !ok || a != (Addrs{SMTP: "127.0.0.1:25", HTTP: "127.0.0.1:80"}) {
		t.Fatalf("trap mode: %+v, %v", a, ok)
	}
	if _, ok := Parse(`time=x level=INFO msg="store open" smtp=1.2.3.4:25`); ok {
		t.Fatal("another line parsed as the running line")
	}
}

// TestProcRunning starts a process that logs a line, then the running
// line, then waits: Running returns the running line, the log holds both,
// Stop ends the process.
func TestProcRunning(t *testing.T) {
	var log bytes.Buffer
	p, err := Start(exec.Command("sh", "-c",
		`echo starting >&2; echo 'level=INFO msg="blowback running" smtp=127.0.0.1:25' >&2; echo on stdout; exec sleep 60`), &log)
	if err != nil {
		t.Fatal(err)
	}
	line, err := p.Running(time.Minute)
	if a, ok := Parse(line); err != nil || !ok || a.SMTP != "127.0.0.1:25" {
		t.Fatalf("Running: %q, %v", line, err)
	}
	if !p.Stop(syscall.SIGTERM, time.Minute) {
		t.Error("sleep did not stop on SIGTERM")
	}
	<-p.Done()
	if p.Err() == nil {
		t.Error("a process ended by SIGTERM exited cleanly")
	}
	if got := log.String(); got != "starting\n"+line+"\n" {
		t.Errorf("log %q", got)
	}
}

// TestProcExited: a process that exits without the running line gives
// ErrExited, its last log lines and its exit status; one that never logs
// it gives ErrNotRunning when the time runs out.
func TestProcExited(t *testing.T) {
	var log bytes.Buffer
	p, err := Start(exec.Command("sh", "-c", "for i in $(seq 30); do echo line $i >&2; done; exit 3"), &log)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Running(time.Minute); !errors.Is(err, ErrExited) {
		t.Fatalf("Running: %v, want ErrExited", err)
	}
	if tail := strings.Split(p.Tail(), "\n"); len(tail) != tailLines || tail[0] != "line 11" || tail[len(tail)-1] != "line 30" {
		t.Errorf("tail %q", tail)
	}
	var ee *exec.ExitError
	if !errors.As(p.Err(), &ee) || ee.ExitCode() != 3 {
		t.Errorf("exit %v, want status 3", p.Err())
	}
	if n := strings.Count(log.String(), "\n"); n != 30 {
		t.Errorf("%d log lines copied, want 30", n)
	}

	p, err = Start(exec.Command("sleep", "60"), &log)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop(syscall.SIGKILL, time.Minute)
	if _, err := p.Running(time.Millisecond); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("Running: %v, want ErrNotRunning", err)
	}
}

// TestFields reads back the fields slog's text handler writes, quoted
// values with spaces, quotes and escapes among them.
func TestFields(t *testing.T) {
	var b bytes.Buffer
	slog.New(slog.NewTextHandler(&b, nil)).Info("stopped", "backlog", 1, "err", `say "hi" \ now`, "empty", "")
	kv := Fields(b.String())
	if kv["level"] != "INFO" || kv["msg"] != "stopped" || kv["backlog"] != "1" || kv["err"] != `say "hi" \ now` || kv["empty"] != "" {
		t.Fatalf("Fields(%q) = %q", b.String(), kv)
	}
	if _, ok := kv["empty"]; !ok {
		t.Error("empty value dropped")
	}
}
