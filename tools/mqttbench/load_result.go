package main

import (
	"fmt"
	"io"
	"time"
)

// result is what one load run measured. Its JSON form is the contract with
// scripts/compare.sh and `mqttbench report`, so fields are only ever added.
type result struct {
	Label    string  `json:"label,omitempty"` // e.g. the broker name, from -label
	Case     string  `json:"case,omitempty"`  // scenario title, from -case
	Scenario string  `json:"scenario"`
	MQTT     string  `json:"mqtt,omitempty"`     // "3.1.1" or "5.0"; absent in results older than 5.0 mode (3.1.1)
	V5Props  bool    `json:"v5_props,omitempty"` // 5.0 PUBLISH carried a message expiry and a user property
	Pubs     int     `json:"pubs"`
	Subs     int     `json:"subs"`
	QoS      int     `json:"qos"`
	Size     int     `json:"size"`
	Rate     float64 `json:"rate"`
	Window   int     `json:"window"`
	Inflight int     `json:"inflight"`
	Duration float64 `json:"duration_s"`

	Published     uint64  `json:"published"` // whole run, warm-up included
	PublishedRate float64 `json:"published_per_s"`
	Expected      uint64  `json:"expected"` // deliveries owed for Published
	Delivered     uint64  `json:"delivered"`
	DeliveredRate float64 `json:"delivered_per_s"`

	Lost       uint64 `json:"lost"`
	Duplicated uint64 `json:"duplicated"`
	Reordered  uint64 `json:"reordered"`
	Unacked    uint64 `json:"unacked"`
	Corrupt    uint64 `json:"corrupt"`
	Misrouted  uint64 `json:"misrouted"`
	// 5.0 only: acknowledgements with a failure reason code, and with
	// -v5-props deliveries that lacked the properties sent.
	FailedAcks   uint64 `json:"failed_acks,omitempty"`
	PropsMissing uint64 `json:"props_missing,omitempty"`

	LatencySamples uint64  `json:"latency_samples"`
	MeanUs         float64 `json:"mean_us"`
	P50Us          float64 `json:"p50_us"`
	P90Us          float64 `json:"p90_us"`
	P99Us          float64 `json:"p99_us"`
	P999Us         float64 `json:"p999_us"`
	MaxUs          float64 `json:"max_us"`
	// QoS 1/2: PUBLISH written to its PUBACK (QoS 1) or PUBCOMP (QoS 2)
	// read by the publisher, for publishes sent in the window.
	AckSamples uint64  `json:"ack_latency_samples,omitempty"`
	AckP50Us   float64 `json:"ack_p50_us,omitempty"`
	AckP99Us   float64 `json:"ack_p99_us,omitempty"`
	AckP999Us  float64 `json:"ack_p999_us,omitempty"`
	AckMaxUs   float64 `json:"ack_max_us,omitempty"`
	Persistent bool    `json:"persistent_subs,omitempty"` // subscribers held persistent sessions

	LoadgenCPUPct      float64 `json:"loadgen_cpu_pct"`
	BrokerPID          int     `json:"broker_pid,omitempty"`
	BrokerCPUPct       float64 `json:"broker_cpu_pct,omitempty"`
	BrokerUsPerDeliver float64 `json:"broker_us_per_delivery,omitempty"`
	// OtherCPUPct is CPU used by everything else on the machine during
	// the window (100 = one core): contention that skews the figures. With
	// -plugin, the bench plugin's own CPU is not in it.
	OtherCPUPct float64 `json:"other_cpu_pct"`

	// With -plugin: what the bench plugin received. With -metrics: the
	// broker's plugin counters that changed over the run, and the events
	// it dropped (all reasons) within it.
	Plugin        *pluginUsage       `json:"plugin,omitempty"`
	BrokerMetrics map[string]float64 `json:"broker_metrics,omitempty"`
	EventsDropped *float64           `json:"events_dropped,omitempty"`

	OK     bool     `json:"ok"`
	Errors []string `json:"errors,omitempty"`
}

