package main

import (
	"fmt"
	"html"
	"math"
	"strconv"
	"strings"
)

// A small line-chart renderer: axes with round ticks (linear or log),
// polylines, a legend and vertical markers. Plain SVG, no scripts, so the
// report stays one self-contained file and the plots can be committed.

type series struct {
	Name  string
	Color string
	X, Y  []float64
	Dash  bool
}

type marker struct {
	X     float64
	Label string
}

// tickFmt formats an axis value.
type tickFmt func(float64) string

type chart struct {
	File   string // base name for -svg-dir
	Title  string
	XLabel string
	YLabel string
	LogX   bool
	LogY   bool
	// XTicks, when set, replaces the automatic x ticks (value → label).
	XTicks  [][2]string
	XFmt    tickFmt
	Series  []series
	Markers []marker
	W, H    int
	// YFloor bounds a log y axis from below (latencies of a few µs would
	// otherwise stretch it over decades nobody reads).
	YFloor float64
}

var palette = []string{"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"}

const (
	padL, padR, padB = 64, 16, 46
	legendCols       = 3
	legendW          = 230
)

func (c *chart) SVG() string {
	w, h := c.W, c.H
	if w == 0 {
		w = 760
	}
	if h == 0 {
		h = 300
	}
	padT := 30 + 15*((len(c.Series)+legendCols-1)/legendCols)
	h += padT - 34 // the plot keeps its height whatever the legend needs
	pw, ph := float64(w-padL-padR), float64(h-padT-padB)
	xmin, xmax, ymin, ymax := math.Inf(1), math.Inf(-1), math.Inf(1), math.Inf(-1)
	for _, s := range c.Series {
		for i := range s.X {
			x, y := s.X[i], s.Y[i]
			if (c.LogX && x <= 0) || (c.LogY && y <= 0) || math.IsNaN(y) {
				continue
			}
			xmin, xmax = math.Min(xmin, x), math.Max(xmax, x)
			ymin, ymax = math.Min(ymin, y), math.Max(ymax, y)
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="11">`, w, h, w, h)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="#fff"/>`, w, h)
	fmt.Fprintf(&b, `<text x="%d" y="18" font-size="13" font-weight="bold">%s</text>`, padL, esc(c.Title))
	if math.IsInf(xmin, 1) {
		fmt.Fprintf(&b, `<text x="%d" y="%d" fill="#888">no data</text></svg>`, w/2-20, h/2)
		return b.String()
	}
	if !c.LogY && ymin > 0 {
		ymin = 0
	}
	if xmax == xmin {
		xmax = xmin + 1
	}
	if ymax == ymin {
		ymax = ymin + 1
	}
	var yt []float64
	if c.LogY {
		if c.YFloor > 0 {
			ymin = math.Max(ymin, c.YFloor)
			ymax = math.Max(ymax, c.YFloor*10)
		}
		ymin, ymax = math.Pow(10, math.Floor(math.Log10(ymin))), math.Pow(10, math.Ceil(math.Log10(ymax)))
		yt = logTicks(ymin, ymax)
	} else {
		yt, _ = niceTicks(ymin, ymax, 5)
		ymax = yt[len(yt)-1]
	}
	tx := func(x float64) float64 {
		if c.LogX {
			return float64(padL) + (math.Log10(x)-math.Log10(xmin))/(math.Log10(xmax)-math.Log10(xmin))*pw
		}
		return float64(padL) + (x-xmin)/(xmax-xmin)*pw
	}
	ty := func(y float64) float64 {
		if c.LogY {
			return float64(padT) + ph - (math.Log10(y)-math.Log10(ymin))/(math.Log10(ymax)-math.Log10(ymin))*ph
		}
		return float64(padT) + ph - (y-ymin)/(ymax-ymin)*ph
	}
	// grid and y ticks
	for _, v := range yt {
		y := ty(v)
		fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#e5e5e5"/>`, padL, y, w-padR, y)
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end">%s</text>`, padL-6, y+4, fmtNum(v))
	}
	// x ticks
	if c.XTicks != nil {
		for _, t := range c.XTicks {
			v, _ := strconv.ParseFloat(t[0], 64)
			if v < xmin || v > xmax {
				continue
			}
			x := tx(v)
			fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#e5e5e5"/>`, x, padT, x, h-padB)
			fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">%s</text>`, x, h-padB+15, esc(t[1]))
		}
	} else {
		xt, _ := niceTicks(xmin, xmax, 8)
		for _, v := range xt {
			if v < xmin || v > xmax {
				continue
			}
			x := tx(v)
			label := fmtNum(v)
			if c.XFmt != nil {
				label = c.XFmt(v)
			}
			fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#f0f0f0"/>`, x, padT, x, h-padB)
			fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">%s</text>`, x, h-padB+15, label)
		}
	}
	// axes
	fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#333"/>`, padL, h-padB, w-padR, h-padB)
	fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#333"/>`, padL, padT, padL, h-padB)
	fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle">%s</text>`, padL+int(pw/2), h-8, esc(c.XLabel))
	fmt.Fprintf(&b, `<text transform="translate(14,%d) rotate(-90)" text-anchor="middle">%s</text>`, padT+int(ph/2), esc(c.YLabel))
	// markers
	for _, m := range c.Markers {
		if m.X < xmin || m.X > xmax {
			continue
		}
		x := tx(m.X)
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#999" stroke-dasharray="3,3"/>`, x, padT, x, h-padB)
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" fill="#777" font-size="9" text-anchor="middle">%s</text>`, x, padT-3, esc(m.Label))
	}
	// series
	for i, s := range c.Series {
		col := s.Color
		if col == "" {
			col = palette[i%len(palette)]
		}
		var pts []string
		for j := range s.X {
			x, y := s.X[j], s.Y[j]
			if (c.LogX && x <= 0) || math.IsNaN(y) {
				continue
			}
			if c.LogY {
				y = math.Max(y, ymin)
			}
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", tx(x), ty(math.Min(y, ymax))))
		}
		dash := ""
		if s.Dash {
			dash = ` stroke-dasharray="5,3"`
		}
		if len(pts) == 1 {
			xy := strings.Split(pts[0], ",")
			fmt.Fprintf(&b, `<circle cx="%s" cy="%s" r="3" fill="%s"/>`, xy[0], xy[1], col)
		} else if len(pts) > 1 {
			fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="1.6"%s points="%s"/>`, col, dash, strings.Join(pts, " "))
		}
		// legend
		lx := padL + 4 + (i%legendCols)*legendW
		ly := 34 + (i/legendCols)*15
		fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="2"%s/>`, lx, ly-4, lx+18, ly-4, col, dash)
		fmt.Fprintf(&b, `<text x="%d" y="%d">%s</text>`, lx+22, ly, esc(s.Name))
	}
	b.WriteString(`</svg>`)
	return b.String()
}

// niceTicks returns about n round tick values covering [lo, hi].
func niceTicks(lo, hi float64, n int) ([]float64, float64) {
	span := hi - lo
	raw := span / float64(n)
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	step := mag
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if m*mag >= raw {
			step = m * mag
			break
		}
	}
	start := math.Floor(lo/step) * step
	var out []float64
	for v := start; v <= hi+step*0.999; v += step {
		out = append(out, v)
	}
	return out, step
}

// logTicks returns ticks per decade in [lo, hi]: 1-2-5 over a few
// decades, powers of ten over many.
func logTicks(lo, hi float64) []float64 {
	mult := []float64{1, 2, 5}
	if hi/lo > 1e4 {
		mult = []float64{1}
	}
	var out []float64
	for d := lo; d <= hi*1.0001; d *= 10 {
		for _, m := range mult {
			if v := d * m; v <= hi*1.0001 {
				out = append(out, v)
			}
		}
	}
	return out
}

func fmtNum(v float64) string {
	a := math.Abs(v)
	switch {
	case a == 0:
		return "0"
	case a >= 1e6:
		return strconv.FormatFloat(v/1e6, 'g', 3, 64) + "M"
	case a >= 1e4:
		return strconv.FormatFloat(v/1e3, 'g', 3, 64) + "k"
	case a >= 1:
		return strconv.FormatFloat(v, 'g', 4, 64)
	}
	return strconv.FormatFloat(v, 'g', 2, 64)
}

func esc(s string) string { return html.EscapeString(s) }
