package classify

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/blowback-dnsbl/blowback/internal/testenv"
	"github.com/blowback-dnsbl/blowback/store"
)

// FuzzClassify: the classifier never panics, is deterministic, and keeps
// its promises on any input: a valid kind that is never callout (that is
// the SMTP session's verdict), backscatter exactly for the contract's kinds,
// at least one signal, short stable tokens, bounded valid UTF-8 strings.
func FuzzClassify(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/*.eml")
	if p := filepath.Join(testenv.Root(f), "..", "shared", "corpus", "sisimai", "bounces"); dirExists(p) {
		more, _ := filepath.Glob(filepath.Join(p, "*.eml"))
		if len(more) > 40 {
			more = more[:40]
		}
		seeds = append(seeds, more...)
	}
	for _, s := range seeds {
		b, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, true, "trap@trap.blowback.test")
	}
	f.Add([]byte("Content-Type: multipart/report; boundary=x\n\n--x\nContent-Type: message/rfc822\n\n--x--"), false, "")
	f.Fuzz(func(t *testing.T, msg []byte, null bool, rcpt string) {
		env := Envelope{Known: null, Null: null, Rcpts: []string{rcpt}, TrapDomains: []string{"trap.blowback.test"}}
		r := classify(msg, env) // not Classify: a panic must fail the fuzz run
		if k := r.Kind.String(); k == "" || strings.HasPrefix(k, "kind(") {
			t.Fatalf("invalid kind %d", r.Kind)
		}
		if _, err := store.ParseKind(r.Kind.String()); err != nil {
			t.Fatalf("kind %v: %v", r.Kind, err)
		}
		if r.Kind == store.KindCallout {
			t.Fatal("content classified as callout")
		}
		want := r.Kind == store.KindBounce || r.Kind == store.KindAutoreply || r.Kind == store.KindChallenge || r.Kind == store.KindMDN
		if r.Kind.Backscatter() != want {
			t.Fatalf("backscatter %v for %s", r.Kind.Backscatter(), r.Kind)
		}
		if len(r.Signals) == 0 {
			t.Fatal("no signals")
		}
		for _, s := range append([]string{r.SubKind}, r.Signals...) {
			if len(s) > 80 || strings.ContainsAny(s, " \n\r\t") || !utf8.ValidString(s) {
				t.Fatalf("bad token %q", s)
			}
		}
		strs := []string{r.MessageID, r.From, r.Subject, r.Original.MessageID, r.Original.From, r.Original.To, r.Original.Subject, r.Original.FirstHop, r.TrapField}
		if r.DSN != nil {
			strs = append(strs, r.DSN.ReportingMTA, r.DSN.FinalRecipient, r.DSN.Status, r.DSN.DiagnosticCode, r.DSN.Action)
		}
		for _, s := range strs {
			if len(s) > 1000 || !utf8.ValidString(s) || strings.ContainsAny(s, "\n\r\x00") {
				t.Fatalf("bad string %q", s)
			}
		}
		if again := classify(msg, env); !reflect.DeepEqual(r, again) {
			t.Fatalf("not deterministic:\n%+v\n%+v", r, again)
		}
	})
}

func dirExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}

// BenchmarkClassify runs the classifier over the sisimai corpus; b.SetBytes
// makes the MB/s figure, and msgs/s is reported alongside.
func BenchmarkClassify(b *testing.B) {
	files := loadCorpus(b)
	total := 0
	for _, f := range files {
		total += len(f.data)
	}
	b.SetBytes(int64(total / len(files)))
	b.ReportAllocs()
	b.ResetTimer()
	n := 0
	cpu0 := cpuTime()
	for b.Loop() {
		classify(files[n%len(files)].data, Envelope{})
		n++
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "msgs/s")
	// On a loaded machine wall time says little: msgs per second of this
	// process's CPU time (all threads, GC included) is the per-core rate.
	if cpu := cpuTime() - cpu0; cpu > 0 {
		b.ReportMetric(float64(n)/cpu.Seconds(), "msgs/cpu-s")
	}
}

// cpuTime is the process's user+system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
