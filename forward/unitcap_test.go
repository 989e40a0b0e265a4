package forward

import (
	"context"
	"encoding/json"
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
		if v, err := metric.Value(reg, "blowback_forward_spool_capped_total", "action", action, "cap", "unit"); err != nil || v != n {
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
	c := newUnitCap(store.Caps{UnitMaxEvents: 2}, time.Hour, 3)
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

// TestSpoolNetCap: a sender with a whole network (300 /64s of one IPv6
// /48, 200 addresses of one IPv4 /24) gets at most NetMaxEvents of its
// network's events spooled per window, plus each unit's first event of its
// kind (without its raw message), so every unit still reaches the central
// store; the rest is dropped and counted under cap="network". A unit of
// another network is unaffected.
//
// Before: every /64 spooled its own UnitMaxEvents, 300 × 50 events.
func TestSpoolNetCap(t *testing.T) {
	hour := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name  string
		units int
		unit  func(i int) netip.Addr
		other netip.Addr // in another network
	}{
		{"ipv6 /48", 300, func(i int) netip.Addr {
			return netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, 7, byte(i >> 8), byte(i), 15: 1}) // 2001:db8:7:N::1
		}, netip.MustParseAddr("2001:db8:8::1")},
		{"ipv4 /24", 200, func(i int) netip.Addr { return netip.AddrFrom4([4]byte{198, 51, 100, byte(i)}) },
			netip.MustParseAddr("203.0.113.9")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const (
				perUnit = 50
				netMax  = 1000
				netRaw  = 4000
			)
			reg := prometheus.NewRegistry()
			sp, err := OpenSpool("", SpoolOptions{InMemory: true, RawMax: 1 << 10, UnitMaxEvents: 100, NetMaxEvents: netMax,
				NetMaxRawBytes: netRaw, Metrics: reg}, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer sp.Close()
			ctx := context.Background()
			raw := []byte("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123") // 100 bytes
			put := func(ip netip.Addr, at time.Time) *store.Event {
				t.Helper()
				ev := &store.Event{ID: store.NewEventID(), Time: at, ClientIP: ip, Kind: store.KindBounce}
				if err := sp.Put(ctx, ev, raw); err != nil {
					t.Fatal(err)
				}
				return ev
			}
			for i := range tc.units {
				for j := range perUnit {
					put(tc.unit(i), hour.Add(time.Duration(i*perUnit+j)*100*time.Millisecond))
				}
			}
			for j := range perUnit {
				put(tc.other, hour.Add(time.Duration(j)*time.Second))
			}
			items, err := sp.Peek(nil, 0, 0)
			if err != nil {
				t.Fatal(err)
			}
			perUnitSpooled := map[netip.Prefix]int{}
			flood, other, rawBytes := 0, 0, 0
			for _, it := range items {
				var ev store.Event
				if err := json.Unmarshal(it.Event, &ev); err != nil {
					t.Fatal(err)
				}
				if store.Network(ev.ClientIP) == store.Network(tc.other) {
					other++
					continue
				}
				flood++
				perUnitSpooled[store.Unit(ev.ClientIP)]++
				rawBytes += len(it.Raw)
			}
			if flood > netMax+tc.units {
				t.Errorf("%d events of the network spooled, want at most NetMaxEvents + one per unit = %d", flood, netMax+tc.units)
			}
			if rawBytes > netRaw || rawBytes == 0 {
				t.Errorf("%d raw bytes of the network spooled, want 1..%d", rawBytes, netRaw)
			}
			for i := range tc.units {
				if u := store.Unit(tc.unit(i)); perUnitSpooled[u] == 0 {
					t.Errorf("unit %d (%s): nothing spooled: central would not list it", i, u)
				}
			}
			if other != perUnit {
				t.Errorf("the other network's unit: %d events spooled, want all %d", other, perUnit)
			}
			dropped, err := metric.Value(reg, "blowback_forward_spool_capped_total", "action", "dropped", "cap", "network")
			if err != nil || dropped != float64(tc.units*perUnit-flood) {
				t.Errorf("blowback_forward_spool_capped_total{action=dropped,cap=network} = %v (%v), want %d", dropped, err, tc.units*perUnit-flood)
			}
			if n := sp.caps.networks(); n != 2 {
				t.Errorf("%d network windows held, want 2", n)
			}
			if err := metric.Lint(reg); err != nil {
				t.Error(err)
			}
			t.Logf("%d units × %d events: %d spooled, %d dropped", tc.units, perUnit, flood, tc.units*perUnit-flood)
		})
	}
}