// addProbes adds what the probes saw: pre before connecting, start and end
// around the measured window, final once events settled. A probe that
// failed, or a plugin that received anything malformed, fails the run.
func (res *result) addProbes(p probes, pre, start, end, final probeSnap, errs *errorList) {
	if p.plugin != "" && errs.n == 0 {
		res.Plugin = newPluginUsage(pre, start, end, final)
		res.Errors = append(res.Errors, res.Plugin.problems()...)
		// The plugin is part of the set-up, not other load: its CPU is
		// reported on its own (plugin.cpu_pct) and taken out of "other".
		res.OtherCPUPct = max(0, res.OtherCPUPct-res.Plugin.CPUPct)
	}
	if p.metrics != "" && pre.metrics != nil && final.metrics != nil {
		res.BrokerMetrics = metricsDelta(pre.metrics, final.metrics)
		d := sumMetric(res.BrokerMetrics, "mqttd_webhook_events_dropped_total", "")
		res.EventsDropped = &d
	}
	res.Errors = append(res.Errors, errs.first...)
	res.OK = len(res.Errors) == 0
}

// collect turns the run's counters into a result. It runs after every
// goroutine of the run has exited, so plain fields are safe to read.
func (r *loadRun) collect(before, after cpuSample, window time.Duration) *result {
	cfg := r.cfg
	res := &result{
		Scenario: cfg.scenario, MQTT: "3.1.1", Pubs: cfg.pubs, Subs: cfg.subs, QoS: int(cfg.qos),
		Size: cfg.size, Rate: cfg.rate, Window: cfg.window, Duration: window.Seconds(),
	}
	if cfg.v5 {
		res.MQTT, res.V5Props = "5.0", cfg.v5Props
	}
	if cfg.qos > 0 {
		// The in-flight limit in force: a 5.0 broker's Receive Maximum
		// may have lowered it (the smallest over the publishers).
		res.Inflight = int(r.inflightLimit())
		for _, p := range r.pubs {
			if p.limit > 0 {
				res.Inflight = min(res.Inflight, int(p.limit))
			}
		}
	}
	var hist histogram
	inWindowPub, inWindowDel := r.countDeliveries(res, &hist)
	r.addRates(res, before, after, window, inWindowPub, inWindowDel)
	res.LatencySamples = hist.n
	us := func(ns int64) float64 { return float64(ns) / 1e3 }
	res.MeanUs = hist.mean() / 1e3
	res.P50Us = us(hist.quantile(0.50))
	res.P90Us = us(hist.quantile(0.90))
	res.P99Us = us(hist.quantile(0.99))
	res.P999Us = us(hist.quantile(0.999))
	res.MaxUs = us(hist.max)
	res.Persistent = cfg.persistentSubs
	if cfg.qos > 0 {
		var acks histogram
		for _, p := range r.pubs {
			acks.merge(&p.ackHist)
		}
		res.AckSamples = acks.n
		res.AckP50Us, res.AckP99Us = us(acks.quantile(0.50)), us(acks.quantile(0.99))
		res.AckP999Us, res.AckMaxUs = us(acks.quantile(0.999)), us(acks.max)
	}
	res.Errors = r.failures(res)
	res.OK = len(res.Errors) == 0
	return res
}

