package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"time"

	"github.com/mqttd/mqttd/internal/mqtt"
	"github.com/mqttd/mqttd/internal/webhook/wire"
)

// Manifest retry pacing: quick while the plugin is probably starting next
// to the broker, then settling at a slow poll.
const (
	manifestFirstBackoff = 100 * time.Millisecond
	manifestMaxBackoff   = 30 * time.Second
)

// fetchManifest asks GET /manifest until the plugin answers it (200 or
// 404) or ctx ends. first is closed after the first attempt.
func (p *Plugin) fetchManifest(ctx context.Context, first chan<- struct{}) {
	backoff := manifestFirstBackoff
	for attempt := 0; ; attempt++ {
		err := p.askManifest(ctx)
		if attempt == 0 {
			close(first)
		}
		if err == nil || ctx.Err() != nil {
			return
		}
		// Loud once, then quiet: a plugin that is down is already visible
		// in /readyz and in the decision metrics.
		level := p.opts.Logger.Debug
		if attempt == 0 {
			level = p.opts.Logger.Warn
		}
		level("webhook manifest not available yet; retrying in the background", "err", err)
		if p.held.spill() {
			// Durable: what waits for the manifest must survive a restart
			// while the plugin is down.
			p.opts.Logger.Info("webhook plugin down before its manifest answered: events held for it are spooled, and delivered once it says which it wants",
				"events", p.held.spilled.Load())
		}
		t := time.NewTimer(backoff/2 + rand.N(backoff/2+1))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(backoff*2, manifestMaxBackoff)
	}
}

// askManifest makes one attempt. nil means done: the manifest was applied,
// or the plugin has none (404) and the config stands.
func (p *Plugin) askManifest(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, p.opts.Timeout)
	defer cancel()
	r, err := p.client.do(ctx, http.MethodGet, "/manifest", nil)
	if err != nil {
		return &Error{Plugin: p.opts.Alias, Endpoint: "manifest", Kind: classify(ctx, err), Err: err}
	}
	switch {
	case r.status == http.StatusNotFound:
		p.ready.Store(true)
		p.opts.Logger.Info("webhook plugin has no manifest; using the config")
		p.releaseHeld()
		return nil
	case r.status == http.StatusUnauthorized || r.status == http.StatusForbidden:
		return fmt.Errorf("plugin %s: manifest: answered HTTP %d: the plugin refused the broker's signed request; the alias's secret must be the one the plugin checks signatures with (HOOKS_SECRET for examples/hooks-node)", p.opts.Alias, r.status)
	case r.status != http.StatusOK:
		return &Error{Plugin: p.opts.Alias, Endpoint: "manifest", Kind: KindStatus, Status: r.status}
	case r.tooLong:
		return &Error{Plugin: p.opts.Alias, Endpoint: "manifest", Kind: KindBadAnswer, Err: errors.New("longer than max-body")}
	}
	var m wire.Manifest
	if err := json.Unmarshal(r.body, &m); err != nil {
		return &Error{Plugin: p.opts.Alias, Endpoint: "manifest", Kind: KindBadAnswer, Err: err}
	}
	p.applyManifest(&m)
	p.ready.Store(true)
	p.releaseHeld()
	return nil
}

// releaseHeld sends the events held while the manifest was awaited, those
// it asks for (all of them when the plugin has none).
func (p *Plugin) releaseHeld() {
	p.held.release(mqtt.EventMask(p.mask.Load()), p.events.Push)
	p.knownOnce.Do(func() { close(p.known) })
}

// wantsEncoded reports whether the plugin wants the encoded event js, by
// its type: the filter for events spooled before the manifest answered.
// An event whose type cannot be read is kept: delivering one too many
// beats losing one.
func (p *Plugin) wantsEncoded(js []byte) bool {
	const key = `,"type":"`
	i := bytes.Index(js, []byte(key))
	if i < 0 {
		return true
	}
	rest := js[i+len(key):]
	end := bytes.IndexByte(rest, '"')
	if end < 0 {
		return true
	}
	t, ok := mqtt.ParseEventType(string(rest[:end]))
	return !ok || mqtt.EventMask(p.mask.Load()).Has(t)
}

// applyManifest narrows the events to what the manifest asks for, unless
// the config named them (config wins). Names this broker does not know
// are logged and skipped: a newer plugin may know newer events.
func (p *Plugin) applyManifest(m *wire.Manifest) {
	p.manifest.Store(m)
	log := p.opts.Logger.With("name", m.Name, "version", m.Version,
		"authenticate", m.Authenticate, "topic_filtering", m.TopicFiltering)
	if p.opts.Events != nil {
		log.Info("webhook manifest read; events from the config")
		return
	}
	var mask mqtt.EventMask
	for _, name := range m.Events {
		t, ok := mqtt.ParseEventType(string(name))
		if !ok {
			log.Warn(fmt.Sprintf("webhook manifest names unknown event %q; skipped", name))
			continue
		}
		mask = mask.With(t)
	}
	if len(p.opts.Config) > 0 {
		mask = mask.With(mqtt.EventBrokerPreStart)
	}
	p.mask.Store(uint32(mask))
	log.Info("webhook manifest read", "events", len(m.Events))
}
