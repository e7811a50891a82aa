// Package eventlog is the event-log built-in plugin: every broker event it
// is told about becomes one structured log line (log/slog) on the broker's
// logger.
//
// Logging is I/O and the broker must never wait for it: Event only queues
// (hooks.Queue, bounded), and one goroutine writes the lines. When the
// writer falls behind, the oldest queued events are dropped; how many is
// logged as a warning, at most once every 10 seconds, and once more at
// Close, and counted in mqttd_plugin_events_dropped_total (hooks.Dropper).
package eventlog

import (
	"context"
	"encoding/base64"
	"fmt"
	"log/slog"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/mqttd/mqttd/internal/hooks"
	"github.com/mqttd/mqttd/internal/mqtt"
)

// Options configures a Plugin.
type Options struct {
	Logger    *slog.Logger // where the lines go: the broker's logger; nil = slog.Default()
	Level     string       // level of the lines: debug, info (default), warn or error
	Events    []string     // event names to log (docs/design.md §3.3); none = all
	Payload   bool         // include message payloads, not only their size
	QueueSize int          // events held while the logger is behind; 0 = DefaultQueueSize
	// QueueBytes bounds the payload bytes those events hold; 0 =
	// DefaultQueueBytes.
	QueueBytes int
}

// The queue's bounds when Options leaves them 0.
const (
	DefaultQueueSize  = 10000
	DefaultQueueBytes = 64 << 20
)

// orDefault is v, or def when v is 0; a negative v is an error.
func orDefault(what string, v, def int) (int, error) {
	switch {
	case v < 0:
		return 0, fmt.Errorf("event-log: %s %d is negative (0 means the default, %d)", what, v, def)
	case v == 0:
		return def, nil
	}
	return v, nil
}

// Payload rendering: short UTF-8 payloads as text, anything else as
// base64, and no line carries more than maxPayload bytes of payload.
const (
	maxTextPayload = 256
	maxPayload     = 4096
)

// warnEvery is the least time between two warnings about dropped events.
const warnEvery = 10 * time.Second

// Plugin is an event-log plugin: a hooks.EventPlugin and hooks.Closer.
type Plugin struct {
	log     *slog.Logger
	level   slog.Level
	mask    mqtt.EventMask
	payload bool
	q       *hooks.Queue

	stop context.CancelFunc // ends the writer early (Close out of time)
	done chan struct{}      // closed when the writer has returned

	// Owned by the writer goroutine.
	now      func() time.Time
	reported uint64    // drops already warned about
	warned   time.Time // when the last warning went out
	attrs    []slog.Attr
}

var (
	_ hooks.EventPlugin = (*Plugin)(nil)
	_ hooks.Closer      = (*Plugin)(nil)
	_ hooks.Dropper     = (*Plugin)(nil) // the Manager exports Dropped; a rename must not silently lose the metric
)

// New validates o and starts the writer; Close stops it.
func New(o Options) (*Plugin, error) { return newPlugin(o, time.Now) }

func newPlugin(o Options, now func() time.Time) (*Plugin, error) {
	p := &Plugin{log: o.Logger, payload: o.Payload, now: now, done: make(chan struct{})}
	if p.log == nil {
		p.log = slog.Default()
	}
	var err error
	if p.level, err = parseLevel(o.Level); err != nil {
		return nil, err
	}
	if p.mask, err = parseEvents(o.Events); err != nil {
		return nil, err
	}
	size, err := orDefault("queue size", o.QueueSize, DefaultQueueSize)
	if err != nil {
		return nil, err
	}
	maxBytes, err := orDefault("queue bytes", o.QueueBytes, DefaultQueueBytes)
	if err != nil {
		return nil, err
	}
	p.q = hooks.NewQueue(size)
	p.q.LimitBytes(maxBytes)
	ctx, stop := context.WithCancel(context.Background())
	p.stop = stop
	go p.write(ctx)
	return p, nil
}

var levels = map[string]slog.Level{"debug": slog.LevelDebug, "info": slog.LevelInfo, "warn": slog.LevelWarn, "error": slog.LevelError}

func parseLevel(s string) (slog.Level, error) {
	if s == "" {
		return slog.LevelInfo, nil
	}
	l, ok := levels[strings.ToLower(s)]
	if !ok {
		return 0, fmt.Errorf("event-log: level %q is not one of debug, info, warn, error", s)
	}
	return l, nil
}

// parseEvents is the configured set: every event when none is named.
func parseEvents(names []string) (mqtt.EventMask, error) {
	if len(names) == 0 {
		return mqtt.AllEvents(), nil
	}
	m, err := mqtt.ParseEvents(names)
	if err != nil {
		return 0, fmt.Errorf("event-log: %w", err)
	}
	return m, nil
}

