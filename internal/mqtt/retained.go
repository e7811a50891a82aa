// Retained messages: storing and clearing them as PUBLISHes with RETAIN arrive.

package mqtt

import "strings"

// setRetained stores or clears the retained message for r's topic
// ([MQTT-3.3.1-5]; [MQTT-3.3.1-10] an empty payload removes it).
func (b *Broker) setRetained(r *routed, from *ClientInfo) {
	if b.disk != nil {
		b.storeRetained(r)
	} else {
		b.applyRetained(r)
	}
	if b.evMask().Has(EventRetainedMessage) {
		b.emit(&Event{Type: EventRetainedMessage, Client: from, Topic: r.topic, QoS: r.qos, Message: r.message()})
	}
}

// applyRetained changes the retained message of r's topic in memory.
func (b *Broker) applyRetained(r *routed) {
	if len(r.payload) == 0 {
		b.retain.Delete(r.topic)
	} else {
		b.retain.Set(strings.Clone(r.topic), r.message())
	}
}
