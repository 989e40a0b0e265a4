package lifecycle

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// recorder builds components that log their starts and stops.
type recorder struct{ log []string }

func (r *recorder) comp(name string, startErr error) Component {
	return Component{Name: name,
		Start: func(context.Context) error { r.log = append(r.log, "start "+name); return startErr },
		Stop:  func(context.Context) error { r.log = append(r.log, "stop "+name); return nil }}
}

func TestOrder(t *testing.T) {
	var r recorder
	g := New(nil)
	if err := g.Start(context.Background(), r.comp("a", nil), r.comp("b", nil), r.comp("c", nil)); err != nil {
		t.Fatal(err)
	}
	if !g.Ready() {
		t.Error("not ready after start")
	}
	if err := g.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(r.log, ","); got != "start a,start b,start c,stop c,stop b,stop a" {
		t.Errorf("order %s", got)
	}
	if g.Ready() {
		t.Error("ready after stop")
	}
	// A second Stop stops nothing twice.
	if err := g.Stop(context.Background()); err != nil || len(r.log) != 6 {
		t.Errorf("second stop: %v %v", err, r.log)
	}
}

// A failed start names the component and leaves only what started for Stop.
func TestStartFailure(t *testing.T) {
	var r recorder
	g := New(nil)
	boom := errors.New("boom")
	err := g.Start(context.Background(), r.comp("a", nil), r.comp("b", boom), r.comp("c", nil))
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), "start b") {
		t.Fatalf("err %v", err)
	}
	if g.Ready() {
		t.Error("ready after a failed start")
	}
	g.Stop(context.Background())
	if got := strings.Join(r.log, ","); got != "start a,start b,stop a" {
		t.Errorf("order %s", got)
	}
}

// Every component stops under the same deadline, not one each.
func TestOneDeadline(t *testing.T) {
	var deadlines []time.Time
	stop := func(name string) Component {
		return Component{Name: name, Start: func(context.Context) error { return nil },
			Stop: func(ctx context.Context) error {
				d, ok := ctx.Deadline()
				if !ok {
					t.Errorf("%s: no deadline", name)
				}
				deadlines = append(deadlines, d)
				return nil
			}}
	}
	g := New(nil)
	g.Start(context.Background(), stop("a"), stop("b"), stop("c"))
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	want, _ := ctx.Deadline()
	g.Stop(ctx)
	if len(deadlines) != 3 {
		t.Fatalf("%d stops", len(deadlines))
	}
	for i, d := range deadlines {
		if !d.Equal(want) {
			t.Errorf("component %d deadline %v, want the one deadline %v", i, d, want)
		}
	}
}

// A component that dies turns Ready false and says why; a death during
// Stop (a listener closed by Stop) is not one.
func TestDeadComponent(t *testing.T) {
	var r recorder
	g := New(nil)
	var fail func(error)
	serve := Component{Name: "http",
		Start: func(context.Context) error { fail = g.Failer("http"); return nil },
		Stop: func(context.Context) error {
			fail(errors.New("use of closed network connection"))
			return nil
		}}
	if err := g.Start(context.Background(), r.comp("store", nil), serve); err != nil {
		t.Fatal(err)
	}
	if !g.Ready() || g.Err() != nil {
		t.Fatal("not ready")
	}
	fail(errors.New("accept: too many open files"))
	if g.Ready() || g.Err() == nil || !strings.Contains(g.Err().Error(), "http: accept") {
		t.Errorf("after a death: ready %v, err %v", g.Ready(), g.Err())
	}

	g2 := New(nil)
	g2.Start(context.Background(), serve)
	fail = g2.Failer("http")
	g2.Stop(context.Background())
	if g2.Err() != nil {
		t.Errorf("a stop counted as a death: %v", g2.Err())
	}
}

// Stop's errors name the component; context.Canceled is not an error.
func TestStopErrors(t *testing.T) {
	g := New(nil)
	bad := errors.New("flush failed")
	g.Start(context.Background(),
		Component{Name: "store", Start: func(context.Context) error { return nil }, Stop: func(context.Context) error { return bad }},
		Component{Name: "web", Start: func(context.Context) error { return nil }, Stop: func(context.Context) error { return context.Canceled }})
	err := g.Stop(context.Background())
	if !errors.Is(err, bad) || !strings.Contains(err.Error(), "stop store") || strings.Contains(err.Error(), "web") {
		t.Errorf("err %v", err)
	}
}

type count int

func (c *count) Inc() { *c++ }

// Recover ends a panic, counts it and logs it; without a panic it does
// nothing.
func TestRecover(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	var n count
	func() {
		defer Recover(log, &n, "panic in test")
		panic("boom")
	}()
	func() {
		defer Recover(log, nil, "panic without a counter")
		panic("bang")
	}()
	func() { defer Recover(log, &n, "no panic") }()
	if n != 1 || !strings.Contains(buf.String(), `msg="panic in test" panic=boom`) ||
		!strings.Contains(buf.String(), "panic=bang") || strings.Contains(buf.String(), "no panic") {
		t.Errorf("count %d, log:\n%s", n, buf.String())
	}
}

// StopContext ends with stop; Wait returns when the group is done, or
// with the context's error first.
func TestStopContextAndWait(t *testing.T) {
	stop := make(chan struct{})
	ctx, cancel := StopContext(stop)
	defer cancel()
	if ctx.Err() != nil {
		t.Fatal("ended before stop")
	}
	close(stop)
	<-ctx.Done()
	var wg sync.WaitGroup
	wg.Add(1)
	ended, cancel2 := context.WithCancel(context.Background())
	cancel2()
	if err := Wait(ended, &wg); !errors.Is(err, context.Canceled) {
		t.Errorf("Wait on an ended context: %v", err)
	}
	wg.Done()
	if err := Wait(context.Background(), &wg); err != nil {
		t.Errorf("Wait on a done group: %v", err)
	}
}
