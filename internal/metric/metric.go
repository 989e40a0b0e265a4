// Package metric is the one way blowback's packages build their Prometheus
// collectors. Each constructor takes the name and help text, registers the
// collector on the package's registry (none when it is nil) and, for a
// vector with one label, creates the listed label values at zero so that
// they are scraped before their first event. Names follow STYLE.md
// (blowback_<subsystem>_<name>_<unit>); the label values a vector may take
// are listed in a comment where it is built.
package metric

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
)

// Registry builds collectors registered on one Registerer.
type Registry struct {
	reg   prometheus.Registerer
	reuse bool
}

// New returns a Registry on reg; a nil reg builds collectors without
// registering them (tests, and packages used without metrics).
func New(reg prometheus.Registerer) Registry { return Registry{reg: reg} }

// Reusing is New for constructors that may run again on the same reg (a
// setting applied a second time): a collector already registered there
// under the same name and labels is returned instead of the new one.
func Reusing(reg prometheus.Registerer) Registry { return Registry{reg: reg, reuse: true} }

// add registers c on r and returns it.
func add[C prometheus.Collector](r Registry, c C) C {
	if r.reg == nil {
		return c
	}
	if !r.reuse {
		r.reg.MustRegister(c)
		return c
	}
	if err := r.reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if old, ok := are.ExistingCollector.(C); ok {
				return old
			}
		}
		panic(err)
	}
	return c
}

// Register registers a collector of the package's own (one that sums its
// counters on scrape, say) on r.
func (r Registry) Register(c prometheus.Collector) { add(r, c) }

// addVec creates values in v (c's vector, with one label) and registers c.
func addVec[C prometheus.Collector](r Registry, c C, v *prometheus.MetricVec, values []string) C {
	for _, x := range values {
		if _, err := v.GetMetricWithLabelValues(x); err != nil {
			panic(err) // a vector with more than one label, or a bad value: a bug at the call
		}
	}
	return add(r, c)
}

// Counter is a counter (name ends in _total).
func (r Registry) Counter(name, help string) prometheus.Counter {
	return add(r, prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help}))
}

// CounterVec is a counter with labels; values, for a one-label vector, are
// created at zero.
func (r Registry) CounterVec(name, help string, labels []string, values ...string) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
	return addVec(r, c, c.MetricVec, values)
}

// CounterFunc is a counter read from fn at every scrape.
func (r Registry) CounterFunc(name, help string, fn func() float64) prometheus.CounterFunc {
	return add(r, prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, fn))
}

// Gauge is a gauge.
func (r Registry) Gauge(name, help string) prometheus.Gauge {
	return add(r, prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help}))
}

// GaugeVec is a gauge with labels; values as for CounterVec.
func (r Registry) GaugeVec(name, help string, labels []string, values ...string) *prometheus.GaugeVec {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, labels)
	return addVec(r, g, g.MetricVec, values)
}

// GaugeFunc is a gauge read from fn at every scrape.
func (r Registry) GaugeFunc(name, help string, fn func() float64) prometheus.GaugeFunc {
	return add(r, prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, fn))
}

// Histogram is a histogram with the given buckets (name ends in the unit,
// e.g. _seconds).
func (r Registry) Histogram(name, help string, buckets []float64) prometheus.Histogram {
	return add(r, prometheus.NewHistogram(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets}))
}

// HistogramVec is a histogram with labels; values as for CounterVec.
func (r Registry) HistogramVec(name, help string, buckets []float64, labels []string, values ...string) *prometheus.HistogramVec {
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets}, labels)
	return addVec(r, h, h.MetricVec, values)
}

// Lint gathers g and runs promlint over it (STYLE.md: a test runs it over
// every package's registry); nil when every metric passes.
func Lint(g prometheus.Gatherer) error {
	mfs, err := g.Gather()
	if err != nil {
		return err
	}
	probs, err := promlint.NewWithMetricFamilies(mfs).Lint()
	if err != nil {
		return err
	}
	if len(probs) > 0 {
		return fmt.Errorf("promlint: %v", probs)
	}
	return nil
}

// Value is the value of the counter or gauge name in g whose labels
// include the given name/value pairs (tests and checks read it).
func Value(g prometheus.Gatherer, name string, labelPairs ...string) (float64, error) {
	mfs, err := g.Gather()
	if err != nil {
		return 0, err
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, lp := range m.GetLabel() {
				have[lp.GetName()] = lp.GetValue()
			}
			match := true
			for i := 0; i+1 < len(labelPairs); i += 2 {
				match = match && have[labelPairs[i]] == labelPairs[i+1]
			}
			switch {
			case !match:
			case m.Counter != nil:
				return m.Counter.GetValue(), nil
			case m.Gauge != nil:
				return m.Gauge.GetValue(), nil
			}
		}
	}
	return 0, fmt.Errorf("metric %s%v not found", name, labelPairs)
}
