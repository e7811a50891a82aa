package cluster

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
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
