package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strings"
)

// row is one measurement of a results file: a result and its loss.
type row struct {
	result
	LossPct float64 `json:"loss_pct"`
}

// readRows reads the JSON lines of path.
func readRows(path string) ([]row, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var rows []row
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		var r row
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		rows = append(rows, r)
	}
	return rows, sc.Err()
}

// report writes the Markdown table of rows to w, each loss level with the
// ratios of the quicmsg measurements to the baseline's, and the SVG plot
// of the p50, p99 and p99.9 to svgPath.
func report(w io.Writer, rows []row, baseline, svgPath string) error {
	fmt.Fprintln(w, "| loss | stack | round trips | p50 | p99 | p99.9 | p50 / baseline | p99 / baseline | p99.9 / baseline | bulk MiB/s |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|")
	for _, r := range rows {
		base := find(rows, r.LossPct, baseline)
		ratio := func(a, b float64) string {
			if base == nil || b == 0 {
				return "–"
			}
			return fmt.Sprintf("%.2f", a/b)
		}
		var rb result
		if base != nil {
			rb = base.result
		}
		fmt.Fprintf(w, "| %.1f %% | %s | %d | %s | %s | %s | %s | %s | %s | %.0f |\n",
			r.LossPct, r.Name, r.Samples, dur(r.P50us), dur(r.P99us), dur(r.P999us),
			ratio(r.P50us, rb.P50us), ratio(r.P99us, rb.P99us), ratio(r.P999us, rb.P999us), r.BulkMiBs)
	}
	if svgPath == "" {
		return nil
	}
	return os.WriteFile(svgPath, []byte(plot(rows)), 0o644)
}

func find(rows []row, loss float64, name string) *row {
	for i := range rows {
		if rows[i].LossPct == loss && rows[i].Name == name {
			return &rows[i]
		}
	}
	return nil
}

// dur formats microseconds.
func dur(us float64) string {
	if us >= 1000 {
		return fmt.Sprintf("%.1f ms", us/1000)
	}
	return fmt.Sprintf("%.0f µs", us)
}

// plot draws, for p50, p99 and p99.9 side by side, each stack's latency
// against the loss, on a logarithmic axis.
func plot(rows []row) string {
	const panelW, panelH, left, top, bottom = 300.0, 260.0, 60.0, 40.0, 50.0
	var names []string
	var losses []float64
	lo, hi := math.Inf(1), 0.0
	for _, r := range rows {
		if !slices.Contains(names, r.Name) {
			names = append(names, r.Name)
		}
		if !slices.Contains(losses, r.LossPct) {
			losses = append(losses, r.LossPct)
		}
		for _, v := range []float64{r.P50us, r.P99us, r.P999us} {
			if v > 0 {
				lo, hi = min(lo, v), max(hi, v)
			}
		}
	}
	lo, hi = math.Pow(10, math.Floor(math.Log10(lo))), math.Pow(10, math.Ceil(math.Log10(hi)))
	colors := []string{"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e"}
	var b strings.Builder
	width := 3*(panelW+left) + 20
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" font-family="sans-serif" font-size="11">`+"\n", width, panelH+top+bottom+20*float64(len(names)))
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	y := func(v float64) float64 {
		return top + panelH - panelH*(math.Log10(v)-math.Log10(lo))/(math.Log10(hi)-math.Log10(lo))
	}
	for p, title := range []string{"p50", "p99", "p99.9"} {
		x0 := left + float64(p)*(panelW+left)
		x := func(i int) float64 { return x0 + panelW*float64(i)/float64(max(len(losses)-1, 1)) }
		fmt.Fprintf(&b, `<text x="%.0f" y="20" font-size="13">round trip %s (log scale) against packet loss</text>`+"\n", x0, title)
		fmt.Fprintf(&b, `<rect x="%.0f" y="%.0f" width="%.0f" height="%.0f" fill="none" stroke="#888"/>`+"\n", x0, top, panelW, panelH)
		for d := lo; d <= hi*1.001; d *= 10 {
			fmt.Fprintf(&b, `<line x1="%.0f" x2="%.0f" y1="%.1f" y2="%.1f" stroke="#ddd"/><text x="%.0f" y="%.1f" text-anchor="end">%s</text>`+"\n", x0, x0+panelW, y(d), y(d), x0-4, y(d)+4, dur(d))
		}
		for i, l := range losses {
			fmt.Fprintf(&b, `<text x="%.1f" y="%.0f" text-anchor="middle">%.1f %%</text>`+"\n", x(i), top+panelH+16, l)
		}
		for n, name := range names {
			var pts []string
			for i, l := range losses {
				if r := find(rows, l, name); r != nil {
					v := []float64{r.P50us, r.P99us, r.P999us}[p]
					pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(i), y(max(v, lo))))
				}
			}
			c := colors[n%len(colors)]
			fmt.Fprintf(&b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="2"/>`+"\n", strings.Join(pts, " "), c)
		}
	}
	for n, name := range names {
		ly := top + panelH + bottom + 20*float64(n)
		fmt.Fprintf(&b, `<line x1="%.0f" x2="%.0f" y1="%.0f" y2="%.0f" stroke="%s" stroke-width="3"/><text x="%.0f" y="%.0f">%s</text>`+"\n", left, left+30, ly, ly, colors[n%len(colors)], left+36, ly+4, name)
	}
	b.WriteString("</svg>\n")
	return b.String()
}
