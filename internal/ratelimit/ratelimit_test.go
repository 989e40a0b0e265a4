package ratelimit

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/blowback-dnsbl/blowback/internal/testenv"
)

var t0 = time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)

func TestBurstThenInterval(t *testing.T) {
	for _, p := range []Policy{FailOpen, FailClosed} {
		t.Run(p.String(), func(t *testing.T) {
			clk := testenv.NewManualClock(t0)
			l := New[string](3, 24*time.Hour, 10, p)
			take := func(want bool, what string) {
				t.Helper()
				now := clk.Now()
				if got := l.Allowed("d", now); got != want {
					t.Errorf("%s: Allowed %v, want %v", what, got, want)
				}
				if got := l.Take("d", now); got != want {
					t.Errorf("%s: Take %v, want %v", what, got, want)
				}
			}
			take(true, "1st at once")
			take(true, "2nd at once")
			take(true, "3rd at once")
			take(false, "4th at once")
			clk.Add(8*time.Hour - time.Second)
			take(false, "just before 8h")
			clk.Add(time.Second)
			take(true, "at 8h")
			take(false, "again at 8h")
			clk.Add(8 * time.Hour)
			take(true, "at 16h")
			clk.Add(3 * 24 * time.Hour) // a long rest: n again, never more
			take(true, "after a rest 1")
			take(true, "after a rest 2")
			take(true, "after a rest 3")
			take(false, "after a rest 4")
			if l.Allowed("other", clk.Now()) != true || l.Len() != 1 {
				t.Errorf("Allowed stored a key: len %d", l.Len())
			}
		})
	}
}

// TestFailClosedFlood: a flood of distinct keys cannot reset a live key;
// it is refused instead, and memory stays at capacity.
func TestFailClosedFlood(t *testing.T) {
	clk := testenv.NewManualClock(t0)
	l := New[int](3, 24*time.Hour, 100, FailClosed)
	const victim = -1
	for range 3 {
		l.Take(victim, clk.Now())
	}
	if l.Take(victim, clk.Now()) {
		t.Fatal("4th take of the victim")
	}
	took := 0
	for i := range 200000 {
		if i%1000 == 0 {
			clk.Add(time.Minute) // the flood takes 200 min: every key stays live
		}
		if l.Take(i, clk.Now()) {
			took++
		}
	}
	if took != 99 || l.Len() != 100 {
		t.Errorf("flood: %d new keys taken, %d held; want 99 and the capacity 100", took, l.Len())
	}
	if l.Allowed(victim, clk.Now()) || l.Take(victim, clk.Now()) {
		t.Error("the flood reset the victim's limit")
	}
	if l.Allowed(1e6, clk.Now()) {
		t.Error("Allowed says yes to a new key that Take would refuse")
	}
	// Once the oldest key has recovered, a new key takes its place.
	clk.Add(8 * time.Hour)
	if !l.Take(1e6, clk.Now()) || l.Len() != 100 {
		t.Errorf("a new key after recovery: len %d", l.Len())
	}
	// The victim was kept: past 8 h it has one request again, not three.
	if !l.Take(victim, clk.Now()) || l.Take(victim, clk.Now()) {
		t.Error("the victim after 8 h: want exactly one more")
	}
}

// TestFailClosedEvictsRecovered: a key whose limit has recovered is
// forgotten for a new one.
func TestFailClosedEvictsRecovered(t *testing.T) {
	l := New[string](2, time.Hour, 2, FailClosed)
	l.Take("a", t0)
	l.Take("b", t0.Add(10*time.Minute))
	if l.Take("c", t0.Add(29*time.Minute)) { // a's tat is t0+30m
		t.Error("c evicted a live a")
	}
	if !l.Take("c", t0.Add(30*time.Minute)) {
		t.Error("c refused though a has recovered")
	}
	if l.keys.Peek("a") != nil || l.keys.Peek("b") == nil || l.Len() != 2 {
		t.Error("a not the one forgotten")
	}
}

// TestFailOpenEvictsLRU: a full FailOpen map forgets its least recently
// used key, live or not.
func TestFailOpenEvictsLRU(t *testing.T) {
	l := New[string](1, time.Hour, 2, FailOpen)
	l.Take("a", t0)
	l.Take("b", t0)
	l.Take("a", t0) // refused, but a is now the most recently used
	if !l.Take("c", t0) {
		t.Fatal("FailOpen refused a new key")
	}
	if l.keys.Peek("b") != nil || l.keys.Peek("a") == nil || l.Len() != 2 {
		t.Fatal("b, the least recently used, not forgotten")
	}
	if !l.Take("b", t0) {
		t.Error("b forgotten but still limited")
	}
	for i := range 100000 {
		l.Take(fmt.Sprint(i), t0)
	}
	if l.Len() != 2 {
		t.Errorf("held %d keys, want the capacity 2", l.Len())
	}
}

// bucket is a reference model of one key: GCRA in its other form, the
// continuous-state leaky bucket of ITU-T I.371, written independently of
// the limiter's virtual scheduling.
type bucket struct {
	x   time.Duration // content
	lct time.Time     // last conforming time
}

