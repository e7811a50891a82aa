package batch

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

// An event the broker cannot encode is reported as the broker's fault, with
// the encoder's error; a report without encode drops does not say so.
func TestReportBlamesTheBrokerForEncodeFailures(t *testing.T) {
	var logs bytes.Buffer
	pl := newPlugin(t, 0, nil)
	p := New(Options{Lanes: 1, MaxEvents: 3, Linger: 3600e9, Logger: slog.New(slog.NewTextHandler(&logs, nil))}, encode, pl.send)
	bad := ev("c", 1)
	bad.Topic = "bad"
	p.Push(bad)
	p.Push(ev("c", 0))
	closeWithin(t, p)
	out := logs.String()
	if !strings.Contains(out, "dropped_encode=1") || !strings.Contains(out, "which is a broker bug, not the plugin's") || !strings.Contains(out, "last_error=") {
		t.Errorf("report:\n%s", out)
	}
	if strings.Contains(reportAdvice(false), "broker bug") {
		t.Errorf("without encode drops the advice blames the broker: %s", reportAdvice(false))
	}
}
