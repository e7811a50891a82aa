package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Probes read the counters of the bench plugin (-plugin: its GET /stats)
// and of the broker (-metrics: its Prometheus text) around a run, so that
// what the plugin received and what the broker dropped come out in the same
// result, over the same window, as the throughput.

var probeClient = &http.Client{Timeout: 5 * time.Second}

func httpGet(url string) ([]byte, error) {
	resp, err := probeClient.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return b, nil
}

// fetchPluginStats reads GET base/stats of a `mqttbench plugin` server.
func fetchPluginStats(base string) (pluginStats, error) {
	var st pluginStats
	b, err := httpGet(strings.TrimRight(base, "/") + "/stats")
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("plugin stats: %w", err)
	}
	return st, nil
}

// metricFamilies are the broker's series a probe keeps: the plugin
// framework's and the HTTP plugins' counters and gauges (histograms are
// left out).
var metricFamilies = []string{"mqttd_webhook_", "mqttd_plugin_"}

// fetchMetrics reads a Prometheus text exposition and returns the kept
// series, keyed by their name and labels as written.
func fetchMetrics(url string) (map[string]float64, error) {
	b, err := httpGet(url)
	if err != nil {
		return nil, err
	}
	return parseMetrics(string(b)), nil
}

func parseMetrics(text string) map[string]float64 {
	out := map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		keep := false
		for _, f := range metricFamilies {
			keep = keep || strings.HasPrefix(line, f)
		}
		if !keep {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		series := line[:i]
		name, _, _ := strings.Cut(series, "{")
		if strings.HasSuffix(name, "_bucket") || strings.HasSuffix(name, "_sum") || strings.HasSuffix(name, "_count") {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		out[series] = v
	}
	return out
}

// metricsDelta is after - before for every series that changed (a gauge
// reads as its change too; series new in after count from zero).
func metricsDelta(before, after map[string]float64) map[string]float64 {
	d := map[string]float64{}
	for k, v := range after {
		if dv := v - before[k]; dv != 0 {
			d[k] = dv
		}
	}
	return d
}

// sumMetric adds up the series of one metric name, whatever the labels,
// and those whose labels contain sel when sel is not empty.
func sumMetric(m map[string]float64, name, sel string) float64 {
	var sum float64
	for k, v := range m {
		n, labels, _ := strings.Cut(k, "{")
		if n == name && (sel == "" || strings.Contains(labels, sel)) {
			sum += v
		}
	}
	return sum
}

// probes are the optional snapshot sources of a run.
type probes struct {
	plugin  string // base URL of a `mqttbench plugin` server, or ""
	metrics string // URL of the broker's /metrics, or ""
}

type probeSnap struct {
	at      time.Time
	plugin  pluginStats
	metrics map[string]float64
}

// snap takes a snapshot of whatever is configured; failures go to errs.
func (p probes) snap(errs *errorList) probeSnap {
	s := probeSnap{at: time.Now()}
	var err error
	if p.plugin != "" {
		if s.plugin, err = fetchPluginStats(p.plugin); err != nil {
			errs.add("plugin stats: %v", err)
		}
	}
	if p.metrics != "" {
		if s.metrics, err = fetchMetrics(p.metrics); err != nil {
			errs.add("broker metrics: %v", err)
		}
	}
	return s
}

// settle waits until the plugin's event count stops moving (events are
// batched and may still be on their way after the last delivery) and,
// when the broker's metrics are probed, until the broker has no event
// queued and the plugin has every event the broker counts as accepted
// (a batch waiting out a retry backoff stops the count for longer than
// the stillness window), and until the plugin has checked every sampled
// batch it answered. It waits at most limit and returns the last
// snapshot.
func (p probes) settle(errs *errorList, limit time.Duration) probeSnap {
	s := p.snap(errs)
	if p.plugin == "" {
		return s
	}
	deadline := time.Now().Add(limit)
	still := 0
	for (still < 3 || !s.brokerDrained() || s.plugin.ChecksPending > 0) && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
		n := p.snap(errs)
		if n.plugin.Events == s.plugin.Events && n.plugin.EventPosts == s.plugin.EventPosts {
			still++
		} else {
			still = 0
		}
		s = n
	}
	return s
}

// brokerDrained reports whether the broker, as its metrics say, has no
// event waiting for the plugin and none accepted that the plugin has not
// counted. Without metrics it cannot tell, and says yes.
func (s probeSnap) brokerDrained() bool {
	if s.metrics == nil {
		return true
	}
	return sumMetric(s.metrics, "mqttd_webhook_event_queue_depth", "") == 0 &&
		sumMetric(s.metrics, "mqttd_webhook_events_sent_total", "") <= float64(s.plugin.Events)
}

// pluginUsage is what the bench plugin saw during a run.
type pluginUsage struct {
	WindowS        float64     `json:"window_s"`
	EventsPerS     float64     `json:"events_per_s"` // received in the measured window
	BatchesPerS    float64     `json:"batches_per_s"`
	EventsPerBatch float64     `json:"events_per_batch"`
	CPUPct         float64     `json:"cpu_pct"` // the plugin process, in the window
	Window         pluginStats `json:"window"`  // counters over the measured window
	Run            pluginStats `json:"run"`     // from before connecting to after events settled
}

func newPluginUsage(pre, winStart, winEnd, final probeSnap) *pluginUsage {
	u := &pluginUsage{
		Window: winEnd.plugin.minus(winStart.plugin),
		Run:    final.plugin.minus(pre.plugin),
	}
	u.WindowS = winEnd.at.Sub(winStart.at).Seconds()
	if u.WindowS > 0 {
		u.EventsPerS = float64(u.Window.Events) / u.WindowS
		u.BatchesPerS = float64(u.Window.EventPosts) / u.WindowS
		u.CPUPct = 100 * u.Window.CPUS / u.WindowS
	}
	if u.Window.EventPosts > 0 {
		u.EventsPerBatch = float64(u.Window.Events) / float64(u.Window.EventPosts)
	}
	return u
}

// problems lists what the plugin received that breaks the contract.
func (u *pluginUsage) problems() []string {
	var out []string
	r := u.Run
	if r.BadRequests > 0 || r.BadEvents > 0 || r.Duplicates > 0 {
		out = append(out, fmt.Sprintf("plugin received %d bad requests, %d bad events, %d duplicate events (first: %v)",
			r.BadRequests, r.BadEvents, r.Duplicates, r.Errors))
	}
	return out
}
