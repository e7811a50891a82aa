package webhook

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/mqttd/mqttd/internal/hooks"
	"github.com/mqttd/mqttd/internal/mqtt"
	"github.com/mqttd/mqttd/internal/webhook/batch"
	"github.com/mqttd/mqttd/internal/webhook/wire"
)

// minEventsTimeout bounds one POST /events at least this long: a batch is
// bigger than a decision, and nobody waits on it.
const minEventsTimeout = 5 * time.Second

// wantedEvents is what the config asks for: the listed events, or all of
// them when the list is absent (the manifest narrows that later), plus
// broker_pre_start whenever there is a config block to hand over.
func (o Options) wantedEvents() mqtt.EventMask {
	var m mqtt.EventMask
	if o.Events == nil {
		m = mqtt.AllEvents()
	}
	for _, name := range o.Events {
		t, _ := mqtt.ParseEventType(name) // checked by withDefaults
		m = m.With(t)
	}
	if len(o.Config) > 0 {
		m = m.With(mqtt.EventBrokerPreStart)
	}
	return m
}

// Wants reports the events the plugin takes: the config's list, else the
// manifest's once it has answered, else all of them (held until it
// answers, then filtered). It only ever narrows,
// so a caller that reads it once (before Start, say) gets a superset and
// Event drops the rest.
func (p *Plugin) Wants() mqtt.EventMask { return mqtt.EventMask(p.mask.Load()) }

// BorrowEvent implements hooks.BorrowingEventPlugin: when the plugin wants e, it is
// encoded into the plugin's next batch at once, so the framework need not
// copy it. It never blocks; events the manifest left out are dropped here,
// before anything is serialised.
//
// Until the manifest answers (when the config names no events), events
// are held instead (see pending), and sent only if the manifest asks.
func (p *Plugin) BorrowEvent(e *hooks.Event) {
	if mqtt.EventMask(p.mask.Load()).Has(e.Type) && !p.held.hold(e) {
		p.events.Push(e)
	}
}

// Event is BorrowEvent for an event the caller owns.
func (p *Plugin) Event(e *hooks.Event) { p.BorrowEvent(e) }

// encodeEvent is the batch.Encoder: it appends e as one JSON object (see
// appendEvent).
func (p *Plugin) encodeEvent(dst []byte, e *hooks.Event) ([]byte, error) {
	return appendEvent(dst, e, p.opts.Broker, p.opts.Config)
}

// needsClient reports whether the spec requires client_id on t.
func needsClient(t mqtt.EventType) bool {
	switch t {
	case mqtt.EventMessageReceived, mqtt.EventPacketReceived, mqtt.EventPacketSent:
		return true
	}
	return false
}

func session(c *mqtt.ClientInfo) *wire.Session {
	return &wire.Session{
		ClientID:        c.ClientID,
		Username:        c.Username,
		RemoteAddr:      c.RemoteAddr,
		Listener:        c.Listener,
		Transport:       wire.Transport(c.Transport),
		ProtocolVersion: wire.ProtocolVersion(c.ProtocolVersion),
		CleanStart:      c.CleanStart,
		KeepAlive:       int(c.KeepAlive),
	}
}

// sendEvents is the batch.Sender: POST /events, classified for retry.
func (p *Plugin) sendEvents(ctx context.Context, body []byte, _ int) error {
	ctx, cancel := context.WithTimeout(ctx, max(p.opts.Timeout, minEventsTimeout))
	defer cancel()
	r, err := p.client.do(ctx, http.MethodPost, "/events", body)
	if err != nil {
		return batch.Classify(nil, err)
	}
	return batch.Classify(&http.Response{
		StatusCode: r.status,
		Status:     fmt.Sprintf("%d %s", r.status, http.StatusText(r.status)),
		Header:     r.header,
	}, nil)
}