type model struct {
	n         int
	w, t, lim time.Duration
	keys      map[int]*bucket
	took      map[int][]time.Time
}

func newModel(n int, w time.Duration) *model {
	t := w / time.Duration(n)
	return &model{n: n, w: w, t: t, lim: w - t, keys: map[int]*bucket{}, took: map[int][]time.Time{}}
}

// conforms reports whether k may have a request at now.
func (m *model) conforms(k int, now time.Time) bool {
	b := m.keys[k]
	if b == nil {
		return true
	}
	return max(b.x-now.Sub(b.lct), 0) <= m.lim
}

func (m *model) take(k int, now time.Time) {
	b := m.keys[k]
	if b == nil {
		b = &bucket{lct: now}
		m.keys[k] = b
	}
	b.x, b.lct = max(b.x-now.Sub(b.lct), 0)+m.t, now
	m.took[k] = append(m.took[k], now)
}

// step is one request in a replay.
type step struct {
	key     int
	advance time.Duration
}

// replay runs steps against a limiter and the model. The limiter must
// agree with the model on every request, except that FailClosed refuses
// a new key when full and its least recently used key is live; FailOpen's evictions are mirrored in
// the model (the key starts over). For every key (since it was last
// forgotten), any span d holds at most n + d/interval of the requests
// allowed.
func replay(t *testing.T, n, capacity int, p Policy, steps []step) {
	t.Helper()
	w := time.Hour
	l := New[int](n, w, capacity, p)
	m := newModel(max(n, 1), w)
	now := t0
	for i, s := range steps {
		now = now.Add(s.advance)
		absent := l.keys.Peek(s.key) == nil
		full := l.keys.Len() >= l.capacity
		if full && p == FailClosed {
			_, tat, _ := l.keys.Oldest()
			full = tat.After(now) // full of live keys: the oldest has not recovered
		}
		if p == FailOpen && absent && full {
			old, _, _ := l.keys.Oldest()
			delete(m.keys, old) // and its history: FailOpen breaks the bound below
			delete(m.took, old)
		}
		want := m.conforms(s.key, now)
		if got := l.Allowed(s.key, now); got != l.Take(s.key, now) {
			t.Fatalf("step %d: Allowed and Take disagree", i)
		} else if got {
			if !want {
				t.Fatalf("step %d: key %d allowed at %v, the model refuses", i, s.key, now.Sub(t0))
			}
			m.take(s.key, now)
		} else if want && !(p == FailClosed && absent && full) {
			t.Fatalf("step %d: key %d refused at %v, the model allows (absent %v, full of live keys %v)", i, s.key, now.Sub(t0), absent, full)
		}
		if l.Len() > l.capacity {
			t.Fatalf("step %d: %d keys held, capacity %d", i, l.Len(), l.capacity)
		}
	}
	for k, ts := range m.took {
		for j := range ts {
			for i := range j {
				if d := ts[j].Sub(ts[i]); time.Duration(j-i+1-m.n)*m.t > d {
					t.Fatalf("key %d: %d requests in %v", k, j-i+1, d)
				}
			}
		}
	}
}

func TestAgainstModel(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for round := range 300 {
		n, capacity := 1+r.IntN(6), 1+r.IntN(8)
		steps := make([]step, 400)
		for i := range steps {
			// Mostly small steps, keys a few more than the capacity.
			steps[i] = step{key: r.IntN(capacity + 4), advance: time.Duration(r.ExpFloat64() * float64(time.Hour) / float64(4*n))}
		}
		for _, p := range []Policy{FailOpen, FailClosed} {
			t.Run(fmt.Sprintf("%d-%s", round, p), func(t *testing.T) { replay(t, n, capacity, p, steps) })
		}
	}
}

// FuzzLimiter replays requests decoded from data: n, capacity and policy
// from the first bytes, then (key, advance) pairs.
func FuzzLimiter(f *testing.F) {
	f.Add([]byte{3, 2, 0, 1, 0, 1, 0, 1, 0, 1, 0, 2, 0, 3, 255, 1, 0})
	f.Add([]byte{1, 1, 1, 0, 0, 1, 0, 0, 200, 1, 10})
	f.Add([]byte{1, 1, 1, 0, 0, 1, 64}) // FailClosed, full: the oldest recovers exactly when the new key comes
	f.Add([]byte{5, 4, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 2, 0, 3, 0, 4, 0, 5, 100, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) < 3 {
			return
		}
		n, capacity, p := int(data[0]%8), int(data[1]%10), Policy(data[2]%2)
		var steps []step
		for b := data[3:]; len(b) >= 2 && len(steps) < 2000; b = b[2:] {
			// advance: 0..255 sixty-fourths of an hour (the window)
			steps = append(steps, step{key: int(b[0] % 16), advance: time.Duration(b[1]) * time.Hour / 64})
		}
		replay(t, n, capacity, p, steps)
	})
}
