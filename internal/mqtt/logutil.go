package mqtt

import (
	"log"
	"log/slog"
)

// slogAdapter routes net/http's internal error log (TLS handshake failures
// and the like) to the broker's logger at debug level: they are the peer's
// problem, not the operator's.
func slogAdapter(b *Broker) *log.Logger {
	return slog.NewLogLogger(b.log.Handler(), slog.LevelDebug)
}