// TestSpoolNetCapSameAsStore: the spool and the store decide alike: of
// the same events in the same order, a spool forwards the ones a store
// with the same event caps keeps (units of two networks, several kinds,
// past both the unit's and the network's caps).
func TestSpoolNetCapSameAsStore(t *testing.T) {
	sp, err := OpenSpool("", SpoolOptions{InMemory: true, UnitMaxEvents: 4, NetMaxEvents: 10}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	opts := store.DefaultOptions()
	opts.InMemory, opts.UnitMaxEvents, opts.UnitMaxRawBytes, opts.NetMaxEvents, opts.NetMaxRawBytes = true, 4, 0, 10, 0
	st, err := store.Open("", opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	at := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	kinds := []store.Kind{store.KindBounce, store.KindBounce, store.KindAutoreply, store.KindCallout, store.KindBounce, store.KindChallenge}
	spooled := map[store.EventID]bool{}
	var all []store.EventID
	for i := range 200 {
		ip := netip.AddrFrom4([4]byte{192, 0, byte(2 + i%2), byte(i % 7)}) // 7 units in each of two /24s
		ev := &store.Event{ID: store.NewEventID(), Time: at.Add(time.Duration(i) * 30 * time.Second), ClientIP: ip, Kind: kinds[i%len(kinds)]}
		ok, err := sp.put(ctx, ev, nil)
		if err != nil {
			t.Fatal(err)
		}
		spooled[ev.ID] = ok
		all = append(all, ev.ID)
		c := *ev
		if err := st.Put(ctx, &c, nil); err != nil {
			t.Fatal(err)
		}
	}
	n := 0
	for _, id := range all {
		kept, err := st.Has(id)
		if err != nil {
			t.Fatal(err)
		}
		if kept != spooled[id] {
			t.Errorf("event %s: spooled %v, stored %v", id, spooled[id], kept)
		}
		if kept {
			n++
		}
	}
	if n == 0 || n >= len(all) {
		t.Fatalf("%d of %d events kept: the caps played no part", n, len(all))
	}
	t.Logf("%d of %d events spooled and stored alike", n, len(all))
}

// TestNetCapBounded: network windows are bounded like unit windows, and
// undo gives back to the network what a failed write took.
func TestNetCapBounded(t *testing.T) {
	c := newUnitCap(store.Caps{NetMaxEvents: 2}, time.Hour, 3)
	at := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	ev := func(ip string) *store.Event {
		return &store.Event{ID: store.NewEventID(), Time: at, ClientIP: netip.MustParseAddr(ip), Kind: store.KindBounce}
	}
	for i := range 100 {
		c.admit(ev(netip.AddrFrom4([4]byte{198, 51, byte(i), 1}).String()), nil)
		if n := c.networks(); n > 3 {
			t.Fatalf("%d network windows held, cap 3", n)
		}
	}
	for i := range 3 {
		d := c.admit(ev("203.0.113.7"), nil)
		if !d.event {
			t.Fatalf("admit %d refused", i)
		}
		c.undo(d)
	}
	// Two units of the network: two events fill it; the second unit's first
	// bounce is still kept, its second is not.
	for i, tc := range []struct {
		ip   string
		want bool
	}{{"203.0.113.7", true}, {"203.0.113.7", true}, {"203.0.113.7", false}, {"203.0.113.8", true}, {"203.0.113.8", false}} {
		if d := c.admit(ev(tc.ip), nil); d.event != tc.want || (!d.event && d.by != store.CapNet) {
			t.Fatalf("after undos, admit %d (%s) = %v by %v, want %v", i, tc.ip, d.event, d.by, tc.want)
		}
	}
}
