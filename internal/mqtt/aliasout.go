// Server-to-client topic aliases (MQTT 5): a connection whose CONNECT
// announced a Topic Alias Maximum gets repeated topics sent as an empty
// topic name plus a two-byte alias.

package mqtt

import "strings"

// aliasMinTopic is the shortest topic given an alias. Sent by alias, a
// topic costs the 3 bytes of the Topic Alias property instead of its own
// length, so anything shorter than 4 bytes would never save a byte.
const aliasMinTopic = 4

// outAliases is one connection's table of the aliases the broker has told
// the client, at most max of them. Allocated at the first aliased PUBLISH
// and never persisted: a new connection starts with none ([MQTT5-3.3.2-7]),
// so a message resent after a reconnect carries its full topic. No alias
// exceeds the client's maximum ([MQTT5-3.3.2-11]). When the table is full
// the least recently used alias is re-mapped: a PUBLISH with a topic and an
// alias number already in use tells the client the new mapping. Guarded by
// sess.mu, like the write buffer it describes.
type outAliases struct {
	max     uint16
	byTopic map[string]uint16
	// ents is indexed by alias; ents[0] heads a circular list in order of
	// use, most recent first, so the victim is ents[0].prev.
	ents []aliasEnt
}

type aliasEnt struct {
	topic      string
	prev, next uint16
}

func newOutAliases(max uint16) *outAliases {
	return &outAliases{max: max, byTopic: make(map[string]uint16), ents: make([]aliasEnt, 1, min(int(max), 16)+1)}
}

// pick chooses the alias for topic: the one the client knows (known), or
// the one to assign with this PUBLISH, a fresh number while there is room,
// else the least recently used. Nothing changes until commit.
func (t *outAliases) pick(topic string) (alias uint16, known bool) {
	if a, ok := t.byTopic[topic]; ok {
		return a, true
	}
	if n := len(t.ents) - 1; n < int(t.max) {
		return uint16(n + 1), false
	}
	return t.ents[0].prev, false
}

// commit records that a PUBLISH carrying alias (and, unless known, topic)
// went into the write buffer.
func (t *outAliases) commit(topic string, alias uint16, known bool) {
	if known {
		if t.ents[0].next == alias {
			return // already the most recent: a topic repeated back to back
		}
		t.unlink(alias)
		t.pushFront(alias)
		return
	}
	if int(alias) == len(t.ents) {
		t.ents = append(t.ents, aliasEnt{})
	} else {
		delete(t.byTopic, t.ents[alias].topic)
		t.unlink(alias)
	}
	// The topic may point into the publisher's read buffer or share an
	// allocation with a payload: keep a copy of its own.
	topic = strings.Clone(topic)
	t.ents[alias].topic = topic
	t.byTopic[topic] = alias
	t.pushFront(alias)
}

func (t *outAliases) unlink(a uint16) {
	e := &t.ents[a]
	t.ents[e.prev].next = e.next
	t.ents[e.next].prev = e.prev
}

func (t *outAliases) pushFront(a uint16) {
	head := &t.ents[0]
	t.ents[a].prev, t.ents[a].next = 0, head.next
	t.ents[head.next].prev = a
	head.next = a
}

// pickAlias is the alias to send topic with, for a client that accepts
// aliases. Caller holds s.mu.
func (c *client) pickAlias(topic string) (alias uint16, known bool) {
	if c.outAliases == nil {
		c.outAliases = newOutAliases(c.aliasMax)
	}
	return c.outAliases.pick(topic)
}
