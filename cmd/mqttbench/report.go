package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
)

// -mode report turns the JSON lines of many runs (one per run, as written
// with -json) into the Markdown table docs/benchmarks.md shows. It lives
// here rather than in the shell script so that the script needs no JSON
// tool and the aggregation rules are tested Go code.

type reportRow struct {
	scenario, broker string
	runs             []*result
}

// readResults reads JSON result lines from the named files; lines that do
// not parse (a broker's log noise, an interrupted run) are skipped but
// counted, so a silently missing run is visible.
func readResults(paths []string) ([]*result, int, error) {
	var out []*result
	bad := 0
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			return nil, 0, err
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
		for sc.Scan() {
			line := strings.TrimSpace(sc.Text())
			if line == "" {
				continue
			}
			var r result
			if err := json.Unmarshal([]byte(line), &r); err != nil || r.Scenario == "" {
				bad++
				continue
			}
			out = append(out, &r)
		}
		f.Close()
		if err := sc.Err(); err != nil {
			return nil, 0, err
		}
	}
	return out, bad, nil
}

// groupResults keeps scenarios and brokers in the order they first
// appear, which is the order the script ran them.
func groupResults(rs []*result) []*reportRow {
	var rows []*reportRow
	idx := map[[2]string]*reportRow{}
	for _, r := range rs {
		name := r.Case
		if name == "" {
			name = fmt.Sprintf("%s %d->%d QoS %d", r.Scenario, r.Pubs, r.Subs, r.QoS)
		}
		k := [2]string{name, r.Label}
		row := idx[k]
		if row == nil {
			row = &reportRow{scenario: name, broker: r.Label}
			idx[k] = row
			rows = append(rows, row)
		}
		row.runs = append(row.runs, r)
	}
	// Stable sort by scenario first appearance so that the brokers of one
	// scenario sit together even though runs were interleaved.
	order := map[string]int{}
	for _, row := range rows {
		if _, ok := order[row.scenario]; !ok {
			order[row.scenario] = len(order)
		}
	}
	slices.SortStableFunc(rows, func(a, b *reportRow) int { return order[a.scenario] - order[b.scenario] })
	return rows
}

// median of xs (the mean of the middle two for an even count).
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

func fmtRate(x float64) string {
	switch {
	case x >= 1e6:
		return fmt.Sprintf("%.2f M", x/1e6)
	case x >= 1e3:
		return fmt.Sprintf("%.0f k", x/1e3)
	default:
		return fmt.Sprintf("%.0f", x)
	}
}

// writeReport prints one row per scenario and broker. Runs during which
// other processes used more than maxOther % CPU (100 = one core) are left
// out when maxOther > 0, and the row says how many; a row whose runs were
// all left out still appears, so a broker never silently vanishes.
func writeReport(w io.Writer, rs []*result, maxOther float64) {
	fmt.Fprintln(w, "| scenario | broker | delivered msg/s median [min..max] | broker CPU % | µs broker CPU / delivery | p50 / p99 latency | lost | loadgen CPU % | other CPU % | runs (failed) |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|")
	for _, row := range groupResults(rs) {
		var del, cpu, usd, p50, p99, lg, oth []float64
		var lost uint64
		failed, excluded := 0, 0
		for _, r := range row.runs {
			if maxOther > 0 && r.OtherCPUPct > maxOther {
				excluded++
				continue
			}
			del = append(del, r.DeliveredRate)
			cpu = append(cpu, r.BrokerCPUPct)
			usd = append(usd, r.BrokerUsPerDeliver)
			p50 = append(p50, r.P50Us)
			p99 = append(p99, r.P99Us)
			lg = append(lg, r.LoadgenCPUPct)
			oth = append(oth, r.OtherCPUPct)
			lost += r.Lost
			if !r.OK {
				failed++
			}
		}
		runs := fmt.Sprintf("%d (%d)", len(del), failed)
		if excluded > 0 {
			runs += fmt.Sprintf(", %d busy left out", excluded)
		}
		if len(del) == 0 {
			fmt.Fprintf(w, "| %s | %s | – | | | | | | | %s |\n", row.scenario, row.broker, runs)
			continue
		}
		fmt.Fprintf(w, "| %s | %s | %s [%s..%s] | %.0f | %.2f | %s / %s | %d | %.0f | %.0f | %s |\n",
			row.scenario, row.broker,
			fmtRate(median(del)), fmtRate(slices.Min(del)), fmtRate(slices.Max(del)),
			median(cpu), median(usd), fmtUs(median(p50)), fmtUs(median(p99)),
			lost, median(lg), median(oth), runs)
	}
}