// countDeliveries adds up what the publishers sent and the subscribers
// received, merges the subscribers' latencies into hist, and returns the
// messages published and delivered within the measured window.
func (r *loadRun) countDeliveries(res *result, hist *histogram) (inWindowPub, inWindowDel uint64) {
	for _, p := range r.pubs {
		sent := p.sent.Load()
		res.Published += sent
		inWindowPub += p.sentInWindow
		if r.cfg.qos > 0 {
			res.Unacked += sent - p.acked.Load()
		}
		if p.unexpectedAcks > 0 {
			r.protoErrs.add("publisher %d: %d acks for packet ids not in flight", p.idx, p.unexpectedAcks)
		}
		res.FailedAcks += p.failedAcks
	}
	for _, s := range r.subs {
		hist.merge(&s.hist)
		inWindowDel += s.deliveredInWindow
		res.Duplicated += s.dups
		res.Reordered += s.late
		res.Corrupt += s.corrupt
		res.Misrouted += s.misrouted
		res.FailedAcks += s.failedAcks
		res.PropsMissing += s.badProps
		for i, p := range r.pubs {
			if !r.expects(s, i) {
				continue
			}
			want := p.sent.Load()
			got := s.tracks[i].unique
			res.Expected += want
			res.Delivered += got
			if got < want {
				res.Lost += want - got
			}
		}
	}
	return inWindowPub, inWindowDel
}

// addRates sets the rates and CPU shares over the measured window.
func (r *loadRun) addRates(res *result, before, after cpuSample, window time.Duration, inWindowPub, inWindowDel uint64) {
	w := window.Seconds()
	if w <= 0 {
		return
	}
	pid := r.cfg.pid
	res.PublishedRate = float64(inWindowPub) / w
	res.DeliveredRate = float64(inWindowDel) / w
	self := after.self - before.self
	res.LoadgenCPUPct = 100 * self.Seconds() / w
	if pid > 0 && before.brokerErr == nil && after.brokerErr == nil {
		b := after.broker - before.broker
		res.BrokerPID = pid
		res.BrokerCPUPct = 100 * b.Seconds() / w
		if inWindowDel > 0 {
			res.BrokerUsPerDeliver = float64(b.Microseconds()) / float64(inWindowDel)
		}
	} else if pid > 0 {
		r.connErrs.add("broker pid %d: could not read CPU time: %v %v", pid, before.brokerErr, after.brokerErr)
	}
	if before.systemErr == nil && after.systemErr == nil {
		other := after.system - before.system - self
		if res.BrokerPID > 0 {
			other -= after.broker - before.broker
		}
		// Tick granularity can make the difference slightly negative.
		res.OtherCPUPct = max(0, 100*other.Seconds()/w)
	}
}

// failures lists what makes the run fail: the transport broke, the broker
// sent something we did not ask for, or it broke a QoS promise. QoS 0 may
// lose messages by definition; QoS 1 may duplicate them.
func (r *loadRun) failures(res *result) []string {
	qos := r.cfg.qos
	errs := append([]string(nil), r.connErrs.first...)
	errs = append(errs, r.protoErrs.first...)
	if extra := r.connErrs.n + r.protoErrs.n - len(errs); extra > 0 {
		errs = append(errs, fmt.Sprintf("... and %d more errors", extra))
	}
	if res.Corrupt > 0 {
		errs = append(errs, fmt.Sprintf("%d corrupt payloads", res.Corrupt))
	}
	if res.Misrouted > 0 {
		errs = append(errs, fmt.Sprintf("%d messages delivered to the wrong subscriber or topic", res.Misrouted))
	}
	if res.FailedAcks > 0 {
		errs = append(errs, fmt.Sprintf("%d acknowledgements with a failure reason code", res.FailedAcks))
	}
	if res.PropsMissing > 0 {
		errs = append(errs, fmt.Sprintf("%d deliveries without the message expiry and user property sent (-v5-props)", res.PropsMissing))
	}
	if qos > 0 && res.Lost > 0 {
		errs = append(errs, fmt.Sprintf("QoS %d: %d of %d deliveries lost", qos, res.Lost, res.Expected))
	}
	if qos > 0 && res.Unacked > 0 {
		errs = append(errs, fmt.Sprintf("QoS %d: %d publishes never acknowledged (longer -drain?)", qos, res.Unacked))
	}
	if qos == 2 && res.Duplicated > 0 {
		errs = append(errs, fmt.Sprintf("QoS 2: %d duplicate deliveries", res.Duplicated))
	}
	return errs
}

