package store_test

import (
	"context"
	"crypto/rand"
	"io/fs"
	"net/netip"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/blowback-dnsbl/blowback/internal/metric"
	"github.com/blowback-dnsbl/blowback/scoring"
	"github.com/blowback-dnsbl/blowback/store"
)

// diskUsage is the space the files under dir take (allocated blocks, so
// sparse preallocated files count for what they hold).
func diskUsage(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			n += st.Blocks * 512
		} else {
			n += fi.Size()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func capEvent(ip string, at time.Time, k store.Kind) *store.Event {
	return &store.Event{ID: store.NewEventID(), Time: at, ClientIP: netip.MustParseAddr(ip), Kind: k,
		Rcpts: []string{"x@trap.blowback.test"}, TrapDomain: "trap.blowback.test", HELO: "flood.example.net"}
}

// TestUnitCapFlood (issue 13, item 2): one unit flooding bounces with big
// raw messages, then callouts, cannot fill the disk: at most UnitMaxEvents
// events and UnitMaxRawBytes of raw messages are stored per window; the rest
// is summarised by kind. The first callout past the cap is still stored (one
// hit per kind), the unit is listed for both kinds, and another unit is
// untouched.
//
// Before: every event and raw message was stored (~7 MB/s from one address
// with 1 MB bounces until the disk guard made the trap answer 452 to all).
func TestUnitCapFlood(t *testing.T) {
	dir := t.TempDir()
	opts := store.DefaultOptions()
	opts.MinFreeBytes = -1
	opts.UnitWindow = time.Hour
	opts.UnitMaxEvents = 50
	opts.UnitMaxRawBytes = 1 << 20
	st, err := store.Open(dir, opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	base := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	raw := make([]byte, 64<<10) // incompressible: 64 KiB on disk each
	rand.Read(raw)
	const bounces, callouts = 400, 200
	flood := netip.MustParseAddr("192.0.2.1")
	for i := range bounces {
		if err := st.Put(ctx, capEvent("192.0.2.1", base.Add(time.Duration(i)*time.Second), store.KindBounce), raw); err != nil {
			t.Fatal(err)
		}
	}
	for i := range callouts {
		if err := st.Put(ctx, capEvent("192.0.2.1", base.Add(time.Duration(bounces+i)*time.Second), store.KindCallout), nil); err != nil {
			t.Fatal(err)
		}
	}
	// Another unit, within its caps: everything kept.
	other := netip.MustParseAddr("192.0.2.2")
	var otherIDs []store.EventID
	for i := range 10 {
		e := capEvent("192.0.2.2", base.Add(time.Duration(i)*time.Second), store.KindBounce)
		otherIDs = append(otherIDs, e.ID)
		if err := st.Put(ctx, e, raw); err != nil {
			t.Fatal(err)
		}
	}

	refs, err := st.Refs(netip.PrefixFrom(flood, 32))
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[store.Kind]int{}
	for _, r := range refs {
		kinds[r.Kind]++
	}
	if len(refs) != opts.UnitMaxEvents+1 || kinds[store.KindBounce] != opts.UnitMaxEvents || kinds[store.KindCallout] != 1 {
		t.Errorf("flooding unit: %d events stored (%v), want %d bounces and 1 callout", len(refs), kinds, opts.UnitMaxEvents)
	}
	rawKept := 0
	for _, r := range refs {
		if _, err := st.Raw(r.ID); err == nil {
			rawKept++
		}
	}
	if max := int(opts.UnitMaxRawBytes / int64(len(raw))); rawKept > max || rawKept == 0 {
		t.Errorf("flooding unit: %d raw messages kept, want 1..%d", rawKept, max)
	}
	sums, err := st.Summaries(ctx, netip.PrefixFrom(flood, 32), 0)
	if err != nil || len(sums) != 1 {
		t.Fatalf("summaries: %+v, %v", sums, err)
	}
	u := sums[0]
	if u.Summarised[store.KindBounce] != bounces-opts.UnitMaxEvents || u.Summarised[store.KindCallout] != callouts-1 ||
		u.Events != opts.UnitMaxEvents+1 || u.RawBytes > opts.UnitMaxRawBytes || !u.Window.Equal(base) {
		t.Errorf("summary %+v", u)
	}
	if s, d := st.CapStats(); s != uint64(bounces-opts.UnitMaxEvents+callouts-1) || d == 0 {
		t.Errorf("cap stats: summarised %d, raw dropped %d", s, d)
	}
	reg := prometheus.NewRegistry()
	st.RegisterMetrics(reg)
	summarised, err1 := metric.Value(reg, "blowback_store_summarised_events_total", "cap", "unit")
	dropped, err2 := metric.Value(reg, "blowback_store_raw_dropped_total", "cap", "unit")
	if summarised != float64(bounces-opts.UnitMaxEvents+callouts-1) || dropped == 0 || err1 != nil || err2 != nil {
		t.Errorf("metrics: summarised %v (%v), raw dropped %v (%v)", summarised, err1, dropped, err2)
	}

	// The other unit is unaffected.
	for _, id := range otherIDs {
		if _, err := st.Raw(id); err != nil {
			t.Errorf("other unit: raw of %s: %v", id, err)
		}
	}
	if refs, _ := st.Refs(netip.PrefixFrom(other, 32)); len(refs) != 10 {
		t.Errorf("other unit: %d events, want 10", len(refs))
	}

	// Listing still happens, for both kinds.
	pol := scoring.DefaultPolicy()
	d := scoring.Decide(&pol, scoring.Unit(flood), refs, nil, base.Add(time.Hour))
	if !d.Listed || !d.Kinds.Has(store.KindBounce) || !d.Kinds.Has(store.KindCallout) {
		t.Errorf("flooding unit not listed for bounce and callout: %+v", d)
	}

	// Bounded on disk: 400 x 64 KiB offered, about 1 MiB kept.
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	offered := int64(bounces * len(raw))
	if du := diskUsage(t, dir); du > 8<<20 {
		t.Errorf("disk usage %d bytes after %d bytes of raw messages from one unit, want under 8 MiB", du, offered)
	} else {
		t.Logf("disk usage %.1f MiB after %.1f MiB offered by one unit", float64(du)/(1<<20), float64(offered)/(1<<20))
	}
}

// TestUnitCapWindowsAndV6: the cap is per window of event time and per IPv6
// /64 (many addresses in one /64 are one unit).
func TestUnitCapWindowsAndV6(t *testing.T) {
	opts := store.DefaultOptions()
	opts.InMemory = true
	opts.UnitWindow = time.Hour
	opts.UnitMaxEvents = 5
	st, err := store.Open("", opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	base := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	for i := range 20 {
		ip := netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 15: byte(i + 1)}).String() // 2001:db8::N
		if err := st.Put(ctx, capEvent(ip, base.Add(time.Duration(i)*time.Minute), store.KindBounce), nil); err != nil {
			t.Fatal(err)
		}
	}
	// The next hour is a new window.
	for i := range 3 {
		if err := st.Put(ctx, capEvent("2001:db8::ff", base.Add(time.Hour+time.Duration(i)*time.Minute), store.KindBounce), nil); err != nil {
			t.Fatal(err)
		}
	}
	unit := netip.MustParsePrefix("2001:db8::/64")
	refs, _ := st.Refs(unit)
	if len(refs) != 5+3 {
		t.Errorf("%d events stored, want 5 in the first hour and 3 in the second", len(refs))
	}
	sums, _ := st.Summaries(ctx, netip.MustParsePrefix("2001:db8::7/128"), 0)
	if len(sums) != 2 || sums[0].Events != 3 || sums[1].Events != 5 || sums[1].Summarised[store.KindBounce] != 15 ||
		sums[0].Unit != unit {
		t.Errorf("summaries %+v", sums)
	}
}

// TestUnitCapDeterministic: two stores given the same events in the same
// order (a replica folding the same log) keep the same events and the same
// summaries, unit and network, whatever the host clock says.
func TestUnitCapDeterministic(t *testing.T) {
	opts := store.DefaultOptions()
	opts.InMemory = true
	opts.UnitMaxEvents = 7
	opts.UnitMaxRawBytes = 3000
	opts.NetMaxEvents = 12
	opts.NetMaxRawBytes = 7000
	var evs []*store.Event
	base := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC) // long ago: the host clock plays no part
	senders := []string{"198.51.100.7", "198.51.100.8", "198.51.100.9", "198.51.100.7", "198.51.100.200"}
	for i := range 150 {
		evs = append(evs, capEvent(senders[i%len(senders)], base.Add(time.Duration(i)*41*time.Second), store.Kind(1+i%5)))
	}
	raw := make([]byte, 1000)
	rand.Read(raw)
	network := netip.MustParsePrefix("198.51.100.0/24")
	run := func() (ids map[store.EventID]bool, sums, nets []store.UnitSummary) {
		st, err := store.Open("", opts, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		ctx := context.Background()
		for _, e := range evs {
			c := *e
			if err := st.Put(ctx, &c, raw); err != nil {
				t.Fatal(err)
			}
		}
		refs, _ := st.Refs(network)
		ids = map[store.EventID]bool{}
		for _, r := range refs {
			_, err := st.Raw(r.ID)
			ids[r.ID] = err == nil
		}
		sums, _ = st.Summaries(ctx, network, 0)
		nets, _ = st.NetSummaries(ctx, network, 0)
		return ids, sums, nets
	}
	ids1, sums1, nets1 := run()
	ids2, sums2, nets2 := run()
	if len(ids1) != len(ids2) || len(sums1) != len(sums2) || len(sums1) < 2 || len(nets1) != len(nets2) || len(nets1) < 2 {
		t.Fatalf("runs differ or too few windows: %d/%d events, %d/%d summaries, %d/%d network summaries",
			len(ids1), len(ids2), len(sums1), len(sums2), len(nets1), len(nets2))
	}
	if len(ids1) >= len(evs) {
		t.Fatalf("%d of %d events stored: the caps played no part", len(ids1), len(evs))
	}
	for id, raw := range ids1 {
		if r2, ok := ids2[id]; !ok || r2 != raw {
			t.Errorf("event %s: first run kept (raw %v), second %v/%v", id, raw, ok, r2)
		}
	}
	same := func(what string, s1, s2 []store.UnitSummary) {
		t.Helper()
		summarised := 0
		for i := range s1 {
			a, b := s1[i], s2[i]
			summarised += a.SummarisedTotal()
			if a.Unit != b.Unit || a.Events != b.Events || a.RawBytes != b.RawBytes || a.SummarisedTotal() != b.SummarisedTotal() ||
				a.RawDropped != b.RawDropped || !a.Window.Equal(b.Window) || !a.First.Equal(b.First) || !a.Last.Equal(b.Last) {
				t.Errorf("%s %d: %+v vs %+v", what, i, a, b)
			}
		}
		if summarised == 0 {
			t.Errorf("%s: nothing summarised", what)
		}
	}
	same("unit summary", sums1, sums2)
	same("network summary", nets1, nets2)
}

// TestNetCap: a sender with a whole network (300 /64s of one IPv6 /48, or
// 200 addresses of one IPv4 /24) cannot store its network's units' caps
// added up: past NetMaxEvents per network and window an event is
// summarised, except each unit's first of its kind, so every unit is still
// stored (and listed); a unit of another network is unaffected. The
// network's summary is the sum of its units'.
//
// Before: every /64 stored its own UnitMaxEvents, 300 × 50 events.
func TestNetCap(t *testing.T) {
	base := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name        string
		units       int
		unit        func(i int) netip.Addr // the i-th unit of the flooding network
		net, other  netip.Prefix
		otherSender netip.Addr // in the other network
	}{
		{"ipv6 /48", 300, func(i int) netip.Addr {
			return netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, 7, byte(i >> 8), byte(i), 15: 1}) // 2001:db8:7:N::1
		}, netip.MustParsePrefix("2001:db8:7::/48"), netip.MustParsePrefix("2001:db8:8::/64"), netip.MustParseAddr("2001:db8:8::1")},
		{"ipv4 /24", 200, func(i int) netip.Addr { return netip.AddrFrom4([4]byte{198, 51, 100, byte(i)}) },
			netip.MustParsePrefix("198.51.100.0/24"), netip.MustParsePrefix("203.0.113.9/32"), netip.MustParseAddr("203.0.113.9")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := store.DefaultOptions()
			opts.InMemory = true
			opts.UnitMaxEvents = 100
			opts.NetMaxEvents = 1000
			opts.NetMaxRawBytes = 20 << 10
			st, err := store.Open("", opts, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			ctx := context.Background()
			raw := make([]byte, 1000)
			rand.Read(raw)
			const perUnit = 50
			// 50 units at a time (so the store commits in groups): the
			// network is full after the first few waves, and the later
			// units' first events are stored past its cap.
			const wave = 50
			for w := 0; w < tc.units; w += wave {
				var wg sync.WaitGroup
				for i := w; i < min(w+wave, tc.units); i++ {
					wg.Add(1)
					go func() {
						defer wg.Done()
						ip := tc.unit(i).String()
						for j := range perUnit {
							r := raw
							if j%5 != 0 {
								r = nil // fewer to compress; 3000 raw messages are still far past NetMaxRawBytes
							}
							if err := st.Put(ctx, capEvent(ip, base.Add(time.Duration(i*perUnit+j)*100*time.Millisecond), store.KindBounce), r); err != nil {
								t.Error(err)
								return
							}
						}
					}()
				}
				wg.Wait()
			}
			// A unit of another network, after the flood: unaffected.
			for j := range perUnit {
				if err := st.Put(ctx, capEvent(tc.otherSender.String(), base.Add(time.Duration(j)*time.Second), store.KindBounce), raw); err != nil {
					t.Fatal(err)
				}
			}

			refs, err := st.Refs(tc.net)
			if err != nil {
				t.Fatal(err)
			}
			if len(refs) > opts.NetMaxEvents+tc.units || len(refs) <= opts.NetMaxEvents {
				t.Errorf("%d events stored in %s, want more than NetMaxEvents (units' first events past the cap) and at most NetMaxEvents + one per unit = %d",
					len(refs), tc.net, opts.NetMaxEvents+tc.units)
			}
			perUnitStored := map[netip.Prefix]int{}
			rawKept := 0
			for _, r := range refs {
				perUnitStored[store.Unit(r.Addr)]++
				if _, err := st.Raw(r.ID); err == nil {
					rawKept++
				}
			}
			for i := range tc.units {
				if u := store.Unit(tc.unit(i)); perUnitStored[u] == 0 {
					t.Errorf("unit %d (%s): no event stored: it would not be listed", i, u)
				}
			}
			if want := int(opts.NetMaxRawBytes) / len(raw); rawKept > want || rawKept == 0 {
				t.Errorf("%d raw messages kept in the network, want 1..%d (NetMaxRawBytes)", rawKept, want)
			}
			if refs, _ := st.Refs(tc.other); len(refs) != perUnit {
				t.Errorf("the other network's unit: %d events stored, want all %d", len(refs), perUnit)
			}

			// The network's summary sums its units'.
			nets, err := st.NetSummaries(ctx, netip.PrefixFrom(tc.unit(3), tc.unit(3).BitLen()), 0)
			if err != nil || len(nets) != 1 || nets[0].Unit != tc.net || !nets[0].Window.Equal(base) {
				t.Fatalf("network summaries: %+v, %v", nets, err)
			}
			n := nets[0]
			units, err := st.Summaries(ctx, tc.net, 0)
			if err != nil {
				t.Fatal(err)
			}
			var events, summarised, rawDropped int
			for _, u := range units {
				events += u.Events
				summarised += u.SummarisedTotal()
				rawDropped += u.RawDropped
			}
			if n.Events != len(refs) || events != len(refs) || n.SummarisedTotal() != summarised ||
				n.Events+n.SummarisedTotal() != tc.units*perUnit || n.RawDropped != rawDropped || n.RawBytes > opts.NetMaxRawBytes {
				t.Errorf("network summary %+v; units: %d events, %d summarised, %d raw dropped; %d stored", n, events, summarised, rawDropped, len(refs))
			}
			if other, _ := st.NetSummaries(ctx, tc.other, 0); len(other) != 1 || other[0].Events != perUnit || other[0].SummarisedTotal() != 0 {
				t.Errorf("other network's summary: %+v", other)
			}
			reg := prometheus.NewRegistry()
			st.RegisterMetrics(reg)
			byNet, err := metric.Value(reg, "blowback_store_summarised_events_total", "cap", "network")
			if err != nil || byNet != float64(summarised) || summarised == 0 {
				t.Errorf("blowback_store_summarised_events_total{cap=network} = %v (%v), want %d", byNet, err, summarised)
			}
			if err := metric.Lint(reg); err != nil {
				t.Error(err)
			}
			t.Logf("%d units × %d events: %d stored, %d summarised, %d raw messages kept", tc.units, perUnit, len(refs), summarised, rawKept)
		})
	}
}

