package pebblestore

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/cockroachdb/pebble/vfs"

	"github.com/mqttd/mqttd/internal/store"
)

// OnCorrupt says what Open does with a corrupt store.
type OnCorrupt byte

const (
	// Fail: Open returns an error naming the directory and the fix.
	Fail OnCorrupt = iota
	// Quarantine: the directory is moved aside and an empty store started,
	// logged at error level.
	Quarantine
)

// ParseOnCorrupt maps the configuration words fail and quarantine.
func ParseOnCorrupt(s string) (OnCorrupt, error) {
	switch s {
	case "fail", "":
		return Fail, nil
	case "quarantine":
		return Quarantine, nil
	}
	return 0, errors.New(`store: on-corrupt must be "fail" or "quarantine", not "` + s + `"`)
}

// Options configure Open.
type Options struct {
	Durability   store.Durability // when a commit returns (default Sync)
	SyncInterval time.Duration    // Interval mode: longest time between fsyncs (default 100ms)
	OnCorrupt    OnCorrupt        // what Open does with a corrupt store (default Fail)
	Logger       *slog.Logger     // default slog.Default()
	CacheBytes   int64            // Pebble block cache (default 8 MiB)
	Metrics      *Metrics         // counts writes and reports size; nil = none
	// RetryInterval: after a write error, how often the store checks
	// whether the disk takes writes again (default 5s); see recover.go.
	RetryInterval time.Duration
	// FS is the file system the store is on; nil is the OS's. Tests
	// inject write errors (a full disk) through it.
	FS vfs.FS
}

func (o *Options) withDefaults() Options {
	c := *o
	if c.SyncInterval <= 0 {
		c.SyncInterval = 100 * time.Millisecond
	}
	if c.RetryInterval <= 0 {
		c.RetryInterval = 5 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.CacheBytes <= 0 {
		c.CacheBytes = 8 << 20
	}
	return c
}

// pebbleLogger sends Pebble's own messages to slog: its routine chatter at
// debug level, its fatal errors at error level. A fatal error (Pebble's
// commit pipeline cannot go on after a failed log write) fails the store
// through onFatal instead of stopping the process; without onFatal it
// panics.
type pebbleLogger struct {
	l       *slog.Logger
	onFatal func(error)
}

func (p pebbleLogger) Infof(format string, args ...any) {
	p.l.Debug("pebble: " + fmt.Sprintf(format, args...))
}

func (p pebbleLogger) Errorf(format string, args ...any) {
	p.l.Error("pebble: " + fmt.Sprintf(format, args...))
}

func (p pebbleLogger) Fatalf(format string, args ...any) {
	msg := "pebble: " + fmt.Sprintf(format, args...)
	p.l.Error(msg)
	if p.onFatal == nil {
		panic(msg)
	}
	p.onFatal(errors.New(msg))
}
