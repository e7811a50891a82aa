package mqtt

import (
	"math"
	"testing"
	"time"
)

// The session-expiry cap, case by case: the smaller of asked and limit,
// the limit in whole seconds rounded up, at least 1, never "never"; no
// limit and expiry 0 leave the asked value alone.
func TestCapExpiry(t *testing.T) {
	for _, c := range []struct {
		expiry uint32
		limit  time.Duration
		want   uint32
	}{
		{300, 0, 300}, // no limit
		{sessionNeverExpires, 0, sessionNeverExpires},                 // no limit: never stays never
		{300, -time.Second, 300},                                      // a negative limit is none
		{300, time.Minute, 60},                                        // capped
		{30, time.Minute, 30},                                         // under the cap
		{0, time.Minute, 0},                                           // discard at disconnect stays so
		{300, 1500 * time.Millisecond, 2},                             // rounded up
		{300, time.Millisecond, 1},                                    // at least a second
		{sessionNeverExpires, time.Hour, 3600},                        // never, capped
		{sessionNeverExpires, math.MaxInt64, sessionNeverExpires - 1}, // a limit always ends a session
		{sessionNeverExpires - 1, math.MaxInt64, sessionNeverExpires - 1},
	} {
		if got := capExpiry(c.expiry, c.limit); got != c.want {
			t.Errorf("capExpiry(%d, %v) = %d, want %d", c.expiry, c.limit, got, c.want)
		}
	}
}
