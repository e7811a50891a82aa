package cluster

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestThrottleLogsOncePerInterval(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	var th throttle
	for range 1000 {
		th.warn(log, "failed")
	}
	if n := strings.Count(buf.String(), "failed"); n != 1 {
		t.Fatalf("%d lines for 1000 failures within the interval, want 1", n)
	}
	th.last = th.last.Add(-throttleInterval) // the interval has passed
	th.warn(log, "failed")
	if !strings.Contains(buf.String(), "not_logged_since_last=999") {
		t.Fatalf("second line does not count the skipped ones:\n%s", buf.String())
	}
}

func TestMetricsRegister(t *testing.T) {
	ns := startNATS(t)
	tn := startNode(t, ns, "m1")
	reg := prometheus.NewRegistry()
	if err := tn.node.Register(reg); err != nil {
		t.Fatal(err)
	}
	tn.node.stats.ForwardFailed.Add(2)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		m := mf.GetMetric()[0]
		if m.Counter != nil {
			got[mf.GetName()] = m.Counter.GetValue()
		} else {
			got[mf.GetName()] = m.Gauge.GetValue()
		}
	}
	if got["mqttd_cluster_connected"] != 1 || got["mqttd_cluster_forward_failed_total"] != 2 || len(got) != 16 {
		t.Errorf("metrics %v", got)
	}
}
