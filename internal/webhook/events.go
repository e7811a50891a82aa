package webhook

import (
	"context"
	"encoding/json"
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
		m = maskOf(mqtt.EventTypes())
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

func maskOf(ts []mqtt.EventType) mqtt.EventMask {
	var m mqtt.EventMask
	for _, t := range ts {
		m = m.With(t)
	}
	return m
}

// Wants reports the events the plugin takes: the config's list, else the
// manifest's once it has answered, else all of them. It only ever narrows,
// so a caller that reads it once (before Start, say) gets a superset and
// Event drops the rest.
func (p *Plugin) Wants() mqtt.EventMask { return mqtt.EventMask(p.mask.Load()) }

// Event queues e for delivery when the plugin wants it. It never blocks;
// events the manifest left out are dropped here, before anything is
// serialised.
func (p *Plugin) Event(e *hooks.Event) {
	if mqtt.EventMask(p.mask.Load()).Has(e.Type) {
		p.events.Push(e)
	}
}

// eventJSON is one event on the wire. The spec has a schema per event
// type; they share every field they have, so one struct with the
// type-specific fields optional covers all thirteen. contract tests prove
// each type's encoding valid against its schema.
type eventJSON struct {
	ID       string          `json:"id"`
	Seq      uint64          `json:"seq"`
	Type     string          `json:"type"`
	Time     string          `json:"time"`
	Broker   string          `json:"broker"`
	ClientID *string         `json:"client_id,omitempty"`
	Session  *wire.Session   `json:"session,omitempty"`
	Topic    *string         `json:"topic,omitempty"`
	QoS      *int            `json:"qos,omitempty"`
	Reason   *string         `json:"reason,omitempty"`
	Target   string          `json:"target_client_id,omitempty"`
	Message  *wire.Message   `json:"message,omitempty"`
	Packet   any             `json:"packet,omitempty"`
	Config   *map[string]any `json:"config,omitempty"`
}

// encodeEvent is the batch.Encoder: it appends e as one JSON object.
func (p *Plugin) encodeEvent(dst []byte, e *hooks.Event) ([]byte, error) {
	j := eventJSON{
		ID:     e.ID,
		Seq:    e.Seq,
		Type:   e.Type.String(),
		Time:   e.Time.UTC().Format(time.RFC3339Nano),
		Broker: p.opts.Broker,
	}
	if e.Broker != "" {
		j.Broker = e.Broker
	}
	if c := e.Client; c != nil {
		j.ClientID = &c.ClientID
	}
	switch e.Type {
	case mqtt.EventBrokerPreStart:
		cfg := e.Config
		if cfg == nil {
			cfg = p.opts.Config
		}
		if cfg == nil {
			cfg = map[string]any{}
		}
		j.Config = &cfg
	case mqtt.EventClientConnected, mqtt.EventClientDisconnected, mqtt.EventClientSubscribed, mqtt.EventClientUnsubscribed:
		if e.Client == nil {
			return dst, fmt.Errorf("%s event without a client", e.Type)
		}
		j.Session = session(e.Client)
		switch e.Type {
		case mqtt.EventClientDisconnected:
			j.Reason = &e.Reason
		case mqtt.EventClientSubscribed:
			qos := int(e.QoS)
			j.Topic, j.QoS = &e.Topic, &qos
		case mqtt.EventClientUnsubscribed:
			j.Topic = &e.Topic
		}
	case mqtt.EventMessageReceived, mqtt.EventMessageBroadcast, mqtt.EventRetainedMessage:
		if e.Message == nil {
			return dst, fmt.Errorf("%s event without a message", e.Type)
		}
		m := e.Message
		j.Message = &wire.Message{Topic: m.Topic, Payload: nonNil(m.Payload), QOS: int(m.QoS), Retain: m.Retain,
			Properties: messageProps(m.Properties)}
		j.Target = e.TargetID
	case mqtt.EventPacketReceived, mqtt.EventPacketSent:
		pk, err := packetJSON(e.Packet)
		if err != nil {
			return dst, err
		}
		j.Packet = pk
	}
	if j.ClientID == nil && needsClient(e.Type) {
		return dst, fmt.Errorf("%s event without a client", e.Type)
	}
	b, err := json.Marshal(&j)
	if err != nil {
		return dst, fmt.Errorf("%s event: %w", e.Type, err)
	}
	return append(dst, b...), nil
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

// nonNil keeps an empty payload a "" rather than null, which the spec's
// string type would refuse.
func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
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