// Wants implements hooks.EventPlugin: the configured events.
func (p *Plugin) Wants() mqtt.EventMask { return p.mask }

// Event implements hooks.EventPlugin. It queues e and returns at once.
func (p *Plugin) Event(e *hooks.Event) { p.q.Push(e) }

// Dropped counts the events never logged because the queue was full (the
// oldest go first) or because they arrived after Close. The hooks Manager
// exports it as mqttd_plugin_events_dropped_total; events still queued
// when Close gives up are not in it, Close's error says how many.
func (p *Plugin) Dropped() uint64 { return p.q.Dropped() }

// Close writes what is queued and stops the writer. When ctx ends first,
// the rest is dropped and Close says how much.
func (p *Plugin) Close(ctx context.Context) error {
	p.q.Close()
	select {
	case <-p.done:
		return nil
	case <-ctx.Done():
		p.stop()
		return fmt.Errorf("event-log: %d events were not logged before the shutdown deadline: %w", p.q.Len(), context.Cause(ctx))
	}
}

// write is the writer goroutine: it logs queued events in order until the
// queue is closed and empty, or Close gives up.
func (p *Plugin) write(ctx context.Context) {
	defer close(p.done)
	batch := make([]*hooks.Event, 0, 64)
	for {
		batch = p.q.Take(ctx, batch[:0], cap(batch))
		if len(batch) == 0 {
			break // closed and drained, or stopped
		}
		for i, e := range batch {
			if ctx.Err() != nil {
				return
			}
			p.line(e)
			batch[i] = nil
		}
		p.reportDrops(false)
	}
	p.reportDrops(true)
}

// reportDrops warns about events dropped since the last warning, unless
// one went out less than warnEvery ago; final reports regardless, so none
// goes unmentioned.
func (p *Plugin) reportDrops(final bool) {
	total := p.q.Dropped()
	lost := total - p.reported
	if lost == 0 {
		return
	}
	now := p.now()
	if !final && !p.warned.IsZero() && now.Sub(p.warned) < warnEvery {
		return
	}
	p.log.Warn("event-log: events lost: the log could not keep up (raise the plugin's queue size or log fewer events)",
		"lost", lost, "lost_total", total)
	p.reported, p.warned = total, now
}

// line logs e: its type, id and seq, then whatever it carries. The
// record's time is the event's, not the moment it was written.
func (p *Plugin) line(e *hooks.Event) {
	ctx := context.Background()
	h := p.log.Handler()
	if !h.Enabled(ctx, p.level) {
		return
	}
	a := append(p.attrs[:0], slog.String("type", e.Type.String()), slog.String("id", e.ID), slog.Uint64("seq", e.Seq))
	if c := e.Client; c != nil {
		a = append(a, slog.String("client_id", c.ClientID))
		if c.Username != "" {
			a = append(a, slog.String("username", c.Username))
		}
	}
	if e.Topic != "" {
		a = append(a, slog.String("topic", e.Topic), slog.Int("qos", int(e.QoS)))
	}
	if m := e.Message; m != nil {
		a = append(a, slog.Int("size", len(m.Payload)), slog.Bool("retain", m.Retain))
		if p.payload {
			a = appendPayload(a, m.Payload)
		}
	}
	if e.Packet != nil {
		a = append(a, slog.String("packet", e.Packet.Type().String()))
	}
	if e.Reason != "" {
		a = append(a, slog.String("reason", e.Reason))
	}
	if e.TargetID != "" {
		a = append(a, slog.String("target_id", e.TargetID))
	}
	p.attrs = a
	t := e.Time
	if t.IsZero() {
		t = time.Now()
	}
	r := slog.NewRecord(t, p.level, "event", 0)
	r.AddAttrs(a...)
	// A handler that cannot write has nowhere better to report it than
	// the log it just failed to write: the line is lost.
	_ = h.Handle(ctx, r)
}

// appendPayload renders a payload: as text when it is short valid UTF-8,
// else base64 of at most maxPayload bytes, flagged when cut.
func appendPayload(a []slog.Attr, b []byte) []slog.Attr {
	if len(b) <= maxTextPayload && utf8.Valid(b) {
		return append(a, slog.String("payload", string(b)))
	}
	if len(b) > maxPayload {
		return append(a, slog.String("payload_base64", base64.StdEncoding.EncodeToString(b[:maxPayload])), slog.Bool("payload_truncated", true))
	}
	return append(a, slog.String("payload_base64", base64.StdEncoding.EncodeToString(b)))
}
