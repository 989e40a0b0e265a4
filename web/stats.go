package web

import (
	"sync"
	"time"

	"github.com/blowback-dnsbl/blowback/internal/lifecycle"
	"github.com/blowback-dnsbl/blowback/store"
)

// Chart windows: hourly buckets for two days, daily buckets for a month.
const (
	hourlyBuckets = 48
	dailyBuckets  = 30
	eventsMetric  = "blowback_listing_events_total" // listing/metrics.go, label "kind"
)

// hitStats counts trap hits per kind in hourly and daily buckets, in
// memory. It is seeded from the store's evidence keys at start (ScanRefs:
// keys only, no values), then fed by the deltas of the listing engine's
// blowback_listing_events_total counter, which counts every committed event
// whatever its path (trap, forwarded, imported).
type hitStats struct {
	mu       sync.Mutex
	hours    map[int64]*[kindCount]uint64 // unix hour -> counts
	days     map[int64]*[kindCount]uint64 // unix day -> counts
	counting bool
	last     map[string]float64 // last value of the counter per kind
}

const kindCount = 8 // store kinds: other .. spam

func newHitStats() *hitStats {
	return &hitStats{hours: map[int64]*[kindCount]uint64{}, days: map[int64]*[kindCount]uint64{}, counting: true}
}

func (h *hitStats) add(k store.Kind, t time.Time, n uint64, now time.Time) {
	if int(k) >= kindCount {
		return
	}
	addBucket(h.hours, t, now, 3600, hourlyBuckets, k, n)
	addBucket(h.days, t, now, 86400, dailyBuckets, k, n)
}

// addBucket adds n events of kind k at t to the bucket of width seconds
// that holds t in m, when it is one of the last count buckets up to now.
func addBucket(m map[int64]*[kindCount]uint64, t, now time.Time, width, count int64, k store.Kind, n uint64) {
	i := t.Unix() / width
	if i <= now.Unix()/width-count || i > now.Unix()/width {
		return
	}
	b := m[i]
	if b == nil {
		b = new([kindCount]uint64)
		m[i] = b
	}
	b[k] += n
}

// prune forgets buckets that left the windows.
func (h *hitStats) prune(now time.Time) {
	for k := range h.hours {
		if k <= now.Unix()/3600-hourlyBuckets {
			delete(h.hours, k)
		}
	}
	for k := range h.days {
		if k <= now.Unix()/86400-dailyBuckets {
			delete(h.days, k)
		}
	}
}

// series returns per-kind counts, oldest bucket first, and each window's start.
func (h *hitStats) series(now time.Time) (hourly map[string][]uint64, hstart time.Time, daily map[string][]uint64, dstart time.Time, counting bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.prune(now)
	hourly, daily = map[string][]uint64{}, map[string][]uint64{}
	h0 := now.Unix()/3600 - hourlyBuckets + 1
	d0 := now.Unix()/86400 - dailyBuckets + 1
	for _, k := range store.Kinds() {
		hs, ds := make([]uint64, hourlyBuckets), make([]uint64, dailyBuckets)
		for i := range hs {
			if b := h.hours[h0+int64(i)]; b != nil {
				hs[i] = b[k]
			}
		}
		for i := range ds {
			if b := h.days[d0+int64(i)]; b != nil {
				ds[i] = b[k]
			}
		}
		hourly[k.String()], daily[k.String()] = hs, ds
	}
	return hourly, time.Unix(h0*3600, 0).UTC(), daily, time.Unix(d0*86400, 0).UTC(), h.counting
}

// runStats seeds the counters from the store, then samples the engine's
// event counter every minute until Stop.
func (s *Server) runStats() {
	defer s.wg.Done()
	defer lifecycle.Recover(s.log, s.metrics.panics, "panic in hit statistics")
	s.startSeeding()
	lifecycle.Every(s.stop, time.Minute, s.sampleCounters)
}

// startSeeding seeds the statistics once, in the background.
func (s *Server) startSeeding() {
	if s.st == nil { // NewWith: no store to read
		return
	}
	s.seedOnce.Do(func() {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer lifecycle.Recover(s.log, s.metrics.panics, "panic seeding hit statistics")
			s.seedStats()
		}()
	})
}

// seedStats counts the evidence already stored, up to now. The counter's
// baseline is taken first, so an event committed during the scan is
// counted once (by the scan if its time is before the start, else by the
// counter delta).
func (s *Server) seedStats() {
	start := s.now()
	s.sampleCounters() // baseline
	ctx, cancel := lifecycle.StopContext(s.stop)
	defer cancel()
	oldest := start.Add(-dailyBuckets * 24 * time.Hour)
	local := newHitStats()
	err := s.st.ScanRefs(ctx, func(r store.Ref) error {
		if r.Time.After(oldest) && r.Time.Before(start) {
			local.add(r.Kind, r.Time, 1, start)
		}
		return nil
	})
	if err != nil {
		s.log.Warn("hit statistics: scanning evidence", "err", err)
	}
	h := s.stats
	h.mu.Lock()
	for k, b := range local.hours {
		if h.hours[k] == nil {
			h.hours[k] = new([kindCount]uint64)
		}
		for i := range b {
			h.hours[k][i] += b[i]
		}
	}
	for k, b := range local.days {
		if h.days[k] == nil {
			h.days[k] = new([kindCount]uint64)
		}
		for i := range b {
			h.days[k][i] += b[i]
		}
	}
	h.counting = false
	h.mu.Unlock()
	s.log.Debug("hit statistics seeded", "took", time.Since(start).Round(time.Millisecond))
}

// sampleCounters adds what the engine counted since the last sample to the
// current hour. The first sample only sets the baseline.
func (s *Server) sampleCounters() {
	if s.gather == nil {
		return
	}
	mfs, err := s.gather.Gather()
	if err != nil && len(mfs) == 0 {
		return
	}
	now := s.now()
	h := s.stats
	h.mu.Lock()
	defer h.mu.Unlock()
	first := h.last == nil
	if first {
		h.last = map[string]float64{}
	}
	for _, mf := range mfs {
		if mf.GetName() != eventsMetric {
			continue
		}
		for _, m := range mf.GetMetric() {
			kind := ""
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "kind" {
					kind = lp.GetValue()
				}
			}
			v := m.GetCounter().GetValue()
			prev, had := h.last[kind]
			h.last[kind] = v
			if first || v < prev {
				continue
			}
			if !had {
				prev = 0 // a kind seen for the first time after the baseline
			}
			k, err := store.ParseKind(kind)
			if err != nil || v == prev {
				continue
			}
			h.add(k, now, uint64(v-prev), now)
		}
	}
	h.prune(now)
}