// TestNetCapFirstOfKind: a unit whose network is over its cap still gets
// its first event of each kind stored (without its raw message), and only
// that; with network caps off (0) nothing is counted per network.
func TestNetCapFirstOfKind(t *testing.T) {
	opts := store.DefaultOptions()
	opts.InMemory = true
	opts.NetMaxEvents = 10
	st, err := store.Open("", opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	for i := range 10 {
		if err := st.Put(ctx, capEvent("192.0.2.1", at.Add(time.Duration(i)*time.Second), store.KindBounce), nil); err != nil {
			t.Fatal(err)
		}
	}
	// The network is full: 192.0.2.2 gets one event per kind, without raw.
	var kept []store.EventID
	for i, k := range []store.Kind{store.KindBounce, store.KindBounce, store.KindCallout, store.KindAutoreply, store.KindCallout} {
		e := capEvent("192.0.2.2", at.Add(time.Duration(20+i)*time.Second), k)
		if err := st.Put(ctx, e, []byte("raw message")); err != nil {
			t.Fatal(err)
		}
		if ok, _ := st.Has(e.ID); ok {
			kept = append(kept, e.ID)
		}
	}
	if len(kept) != 3 {
		t.Errorf("%d of 192.0.2.2's events stored, want 3 (one per kind)", len(kept))
	}
	for _, id := range kept {
		if _, err := st.Raw(id); err == nil {
			t.Errorf("event %s stored with its raw message past the network's cap", id)
		}
	}
	// The next window starts over.
	e := capEvent("192.0.2.2", at.Add(time.Hour), store.KindBounce)
	if err := st.Put(ctx, e, []byte("raw")); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Raw(e.ID); err != nil {
		t.Errorf("next window: %v", err)
	}

	// Off: no network summary, every event stored.
	opts.NetMaxEvents, opts.NetMaxRawBytes = 0, 0
	st2, err := store.Open("", opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st2.Close()
	for i := range 30 {
		ip := netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}).String()
		if err := st2.Put(ctx, capEvent(ip, at, store.KindBounce), nil); err != nil {
			t.Fatal(err)
		}
	}
	refs, _ := st2.Refs(netip.MustParsePrefix("192.0.2.0/24"))
	nets, _ := st2.NetSummaries(ctx, netip.MustParsePrefix("192.0.2.0/24"), 0)
	if len(refs) != 30 || len(nets) != 0 {
		t.Errorf("network caps off: %d events stored, %d network summaries; want 30, 0", len(refs), len(nets))
	}
}
