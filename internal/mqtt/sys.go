package mqtt

import (
	"strconv"
	"time"
)

// publishSys publishes the broker's $SYS/broker/... topics as retained QoS 0
// messages, so a monitoring client that subscribes between two intervals
// still gets the latest values at once.
func (b *Broker) publishSys() {
	st := b.Stats()
	n := func(v int64) string { return strconv.FormatInt(v, 10) }
	vals := [...][2]string{
		{"version", Version},
		{"uptime", n(st.UptimeSeconds)},
		{"time", time.Now().UTC().Format(time.RFC3339)},
		{"clients/connected", n(st.ClientsConnected)},
		{"clients/disconnected", n(st.ClientsPersisted)},
		{"clients/maximum", n(st.ClientsMaximum)},
		{"clients/total", n(st.ClientsTotal)},
		{"messages/received", n(st.MessagesIn)},
		{"messages/sent", n(st.MessagesOut)},
		{"messages/inflight", n(st.Inflight)},
		{"messages/queued", n(st.Queued)},
		{"messages/dropped", n(st.DroppedQoS0 + st.DroppedQueueFull + st.DroppedExpired)},
		{"bytes/received", n(st.BytesIn)},
		{"bytes/sent", n(st.BytesOut)},
		{"subscriptions/count", n(st.Subscriptions)},
		{"retained/count", n(st.Retained)},
	}
	var scratch []match
	now := time.Now()
	for _, kv := range vals {
		m := &Message{Topic: "$SYS/broker/" + kv[0], Payload: []byte(kv[1]), Retain: true, Created: now}
		b.retain.Set(m.Topic, m)
		r := routedFrom(m)
		scratch, _ = b.route(&r, scratch)
	}
}