// fmtUs prints a latency in the most readable unit.
func fmtUs(us float64) string {
	switch {
	case us >= 10000:
		return fmt.Sprintf("%.1f ms", us/1000)
	case us >= 1000:
		return fmt.Sprintf("%.2f ms", us/1000)
	default:
		return fmt.Sprintf("%.0f µs", us)
	}
}

func (res *result) writeText(w io.Writer) {
	mode := "closed loop"
	if res.Rate > 0 {
		mode = fmt.Sprintf("%.0f msg/s per publisher", res.Rate)
	}
	proto := "MQTT " + res.MQTT
	if res.V5Props {
		proto += " with properties"
	}
	if res.Persistent {
		proto += ", persistent subscribers"
	}
	fmt.Fprintf(w, "scenario   %s: %s, %d pubs, %d subs, QoS %d, %d-byte payload, %s, window %d, %.0fs measured\n",
		res.Scenario, proto, res.Pubs, res.Subs, res.QoS, res.Size, mode, res.Window, res.Duration)
	if res.QoS > 0 && res.Inflight < res.Window {
		fmt.Fprintf(w, "in flight  at most %d unacknowledged publishes per publisher\n", res.Inflight)
	}
	fmt.Fprintf(w, "published  %10.0f msg/s\n", res.PublishedRate)
	fmt.Fprintf(w, "delivered  %10.0f msg/s   (unique deliveries; %d of %d owed over the whole run)\n",
		res.DeliveredRate, res.Delivered, res.Expected)
	if res.LatencySamples > 0 {
		fmt.Fprintf(w, "latency    p50 %s  p90 %s  p99 %s  p99.9 %s  max %s  (%d samples)\n",
			fmtUs(res.P50Us), fmtUs(res.P90Us), fmtUs(res.P99Us), fmtUs(res.P999Us), fmtUs(res.MaxUs), res.LatencySamples)
	}
	if res.AckSamples > 0 {
		fmt.Fprintf(w, "ack        p50 %s  p99 %s  p99.9 %s  max %s  (publish to PUBACK/PUBCOMP, %d samples)\n",
			fmtUs(res.AckP50Us), fmtUs(res.AckP99Us), fmtUs(res.AckP999Us), fmtUs(res.AckMaxUs), res.AckSamples)
	}
	fmt.Fprintf(w, "integrity  lost %d  duplicated %d  reordered %d  unacked %d  corrupt %d  misrouted %d",
		res.Lost, res.Duplicated, res.Reordered, res.Unacked, res.Corrupt, res.Misrouted)
	if res.MQTT == "5.0" {
		fmt.Fprintf(w, "  failed acks %d", res.FailedAcks)
		if res.V5Props {
			fmt.Fprintf(w, "  properties missing %d", res.PropsMissing)
		}
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "loadgen    %.0f%% CPU   (other processes: %.0f%%)\n", res.LoadgenCPUPct, res.OtherCPUPct)
	if res.BrokerPID > 0 {
		fmt.Fprintf(w, "broker     %.0f%% CPU, %.2f µs CPU per delivery (pid %d)\n",
			res.BrokerCPUPct, res.BrokerUsPerDeliver, res.BrokerPID)
	}
	if u := res.Plugin; u != nil {
		fmt.Fprintf(w, "plugin     %.0f events/s in %.0f batches/s (%.1f per batch), %.0f%% CPU; over the run: %d events, topic_filtering %d, authenticate %d\n",
			u.EventsPerS, u.BatchesPerS, u.EventsPerBatch, u.CPUPct, u.Run.Events, u.Run.TopicFiltering, u.Run.Authenticate)
	}
	if res.EventsDropped != nil {
		fmt.Fprintf(w, "dropped    %.0f events (broker's mqttd_webhook_events_dropped_total over the run)\n", *res.EventsDropped)
	}
	printVerdict(w, res.OK, res.Errors)
}
