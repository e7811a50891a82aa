package mqtt

import (
	"context"
	"testing"
	"time"
)

// SysInterval 0 is off, as sys-interval 0 is in the config: a broker with
// it publishes no $SYS topic, while one with a period publishes them all
// (retained) as soon as it starts. The off case watches for 300ms and can
// only miss a regression, never fail a good broker; the on case waits as
// long as a loaded machine needs.
func TestSysIntervalZeroIsOff(t *testing.T) {
	retained := func(interval, watch time.Duration, enough int64) int64 {
		b, err := New(Options{Name: "sys", SysInterval: interval})
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := b.Close(ctx); err != nil {
				t.Errorf("Close: %v", err)
			}
		}()
		var n int64
		for deadline := time.Now().Add(watch); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
			// The first publication retains its topics one by one:
			// watch until enough are there, not until the first.
			if n = b.Stats().Retained; n >= enough {
				break
			}
		}
		return n
	}
	if n := retained(0, 300*time.Millisecond, 1); n != 0 {
		t.Fatalf("SysInterval 0: %d $SYS topics retained, want none (0 is off)", n)
	}
	// The same watch sees them when $SYS is on, so it is not blind.
	if n := retained(time.Hour, 10*time.Second, int64(len(sysTopics))); n < int64(len(sysTopics)) {
		t.Fatalf("SysInterval 1h: %d $SYS topics retained after start, want at least %d", n, len(sysTopics))
	}
}
