package metric

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// Every constructor registers its collector, vectors show their listed
// values before the first event, and the result passes promlint.
func TestRegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	r := New(reg)
	r.Counter("blowback_test_events_total", "Events.")
	r.CounterVec("blowback_test_results_total", "Results, by result.", []string{"result"}, "ok", "error")
	r.Gauge("blowback_test_entries", "Entries.")
	r.GaugeVec("blowback_test_last_timestamp_seconds", "Last time, by node.", []string{"node"})
	r.GaugeFunc("blowback_test_backlog_events", "Backlog.", func() float64 { return 3 })
	r.Histogram("blowback_test_duration_seconds", "Duration.", prometheus.DefBuckets)
	r.HistogramVec("blowback_test_request_duration_seconds", "Duration, by outcome.", prometheus.DefBuckets, []string{"outcome"}, "ok")
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, mf := range mfs {
		got[mf.GetName()] = len(mf.GetMetric())
	}
	// GaugeVec without values has no series yet, so it is not gathered.
	for name, n := range map[string]int{"blowback_test_events_total": 1, "blowback_test_results_total": 2, "blowback_test_entries": 1,
		"blowback_test_backlog_events": 1, "blowback_test_duration_seconds": 1, "blowback_test_request_duration_seconds": 1} {
		if got[name] != n {
			t.Errorf("%s: %d series, want %d", name, got[name], n)
		}
	}
	if v, err := Value(reg, "blowback_test_backlog_events"); v != 3 || err != nil {
		t.Errorf("Value = %v, %v; want 3", v, err)
	}
	if v, err := Value(reg, "blowback_test_results_total", "result", "error"); v != 0 || err != nil {
		t.Errorf("Value of a preset label = %v, %v", v, err)
	}
	if _, err := Value(reg, "blowback_test_results_total", "result", "nosuch"); err == nil {
		t.Error("Value of a missing label found")
	}
	if err := Lint(reg); err != nil {
		t.Error(err)
	}
	bad := prometheus.NewRegistry()
	New(bad).Counter("blowback_test_events", "Not a counter name.")
	if Lint(bad) == nil {
		t.Error("a counter without _total passed")
	}
	// Without a registry nothing is registered, and nothing panics.
	New(nil).CounterVec("blowback_test_results_total", "Results.", []string{"result"}, "ok")
	defer func() {
		if recover() == nil {
			t.Error("values for a two-label vector did not panic")
		}
	}()
	New(nil).CounterVec("blowback_test_pairs_total", "Pairs.", []string{"a", "b"}, "x")
}

// Reusing hands back what is already registered; New would panic. Funcs
// and a package's own collectors are gathered like the rest.
func TestReusingAndFuncs(t *testing.T) {
	reg := prometheus.NewRegistry()
	a := Reusing(reg).CounterVec("blowback_test_requests_total", "Requests, by result.", []string{"result"}, "ok")
	b := Reusing(reg).CounterVec("blowback_test_requests_total", "Requests, by result.", []string{"result"}, "ok")
	if a != b {
		t.Error("Reusing built a second collector")
	}
	r := New(reg)
	r.CounterFunc("blowback_test_dropped_total", "Dropped.", func() float64 { return 7 })
	r.Register(prometheus.NewCounter(prometheus.CounterOpts{Name: "blowback_test_own_total", Help: "Own."}))
	for name, want := range map[string]float64{"blowback_test_dropped_total": 7, "blowback_test_own_total": 0} {
		if v, err := Value(reg, name); v != want || err != nil {
			t.Errorf("%s = %v, %v; want %v", name, v, err, want)
		}
	}
	defer func() {
		if recover() == nil {
			t.Error("New registering a name twice did not panic")
		}
	}()
	r.CounterVec("blowback_test_requests_total", "Requests, by result.", []string{"result"})
}
