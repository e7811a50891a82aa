package mqtt

import "time"

// capExpiry is the session expiry, in seconds, the broker keeps when a
// client asks for expiry (in CONNECT or in an MQTT 5 DISCONNECT) and
// Limits.SessionExpiry is limit (0 or less: no limit). The limit is
// rounded up to whole seconds and is at least one, so a sub-second limit
// still keeps a session across a quick reconnect; it is below "never"
// (0xFFFFFFFF), so a limit always ends a session. Expiry 0 (discard the
// session at disconnect) stays 0.
func capExpiry(expiry uint32, limit time.Duration) uint32 {
	if limit <= 0 || expiry == 0 {
		return expiry
	}
	secs := limit / time.Second // rounded up without overflowing near the largest Duration
	if limit%time.Second != 0 {
		secs++
	}
	return min(expiry, uint32(max(1, min(secs, sessionNeverExpires-1))))
}
