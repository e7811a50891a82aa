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

// `mqttbench report` turns the JSON lines of many runs (one per run, as written
// with -json) into the Markdown table docs/benchmarks.md shows. It lives
// here rather than in the shell script so that the script needs no JSON
// tool and the aggregation rules are tested Go code.

type reportRow struct {
	scenario, broker, mqtt string
	runs                   []*result
}

// mqttOf is a result's protocol; results from before 5.0 mode are 3.1.1.
func mqttOf(r *result) string {
	if r.MQTT == "" {
		return "3.1.1"
	}
	return r.MQTT
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

// groupResults makes one row per scenario, broker and protocol, keeping
// scenarios and brokers in the order they first appear, which is the order
// the script ran them, and 3.1.1 before 5.0 within a broker.
func groupResults(rs []*result) []*reportRow {
	var rows []*reportRow
	idx := map[[3]string]*reportRow{}
	for _, r := range rs {
		name := r.Case
		if name == "" {
			name = fmt.Sprintf("%s %d->%d QoS %d", r.Scenario, r.Pubs, r.Subs, r.QoS)
		}
		k := [3]string{name, r.Label, mqttOf(r)}
		row := idx[k]
		if row == nil {
			row = &reportRow{scenario: name, broker: r.Label, mqtt: mqttOf(r)}
			idx[k] = row
			rows = append(rows, row)
		}
		row.runs = append(row.runs, r)
	}
	// Sort by scenario, then broker, by first appearance, so that the
	// brokers of one scenario sit together even though runs were
	// interleaved, and a broker's two protocols sit next to each other.
	scen, broker := map[string]int{}, map[string]int{}
	for _, row := range rows {
		if _, ok := scen[row.scenario]; !ok {
			scen[row.scenario] = len(scen)
		}
		if _, ok := broker[row.broker]; !ok {
			broker[row.broker] = len(broker)
		}
	}
	slices.SortStableFunc(rows, func(a, b *reportRow) int {
		if d := scen[a.scenario] - scen[b.scenario]; d != 0 {
			return d
		}
		if d := broker[a.broker] - broker[b.broker]; d != 0 {
			return d
		}
		return strings.Compare(a.mqtt, b.mqtt)
	})
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

// rowStats are the medians of a row's runs that were kept.
type rowStats struct {
	del, cpu, usd, p50, p99, lg, oth []float64
	lost                             uint64
	failed, excluded                 int
}

func statsOf(row *reportRow, maxOther float64) *rowStats {
	st := &rowStats{}
	for _, r := range row.runs {
		if maxOther > 0 && r.OtherCPUPct > maxOther {
			st.excluded++
			continue
		}
		st.del = append(st.del, r.DeliveredRate)
		st.cpu = append(st.cpu, r.BrokerCPUPct)
		st.usd = append(st.usd, r.BrokerUsPerDeliver)
		st.p50 = append(st.p50, r.P50Us)
		st.p99 = append(st.p99, r.P99Us)
		st.lg = append(st.lg, r.LoadgenCPUPct)
		st.oth = append(st.oth, r.OtherCPUPct)
		st.lost += r.Lost
		if !r.OK {
			st.failed++
		}
	}
	return st
}

// writeReport prints one row per scenario and broker (and protocol, when
// any run used MQTT 5.0: an "MQTT" column then follows the broker). Runs
// during which other processes used more than maxOther % CPU (100 = one
// core) are left out when maxOther > 0, and the row says how many; a row
// whose runs were all left out still appears, so a broker never silently
// vanishes. When a scenario and broker were run with both protocols, a
// second table gives the ratios 5.0 / 3.1.1.
func writeReport(w io.Writer, rs []*result, maxOther float64) {
	rows := groupResults(rs)
	withMQTT := slices.ContainsFunc(rows, func(r *reportRow) bool { return r.mqtt != "3.1.1" })
	mq, mqSep := "", ""
	if withMQTT {
		mq, mqSep = " MQTT |", "---|"
	}
	fmt.Fprintf(w, "| scenario | broker |%s delivered msg/s median [min..max] | broker CPU %% | µs broker CPU / delivery | p50 / p99 latency | lost | loadgen CPU %% | other CPU %% | runs (failed) |\n", mq)
	fmt.Fprintf(w, "|---|---|%s---|---|---|---|---|---|---|---|\n", mqSep)
	stats := make([]*rowStats, len(rows))
	for i, row := range rows {
		st := statsOf(row, maxOther)
		stats[i] = st
		lead := fmt.Sprintf("| %s | %s |", row.scenario, row.broker)
		if withMQTT {
			lead += fmt.Sprintf(" %s |", row.mqtt)
		}
		runs := fmt.Sprintf("%d (%d)", len(st.del), st.failed)
		if st.excluded > 0 {
			runs += fmt.Sprintf(", %d busy left out", st.excluded)
		}
		if len(st.del) == 0 {
			fmt.Fprintf(w, "%s – | | | | | | | %s |\n", lead, runs)
			continue
		}
		fmt.Fprintf(w, "%s %s [%s..%s] | %.0f | %.2f | %s / %s | %d | %.0f | %.0f | %s |\n",
			lead,
			fmtRate(median(st.del)), fmtRate(slices.Min(st.del)), fmtRate(slices.Max(st.del)),
			median(st.cpu), median(st.usd), fmtUs(median(st.p50)), fmtUs(median(st.p99)),
			st.lost, median(st.lg), median(st.oth), runs)
	}
	if withMQTT {
		writeRatios(w, rows, stats)
	}
}

// writeRatios prints, for every scenario and broker measured with both
// protocols, the 5.0 median over the 3.1.1 median of throughput and of
// broker CPU per delivery.
func writeRatios(w io.Writer, rows []*reportRow, stats []*rowStats) {
	type pair struct{ v4, v5 *rowStats }
	var keys [][2]string
	pairs := map[[2]string]*pair{}
	for i, row := range rows {
		k := [2]string{row.scenario, row.broker}
		p := pairs[k]
		if p == nil {
			p = &pair{}
			pairs[k] = p
			keys = append(keys, k)
		}
		switch row.mqtt {
		case "3.1.1":
			p.v4 = stats[i]
		case "5.0":
			p.v5 = stats[i]
		}
	}
	printed := false
	for _, k := range keys {
		p := pairs[k]
		if p.v4 == nil || p.v5 == nil || len(p.v4.del) == 0 || len(p.v5.del) == 0 {
			continue
		}
		if !printed {
			fmt.Fprintln(w)
			fmt.Fprintln(w, "| scenario | broker | delivered msg/s 5.0 / 3.1.1 | µs broker CPU per delivery 5.0 / 3.1.1 |")
			fmt.Fprintln(w, "|---|---|---|---|")
			printed = true
		}
		ratio := func(a, b []float64) string {
			if median(b) == 0 {
				return "–"
			}
			return fmt.Sprintf("%.2f", median(a)/median(b))
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s |\n", k[0], k[1], ratio(p.v5.del, p.v4.del), ratio(p.v5.usd, p.v4.usd))
	}
}

// readStorms reads the `mqttbench storm` results among JSON lines; other lines
// are left to readResults.
func readStorms(paths []string) ([]*stormResult, error) {
	var out []*stormResult
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			return nil, err
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
		for sc.Scan() {
			var r stormResult
			if json.Unmarshal(sc.Bytes(), &r) == nil && r.Mode == "storm" {
				out = append(out, &r)
			}
		}
		f.Close()
		if err := sc.Err(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// spread formats the median of xs and its range.
func spread(xs []float64, f func(float64) string) string {
	if len(xs) == 0 {
		return "–"
	}
	return fmt.Sprintf("%s [%s..%s]", f(median(xs)), f(slices.Min(xs)), f(slices.Max(xs)))
}

func fmtRatio(x float64) string { return fmt.Sprintf("%.2f", x) }

// writeRatioReport compares every label with the baseline label, case by
// case. The script interleaves them (baseline, variant, baseline, ...), so
// the i-th run of a variant is paired with the i-th run of the baseline in
// the same case, and the ratio is taken pair by pair: its median and range
// are what the table shows. A pair in which either run was busy (other
// processes above maxOther % CPU) is left out, as is a failed run's pair.
func writeRatioReport(w io.Writer, rs []*result, baseline string, maxOther float64) {
	rows := groupResults(rs)
	base := map[string]*reportRow{}
	for _, row := range rows {
		if row.broker == baseline {
			base[row.scenario+"\x00"+row.mqtt] = row
		}
	}
	fmt.Fprintf(w, "| case | variant | %s msg/s | variant msg/s | ratio (per run pair) | µs broker CPU / delivery, baseline → variant | plugin events/s | events dropped / run | plugin calls / run | plugin CPU %% | other CPU %% (max) | pairs (left out) |\n", baseline)
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, row := range rows {
		b := base[row.scenario+"\x00"+row.mqtt]
		if row.broker == baseline || b == nil {
			continue
		}
		var bRate, vRate, ratio, bUs, vUs, evs, drops, calls, pcpu []float64
		other, skipped := 0.0, 0
		for i, v := range row.runs {
			if i >= len(b.runs) {
				skipped++
				continue
			}
			br := b.runs[i]
			if !v.OK || !br.OK || (maxOther > 0 && (v.OtherCPUPct > maxOther || br.OtherCPUPct > maxOther)) || br.DeliveredRate == 0 {
				skipped++
				continue
			}
			other = max(other, v.OtherCPUPct, br.OtherCPUPct)
			bRate = append(bRate, br.DeliveredRate)
			vRate = append(vRate, v.DeliveredRate)
			ratio = append(ratio, v.DeliveredRate/br.DeliveredRate)
			bUs = append(bUs, br.BrokerUsPerDeliver)
			vUs = append(vUs, v.BrokerUsPerDeliver)
			if v.Plugin != nil {
				evs = append(evs, v.Plugin.EventsPerS)
				pcpu = append(pcpu, v.Plugin.CPUPct)
				calls = append(calls, float64(v.Plugin.Run.TopicFiltering+v.Plugin.Run.Authenticate))
			}
			if v.EventsDropped != nil {
				drops = append(drops, *v.EventsDropped)
			}
		}
		num := func(x float64) string { return fmt.Sprintf("%.0f", x) }
		us := "–"
		if len(bUs) > 0 {
			us = fmt.Sprintf("%.2f → %.2f", median(bUs), median(vUs))
		}
		pc := "–"
		if len(pcpu) > 0 {
			pc = num(median(pcpu))
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %.0f | %d (%d) |\n",
			row.scenario, row.broker, spread(bRate, fmtRate), spread(vRate, fmtRate), spread(ratio, fmtRatio), us,
			spread(evs, fmtRate), spread(drops, num), spread(calls, num), pc, other, len(ratio), skipped)
	}
}

// writeStormReport prints one row per storm run.
func writeStormReport(w io.Writer, storms []*stormResult) {
	fmt.Fprintln(w, "| case | clients | client ids | accepted | refused | taken over before CONNACK | no CONNACK | last CONNACK | p50 / p99 | authenticate calls (distinct) | at most at once | ok |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, s := range storms {
		ids := "distinct"
		if s.SameID {
			ids = "one"
		}
		var refused []string
		for k, v := range s.Refused {
			refused = append(refused, fmt.Sprintf("%s ×%d", k, v))
		}
		slices.Sort(refused)
		calls, most := "–", "–"
		if s.Plugin != nil {
			calls = fmt.Sprintf("%d (%d)", s.Plugin.Authenticate, s.Plugin.AuthDistinct)
			most = fmt.Sprint(s.Plugin.AuthMaxConcur)
		}
		name := s.Case
		if name == "" {
			name = s.Label
		}
		fmt.Fprintf(w, "| %s | %d in %d burst(s) | %s | %d | %s | %d | %d | %.0f ms | %.0f / %.0f ms | %s | %s | %v |\n",
			name, s.Conns, s.Bursts, ids, s.Accepted, strings.Join(refused, ", "), s.TakenOver, s.NoConnack, s.LastConnackMs,
			s.P50Ms, s.P99Ms, calls, most, s.OK)
	}
}
