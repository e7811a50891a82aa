package mqtt

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/mqttd/mqttd/internal/mqtt/packets"
)

// This file is the operator's view of the broker (the admin API reads it):
// snapshots of clients, sessions, subscriptions and retained messages, and
// the few actions an operator takes (kick, delete a retained message,
// publish). Every snapshot takes each session's lock only long enough to
// copy what it shows, one session at a time, and never does I/O under it.

// ClientView is one client as an operator sees it: its connection, when it
// has one, and its session's counts.
type ClientView struct {
	ClientID    string
	Username    string
	RemoteAddr  string
	Protocol    byte // 3, 4 or 5; 0 for an offline session
	Listener    string
	Transport   string
	Connected   bool
	ConnectedAt time.Time // zero while offline
	Clean       bool      // discarded when the connection ends
	Expiry      uint32    // seconds an offline session is kept; 4294967295 = never
	Subs        int
	Inflight    int
	Queued      int
}

// SessionView is one client with the subscriptions of its session.
type SessionView struct {
	ClientView
	Subscriptions []SubscriptionView
}

// SubscriptionView is one subscription of one session. ShareGroup is set
// for a shared subscription, whose Filter is then the inner filter.
type SubscriptionView struct {
	ClientID          string
	Filter            string
	ShareGroup        string
	QoS               byte
	NoLocal           bool
	RetainAsPublished bool
	SubscriptionID    uint32
}

// viewLocked copies what an operator sees of s. Caller holds s.mu.
func (s *Session) viewLocked() ClientView {
	v := ClientView{
		ClientID: s.id,
		Clean:    s.clean,
		Expiry:   s.expiry,
		Subs:     len(s.subs),
		Inflight: s.inflight.live,
		Queued:   s.queuedLocked(),
	}
	if c := s.client; c != nil {
		v.Connected = true
		v.Username = c.info.Username
		v.RemoteAddr = c.info.RemoteAddr
		v.Protocol = c.info.ProtocolVersion
		v.Listener = c.info.Listener
		v.Transport = c.info.Transport
		v.ConnectedAt = c.connectedAt
	}
	return v
}

// Clients returns every session, connected or kept offline, sorted by
// client id.
func (b *Broker) Clients() []ClientView {
	var out []ClientView
	b.store.Range(func(s *Session) bool {
		s.mu.Lock()
		out = append(out, s.viewLocked())
		s.mu.Unlock()
		return true
	})
	slices.SortFunc(out, func(a, b ClientView) int { return cmp.Compare(a.ClientID, b.ClientID) })
	return out
}

// Client returns the session of one client id, connected or offline.
func (b *Broker) Client(id string) (SessionView, bool) {
	s, ok := b.store.Get(id)
	if !ok {
		return SessionView{}, false
	}
	s.mu.Lock()
	v := SessionView{ClientView: s.viewLocked(), Subscriptions: s.subsLocked()}
	s.mu.Unlock()
	return v, true
}

// subsLocked lists s's subscriptions sorted by filter. Caller holds s.mu.
func (s *Session) subsLocked() []SubscriptionView {
	out := make([]SubscriptionView, 0, len(s.subs))
	for f, sub := range s.subs {
		v := SubscriptionView{
			ClientID:          s.id,
			Filter:            f,
			QoS:               sub.qos,
			NoLocal:           sub.noLocal(),
			RetainAsPublished: sub.rap(),
			SubscriptionID:    sub.subID,
		}
		if group, inner, ok := parseShared(f); ok && group != "" {
			v.ShareGroup, v.Filter = group, inner
		}
		out = append(out, v)
	}
	slices.SortFunc(out, func(a, b SubscriptionView) int {
		return cmp.Or(cmp.Compare(a.Filter, b.Filter), cmp.Compare(a.ShareGroup, b.ShareGroup))
	})
	return out
}

// Subscriptions returns every session's subscriptions, sorted by client id
// then filter.
func (b *Broker) Subscriptions() []SubscriptionView {
	var out []SubscriptionView
	b.store.Range(func(s *Session) bool {
		s.mu.Lock()
		out = append(out, s.subsLocked()...)
		s.mu.Unlock()
		return true
	})
	slices.SortStableFunc(out, func(a, b SubscriptionView) int { return cmp.Compare(a.ClientID, b.ClientID) })
	return out
}

// RetainedMatching returns the retained messages whose topics match filter,
// sorted by topic. As for a subscriber, "#" does not reach $-topics: ask
// for "$SYS/#" to see the broker's own.
func (b *Broker) RetainedMatching(filter string) ([]*Message, error) {
	if !packets.ValidTopicFilter(filter) {
		return nil, fmt.Errorf("%q is not a valid topic filter", filter)
	}
	var out []*Message
	b.retain.Match(filter, func(_ string, m *Message) { out = append(out, m) })
	slices.SortFunc(out, func(a, b *Message) int { return cmp.Compare(a.Topic, b.Topic) })
	return out, nil
}

