package mqtt

import (
	"context"
	"log/slog"

	"github.com/mqttd/mqttd/internal/mqtt/packets"
)

// clientWill is a will with the identity of the client that set it: the
// topic check decides it for that client when it would be sent.
type clientWill struct {
	msg    *Message
	client *ClientInfo
}

// willAllowed asks the topic checker whether the will's client may publish
// it now (the rights it has when the will would go out, immediate or
// delayed, retained or not). A denied will is dropped, counted and logged at
// debug; so is one whose check did not complete because the broker began
// closing.
func (b *Broker) willAllowed(w *clientWill) bool {
	if b.hooks.Topics == nil {
		return true
	}
	m := w.msg
	req := TopicRequest{Action: ActionPublish, Topic: m.Topic, QoS: m.QoS, Retain: m.Retain}
	res := b.hooks.Topics.CheckTopic(b.ctx, w.client, req)
	if res.Allow && b.ctx.Err() == nil {
		return true
	}
	b.stats.droppedWill.Add(1)
	b.logDenied(w.client, "will", req.Topic, res)
	return false
}

// logDenied writes one debug record for a denied action (subscribe,
// publish, receive, will) on topic.
func (b *Broker) logDenied(ci *ClientInfo, action, topic string, res TopicResult) {
	if !b.log.Enabled(context.Background(), slog.LevelDebug) {
		return
	}
	code := packets.ReasonCode(res.ReasonCode)
	if code < 0x80 {
		code = packets.NotAuthorized
	}
	b.log.Debug("denied", "client_id", ci.ClientID, "username", ci.Username, "topic", topic,
		"action", action, "reason_code", reasonCode(byte(code)), "reason", res.Reason)
}
