package main

import (
	"encoding/json"
	"io"
	"time"
	"unicode/utf8"

	"github.com/mqttd/mqttd/internal/store"
)

// exportPage is how many queued deliveries export reads at a time, so a
// large backlog is streamed, not loaded.
const exportPage = 1000

// The JSON lines of mqttd store export, one object per line, told apart
// by "type": a session (with its subscriptions and packet ids), each of
// its queued deliveries after it, then every retained message.

type exportMessage struct {
	Topic         string    `json:"topic"`
	Payload       *string   `json:"payload,omitempty"`        // when it is UTF-8 text
	PayloadBase64 []byte    `json:"payload_base64,omitempty"` // otherwise
	QoS           byte      `json:"qos"`
	Retain        bool      `json:"retain,omitempty"`
	From          string    `json:"from,omitempty"`
	Created       time.Time `json:"created"`
	Properties    []byte    `json:"properties_base64,omitempty"` // MQTT 5 property block, wire encoding
}

type exportSession struct {
	Type          string           `json:"type"` // "session"
	ClientID      string           `json:"client_id"`
	Username      string           `json:"username,omitempty"`
	Version       byte             `json:"protocol_level"`
	Expiry        uint32           `json:"expiry_seconds"`
	OfflineSince  *time.Time       `json:"offline_since,omitempty"`
	Will          *exportMessage   `json:"will,omitempty"`
	WillDelay     uint32           `json:"will_delay_seconds,omitempty"`
	Subscriptions []exportSub      `json:"subscriptions"`
	Queued        int              `json:"queued"`
	Inflight      []exportInflight `json:"inflight,omitempty"`
	QoS2In        []uint16         `json:"qos2_awaiting_pubrel,omitempty"`
}

type exportSub struct {
	Filter            string `json:"filter"`
	QoS               byte   `json:"qos"`
	NoLocal           bool   `json:"no_local,omitempty"`
	RetainAsPublished bool   `json:"retain_as_published,omitempty"`
	SubscriptionID    uint32 `json:"subscription_id,omitempty"`
}

type exportInflight struct {
	PacketID uint16 `json:"packet_id"`
	Seq      uint64 `json:"seq"`
	Awaiting string `json:"awaiting"` // "puback/pubrec" or "pubcomp"
}

type exportQueued struct {
	Type     string         `json:"type"` // "queued"
	ClientID string         `json:"client_id"`
	Seq      uint64         `json:"seq"`
	QoS      byte           `json:"qos"`
	Retain   bool           `json:"retain,omitempty"`
	SubIDs   []uint32       `json:"subscription_ids,omitempty"`
	Group    string         `json:"share_group,omitempty"`
	Message  *exportMessage `json:"message"`
}

type exportRetained struct {
	Type string `json:"type"` // "retained"
	*exportMessage
}

// exportStore writes s as JSON lines to w.
func exportStore(s store.Store, w io.Writer) error {
	enc := json.NewEncoder(w)
	err := s.Sessions(func(r *store.SessionRecord) error {
		line, err := sessionLine(s, r)
		if err != nil {
			return err
		}
		if err := enc.Encode(line); err != nil {
			return err
		}
		return exportQueue(s, r.ClientID, enc)
	})
	if err != nil {
		return err
	}
	return s.Retained(func(m *store.MessageRecord) error {
		return enc.Encode(exportRetained{Type: "retained", exportMessage: messageOf(m)})
	})
}

func sessionLine(s store.Store, r *store.SessionRecord) (*exportSession, error) {
	line := &exportSession{Type: "session", ClientID: r.ClientID, Username: r.Username, Version: r.Version,
		Expiry: r.Expiry, WillDelay: r.WillDelay, Subscriptions: []exportSub{}}
	for _, sub := range r.Subs {
		line.Subscriptions = append(line.Subscriptions, exportSub(sub))
	}
	if !r.OfflineSince.IsZero() {
		t := r.OfflineSince.UTC()
		line.OfflineSince = &t
	}
	if r.Will != nil {
		line.Will = messageOf(r.Will)
	}
	var err error
	if line.Queued, err = s.QueueLen(r.ClientID); err != nil {
		return nil, err
	}
	in, err := s.Inflight(r.ClientID)
	if err != nil {
		return nil, err
	}
	for _, f := range in {
		awaiting := "puback/pubrec"
		if f.State == store.AwaitComp {
			awaiting = "pubcomp"
		}
		line.Inflight = append(line.Inflight, exportInflight{PacketID: f.PacketID, Seq: f.Seq, Awaiting: awaiting})
	}
	if line.QoS2In, err = s.QoS2In(r.ClientID); err != nil {
		return nil, err
	}
	return line, nil
}

// exportQueue writes client's queue a page at a time.
func exportQueue(s store.Store, client string, enc *json.Encoder) error {
	for from := uint64(0); ; {
		page, err := s.Scan(client, from, exportPage)
		if err != nil {
			return err
		}
		for _, q := range page {
			if err := enc.Encode(exportQueued{Type: "queued", ClientID: client, Seq: q.Seq, QoS: q.QoS, Retain: q.Retain,
				SubIDs: q.SubIDs, Group: q.Group, Message: messageOf(q.Msg)}); err != nil {
				return err
			}
			from = q.Seq + 1
		}
		if len(page) < exportPage {
			return nil
		}
	}
}

func messageOf(m *store.MessageRecord) *exportMessage {
	out := &exportMessage{Topic: m.Topic, QoS: m.QoS, Retain: m.Retain, From: m.From, Created: m.Created.UTC(), Properties: m.Props}
	if utf8.Valid(m.Payload) {
		p := string(m.Payload)
		out.Payload = &p
	} else {
		out.PayloadBase64 = m.Payload
	}
	return out
}