// Retained returns the retained message of one topic.
func (b *Broker) Retained(topic string) (*Message, bool) { return b.retain.Get(topic) }

// DeleteRetained removes the retained message of one topic, as an empty
// retained publish would; it reports whether there was one.
func (b *Broker) DeleteRetained(topic string) bool { return b.retain.Delete(topic) }

// errKicked ends a connection an operator closed.
var errKicked = errors.New("disconnected by an administrator")

// Kick closes the connection of client id now. MQTT 5 clients are told
// why (DISCONNECT 0x98 administrative action). As for any disconnect the
// client did not ask for, its will is published ([MQTT-3.1.2-8]): the
// client did go away without saying goodbye. With discard the session goes
// too (subscriptions, queued and inflight messages), also when the client
// is offline. found is false when no session has that id; kicked is true
// when a connection was closed.
func (b *Broker) Kick(id string, discard bool) (kicked, found bool) {
	c, orphans, found := b.kick(id, discard)
	if len(orphans) > 0 {
		// As when a member leaves: what it held of a shared subscription
		// goes to the group's other members.
		b.redeliverShared(nil, orphans)
	}
	return c != nil, found
}

func (b *Broker) kick(id string, discard bool) (c *client, orphans []delivery, found bool) {
	b.connMu.Lock()
	defer b.connMu.Unlock()
	s, ok := b.store.Get(id)
	if !ok {
		return nil, nil, false
	}
	s.mu.Lock()
	c = s.client
	if discard {
		// Detached here, as a takeover does: the connection's own finish
		// then leaves the session alone and publishes the will at once.
		s.client = nil
		orphans = s.takeShared()
	}
	s.mu.Unlock()
	if c != nil {
		c.kicked.Store(true)
		c.conn.SetReadDeadline(time.Unix(1, 0)) // wakes the reader, which ends the connection
		c.cancel()
	}
	if discard {
		b.discardSession(s)
	}
	return c, orphans, true
}

// PublishRequest is a message an operator publishes as the broker itself.
type PublishRequest struct {
	Topic   string
	Payload []byte
	QoS     byte
	Retain  bool
	Props   *packets.Properties // MQTT 5 properties to forward; nil for none
}

// ErrBadPublish wraps every reason Publish refuses a request;
// ErrPublishTooLarge (which wraps it too) the message's size.
var (
	ErrBadPublish      = errors.New("mqtt: publish refused")
	ErrPublishTooLarge = fmt.Errorf("%w: too large", ErrBadPublish)
)

// Publish routes a message from the broker itself, as if a client had
// published it, and returns how many sessions it was delivered to. The
// topic must be a valid topic name (no wildcards), not a $-topic (those
// are the broker's), and the message must fit limits.max-packet-size.
func (b *Broker) Publish(p PublishRequest) (int, error) {
	if err := b.checkPublish(&p); err != nil {
		if errors.Is(err, ErrPublishTooLarge) {
			return 0, err
		}
		return 0, fmt.Errorf("%w: %v", ErrBadPublish, err)
	}
	m := &Message{Topic: p.Topic, Payload: p.Payload, QoS: p.QoS, Retain: p.Retain, Created: time.Now(), Props: p.Props}
	r := routedFrom(m)
	if m.Retain {
		b.setRetained(&r, nil)
	}
	n := b.routeStored(&r)
	b.forward(&r)
	return n, nil
}

func (b *Broker) checkPublish(p *PublishRequest) error {
	switch {
	case !packets.ValidTopicName(p.Topic):
		return fmt.Errorf("topic %q is not a valid topic name (no + or #, valid UTF-8, not empty)", p.Topic)
	case strings.HasPrefix(p.Topic, "$"):
		return fmt.Errorf("topic %q starts with $: those topics are the broker's own", p.Topic)
	case p.QoS > b.opts.Features.maxQoS():
		return fmt.Errorf("qos %d is above the broker's maximum %d", p.QoS, b.opts.Features.maxQoS())
	case p.Retain && b.opts.Features.NoRetain:
		return errors.New("retained messages are switched off (features)")
	}
	pub := packets.Publish{Topic: p.Topic, Payload: p.Payload, QoS: p.QoS, Retain: p.Retain, PacketID: 1}
	if p.Props != nil {
		pub.Props = *p.Props
	}
	buf, err := pub.Append(nil, packets.V5)
	if err != nil {
		return err
	}
	if len(buf) > b.limits.MaxPacketSize {
		return fmt.Errorf("%w: the message takes %d bytes as a PUBLISH, more than limits.max-packet-size (%d)", ErrPublishTooLarge, len(buf), b.limits.MaxPacketSize)
	}
	return nil
}
