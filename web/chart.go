package web

import (
	"fmt"
	"html"
	"html/template"
	"math"
	"strings"
	"time"

	"github.com/blowback-dnsbl/blowback/store"
)

// kindColors: one per kind, after the Okabe–Ito colour-blind-safe palette,
// darkened where needed for 3:1 contrast on white (WCAG 1.4.11).
var kindColors = map[string]string{
	"bounce":    "#0072B2",
	"autoreply": "#B06F00",
	"challenge": "#B8578F",
	"mdn":       "#009E73",
	"callout":   "#D55E00",
	"report":    "#6A5ACD",
	"spam":      "#882255",
	"other":     "#6E6E6E",
}

// chartSeries is one chart's input.
type chartSeries struct {
	ID     string // element id prefix
	Title  string
	Start  time.Time
	Step   time.Duration
	Counts map[string][]uint64
}

// legendItem is a kind shown in a chart's legend with its total.
type legendItem struct {
	Kind  string
	Color string
	Total uint64
}

// chartView is what the status template shows for one chart.
type chartView struct {
	ID     string
	Title  string
	SVG    template.HTML
	Legend []legendItem
	Rows   []chartRow // the data as a table, for screen readers and text browsers
	Kinds  []string
	Total  uint64
}

type chartRow struct {
	Label  string
	Counts []uint64
}

// niceStep rounds v up to 1, 2 or 5 times a power of ten (at least 1).
func niceStep(v float64) float64 {
	if v <= 1 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

// axis returns the top of the y axis and the tick step: whole numbers,
// at most four steps.
func axis(peak uint64) (top, step float64) {
	step = niceStep(float64(peak) / 4)
	top = math.Max(step, math.Ceil(float64(peak)/step)*step)
	return top, step
}

// renderChart draws stacked bars of hits per kind per bucket as an SVG
// (server-side: no script). Only kinds with hits are drawn; every number in
// it is also in the table the template prints beside it.
func renderChart(c chartSeries) chartView {
	kinds := []string{}
	var n int
	for _, k := range store.Kinds() {
		vals := c.Counts[k.String()]
		n = max(n, len(vals))
		var tot uint64
		for _, v := range vals {
			tot += v
		}
		if tot > 0 {
			kinds = append(kinds, k.String())
		}
	}
	view := chartView{ID: c.ID, Title: c.Title, Kinds: kinds}
	stack := make([]uint64, n)
	for _, k := range kinds {
		var tot uint64
		for i, v := range c.Counts[k] {
			stack[i] += v
			tot += v
		}
		view.Legend = append(view.Legend, legendItem{Kind: k, Color: kindColors[k], Total: tot})
		view.Total += tot
	}
	var peak uint64
	for _, v := range stack {
		peak = max(peak, v)
	}
	top, step := axis(peak)

	const W, H = 720.0, 260.0
	const left, right, topPad, bottom = 48.0, 12.0, 12.0, 36.0
	pw, ph := W-left-right, H-topPad-bottom
	bw := pw / float64(max(n, 1))
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="chart" id="%s" viewBox="0 0 %.0f %.0f" role="img" aria-labelledby="%s-title %s-desc" xmlns="http://www.w3.org/2000/svg">`,
		c.ID, W, H, c.ID, c.ID)
	fmt.Fprintf(&b, `<title id="%s-title">%s</title>`, c.ID, html.EscapeString(c.Title))
	desc := fmt.Sprintf("Stacked bars, one per %s, %d hits in total", stepName(c.Step), view.Total)
	for _, l := range view.Legend {
		desc += fmt.Sprintf("; %s %d", l.Kind, l.Total)
	}
	fmt.Fprintf(&b, `<desc id="%s-desc">%s. The same numbers are in the table below.</desc>`, c.ID, html.EscapeString(desc))
	// Grid and y axis, one line per step.
	for v := 0.0; v <= top; v += step {
		y := topPad + ph - v/top*ph
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#c8c8c8" stroke-width="1"/>`, left, y, W-right, y)
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="end" font-size="12" fill="#333">%s</text>`, left-6, y+4, fmtCount(v))
	}
	// Bars.
	for i := 0; i < n; i++ {
		x := left + float64(i)*bw
		y := topPad + ph
		for _, k := range kinds {
			vals := c.Counts[k]
			if i >= len(vals) || vals[i] == 0 {
				continue
			}
			h := float64(vals[i]) / top * ph
			y -= h
			t := c.Start.Add(time.Duration(i) * c.Step)
			fmt.Fprintf(&b, `<rect x="%.2f" y="%.2f" width="%.2f" height="%.2f" fill="%s"><title>%s %s: %d</title></rect>`,
				x+bw*0.1, y, bw*0.8, h, kindColors[k], html.EscapeString(bucketLabel(t, c.Step)), k, vals[i])
		}
	}
	// X axis labels: about six.
	every := max(1, n/6)
	for i := 0; i < n; i += every {
		t := c.Start.Add(time.Duration(i) * c.Step)
		x := left + float64(i)*bw + bw/2
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle" font-size="12" fill="#333">%s</text>`, x, H-bottom+16, axisLabel(t, c.Step))
	}
	fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#333" stroke-width="1"/>`, left, topPad+ph, W-right, topPad+ph)
	fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="end" font-size="12" fill="#333">UTC</text>`, W-right, H-4)
	if view.Total == 0 {
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle" font-size="14" fill="#333">no trap hits in this period</text>`, left+pw/2, topPad+ph/2)
	}
	b.WriteString(`</svg>`)
	view.SVG = template.HTML(b.String()) // built from numbers and escaped text only
	for i := n - 1; i >= 0; i-- {        // newest first
		row := chartRow{Label: bucketLabel(c.Start.Add(time.Duration(i)*c.Step), c.Step)}
		var any bool
		for _, k := range kinds {
			v := uint64(0)
			if i < len(c.Counts[k]) {
				v = c.Counts[k][i]
			}
			any = any || v > 0
			row.Counts = append(row.Counts, v)
		}
		if any {
			view.Rows = append(view.Rows, row)
		}
	}
	return view
}

func stepName(d time.Duration) string {
	if d >= 24*time.Hour {
		return "day"
	}
	return "hour"
}

func fmtCount(v float64) string {
	if v >= 1000 && math.Mod(v, 1000) == 0 {
		return fmt.Sprintf("%.0fk", v/1000)
	}
	return fmt.Sprintf("%.0f", v)
}

func bucketLabel(t time.Time, step time.Duration) string {
	if step >= 24*time.Hour {
		return t.UTC().Format("2006-01-02")
	}
	return t.UTC().Format("2006-01-02 15:00")
}

func axisLabel(t time.Time, step time.Duration) string {
	if step >= 24*time.Hour {
		return t.UTC().Format("Jan 2")
	}
	return t.UTC().Format("Jan 2 15h")
}
