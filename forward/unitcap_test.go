package forward

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/blowback-dnsbl/blowback/internal/metric"
	"github.com/blowback-dnsbl/blowback/store"
)

// TestSpoolUnitCap: per unit and hour of event time, the spool keeps the
// first UnitMaxEvents events (raw messages up to UnitMaxRawBytes), then
// only the first event of each new kind (without its raw message), and
// drops the rest; units and windows are counted apart, an IPv6 /64 is one
// unit.
func TestSpoolUnitCap(t *testing.T) {
	reg := prometheus.NewRegistry()
	sp, err := OpenSpool("", SpoolOptions{InMemory: true, RawMax: 1 << 10, UnitMaxEvents: 3, UnitMaxRawBytes: 10, Metrics: reg}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	hour := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	raw4 := []byte("abcd")
	type want struct {
		spooled bool
		raw     bool
	}
	put := func(ip string, at time.Time, kind store.Kind, raw []byte, w want) {
		t.Helper()
		ev := &store.Event{ID: store.NewEventID(), Time: at, ClientIP: netip.MustParseAddr(ip), Kind: kind}
		before := sp.Len()
		spooled, err := sp.put(context.Background(), ev, raw)
		if err != nil {
			t.Fatalf("%s %v: %v", ip, kind, err)
		}
		if spooled != w.spooled || (sp.Len() > before) != w.spooled {
			t.Fatalf("%s %v at %v: spooled %v (backlog %d -> %d), want %v", ip, kind, at, spooled, before, sp.Len(), w.spooled)
		}
		if !spooled {
			return
		}
		items, err := sp.Peek(nil, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		last := items[len(items)-1]
		if last.ID != ev.ID || (last.Raw != nil) != w.raw {
			t.Fatalf("%s %v: last spooled %v raw %q, want %v raw %v", ip, kind, last.ID, last.Raw, ev.ID, w.raw)
		}
	}
	var (
		withRaw = want{true, true}
		noRaw   = want{true, false}
		dropped = want{false, false}
	)
	a := "192.0.2.1"
	put(a, hour.Add(1*time.Minute), store.KindBounce, raw4, withRaw)
	put(a, hour.Add(2*time.Minute), store.KindBounce, raw4, withRaw) // 8 raw bytes
	put(a, hour.Add(3*time.Minute), store.KindBounce, raw4, noRaw)   // 12 > 10: raw cap
	put(a, hour.Add(4*time.Minute), store.KindBounce, raw4, dropped) // event cap
	put(a, hour.Add(5*time.Minute), store.KindBounce, nil, dropped)
	put(a, hour.Add(6*time.Minute), store.KindAutoreply, raw4, noRaw) // first of its kind past the cap
	put(a, hour.Add(7*time.Minute), store.KindAutoreply, raw4, dropped)
	// Another unit, and the same unit in the next hour, start from zero.
	put("192.0.2.2", hour.Add(8*time.Minute), store.KindBounce, raw4, withRaw)
	put(a, hour.Add(61*time.Minute), store.KindBounce, raw4, withRaw)
	// An IPv6 /64 is one unit: three addresses in it fill it.
	for i, ip := range []string{"2001:db8:0:1::1", "2001:db8:0:1::2", "2001:db8:0:1:ffff::3"} {
		put(ip, hour.Add(time.Duration(i)*time.Second), store.KindBounce, nil, noRaw)
	}
	put("2001:db8:0:1::4", hour.Add(9*time.Second), store.KindBounce, nil, dropped)
	put("2001:db8:0:2::1", hour.Add(9*time.Second), store.KindBounce, nil, noRaw) // the next /64

	for action, n := range map[string]float64{"dropped": 4, "raw_dropped": 2} {
		if v, err := metric.Value(reg, "blowback_forward_spool_capped_total", "action", action); err != nil || v != n {
			t.Errorf("blowback_forward_spool_capped_total{action=%q} = %v (%v), want %v", action, v, err, n)
		}
	}
	if err := metric.Lint(reg); err != nil {
		t.Error(err)
	}
}

// TestUnitCapBounded: the cap forgets the least recently used unit window
// beyond maxUnits, and undo gives back what a failed write took.
func TestUnitCapBounded(t *testing.T) {
	c := newUnitCap(2, 0, time.Hour, 3)
	at := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	ev := func(ip string) *store.Event {
		return &store.Event{ID: store.NewEventID(), Time: at, ClientIP: netip.MustParseAddr(ip), Kind: store.KindBounce}
	}
	for i := range 100 {
		c.admit(ev(netip.AddrFrom4([4]byte{198, 51, 100, byte(i)}).String()), nil)
		if n := c.units(); n > 3 {
			t.Fatalf("%d unit windows held, cap 3", n)
		}
	}
	// A failed write is taken back: the unit still has its two events.
	x := ev("203.0.113.7")
	for i := range 3 {
		d := c.admit(x, nil)
		if !d.event {
			t.Fatalf("admit %d refused", i)
		}
		c.undo(d)
	}
	for i, want := range []bool{true, true, false} {
		if d := c.admit(x, nil); d.event != want {
			t.Fatalf("after undos, admit %d = %v, want %v", i, d.event, want)
		}
	}
	// Without caps the spool keeps everything and counts nothing.
	sp, err := OpenSpool("", SpoolOptions{InMemory: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	for range 10 {
		if err := sp.Put(context.Background(), ev("192.0.2.1"), nil); err != nil {
			t.Fatal(err)
		}
	}
	if sp.Len() != 10 {
		t.Fatalf("backlog %d without caps, want 10", sp.Len())
	}
	// A write that fails (closed spool) is not charged to the unit.
	sp2, err := OpenSpool("", SpoolOptions{InMemory: true, UnitMaxEvents: 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	sp2.db.Close()
	if err := sp2.Put(context.Background(), ev("192.0.2.9"), nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("put on a closed db: %v, want ErrClosed", err)
	}
	if d := sp2.caps.admit(ev("192.0.2.9"), nil); !d.event {
		t.Fatal("a failed write was charged to the unit")
	}
}
