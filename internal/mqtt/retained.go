// Retained messages: storing and clearing them as PUBLISHes with RETAIN
// arrive, within Limits.MaxRetained and Limits.MaxRetainedBytes.

package mqtt

import (
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// retainBound serialises changes to the retained messages so that the
// check against the bounds and the change it allows are one step: two
// publishers racing on new topics cannot both take the last slot.
type retainBound struct {
	sync.Mutex
	logged atomic.Int64 // when a refusal was last logged (Unix ns)
}

// retainRefusalLogEvery spaces the warnings about refused retained
// messages: one publisher filling the bound must not flood the log.
const retainRefusalLogEvery = 10 * time.Second

// retainedSize is what a retained message counts against MaxRetainedBytes.
func retainedSize(topic string, m *Message) int {
	return len(topic) + len(m.Payload) + m.Props.Size()
}

func (b *Broker) retainedBytes() int {
	_, n := b.retain.Usage()
	return n
}

// setRetained stores or clears the retained message for r's topic
// ([MQTT-3.3.1-5]; [MQTT-3.3.1-10] an empty payload removes it). A new
// topic beyond the bounds is not retained; the message is still routed by
// the caller and its publisher still acknowledged, since the subscribers
// got it.
func (b *Broker) setRetained(r *routed, from *ClientInfo) {
	if !b.changeRetained(r, from) {
		return
	}
	if b.evMask().Has(EventRetainedMessage) {
		b.emit(&Event{Type: EventRetainedMessage, Client: from, Topic: r.topic, QoS: r.qos, Message: r.message()})
	}
}

// changeRetained applies r to the retained messages, in memory and in the
// store, unless it would retain a new topic beyond the bounds.
func (b *Broker) changeRetained(r *routed, from *ClientInfo) bool {
	b.retainMu.Lock()
	defer b.retainMu.Unlock()
	if len(r.payload) > 0 && !b.retainFits(r) {
		b.retainRefused(r, from)
		return false
	}
	if b.disk != nil {
		b.storeRetained(r)
	} else {
		b.applyRetained(r)
	}
	return true
}

// retainFits reports whether r may be retained: it replaces a retained
// topic, or a new one stays within MaxRetained and MaxRetainedBytes.
// Caller holds retainMu.
func (b *Broker) retainFits(r *routed) bool {
	maxCount, maxBytes := b.limits.MaxRetained, b.limits.MaxRetainedBytes
	if maxCount < 0 && maxBytes < 0 {
		return true
	}
	if _, ok := b.retain.Get(r.topic); ok {
		return true
	}
	count, bytes := b.retain.Usage()
	if maxCount >= 0 && count >= maxCount {
		return false
	}
	size := len(r.topic) + len(r.payload) + r.props.Size()
	return maxBytes < 0 || bytes+size <= maxBytes
}

// retainRefused counts a retained message not kept and warns, at most once
// per retainRefusalLogEvery.
func (b *Broker) retainRefused(r *routed, from *ClientInfo) {
	total := b.stats.retainedRefused.Add(1)
	now := time.Now().UnixNano()
	last := b.retainMu.logged.Load()
	if now-last < int64(retainRefusalLogEvery) || !b.retainMu.logged.CompareAndSwap(last, now) {
		return
	}
	clientID := ""
	if from != nil {
		clientID = from.ClientID
	}
	count, bytes := b.retain.Usage()
	b.log.Warn("retained message not kept: limits.max-retained or limits.max-retained-bytes reached (the message was still delivered)",
		"topic", r.topic, "client", clientID, "retained", count, "retained_bytes", bytes,
		"max_retained", b.limits.MaxRetained, "max_retained_bytes", b.limits.MaxRetainedBytes,
		"refused_total", total)
}

// applyRetained changes the retained message of r's topic in memory.
func (b *Broker) applyRetained(r *routed) {
	if len(r.payload) == 0 {
		b.retain.Delete(r.topic)
	} else {
		b.retain.Set(strings.Clone(r.topic), r.message())
	}
}
