package mqtt

import (
	"context"
	"crypto/x509"
	"sync/atomic"
	"time"

	"github.com/mqttd/mqttd/internal/mqtt/packets"
)

// Hooks is the seam between the broker and its plugins. Each capability is a
// small interface; a nil one costs nothing on the hot path (the broker tests
// for nil once per call site, and builds no event nobody asked for).
type Hooks struct {
	// Auth decides CONNECTs. Nil accepts every client.
	Auth Authenticator
	// Topics decides subscribe, publish and receive. Nil allows every action.
	Topics TopicChecker
	// Events receives the events of EventSink.Wants. Nil builds no event.
	Events EventSink
}

// ClientInfo describes a connected (or connecting) client to a hook. It is
// immutable once the hook sees it and may be retained.
type ClientInfo struct {
	ClientID        string
	Username        string
	RemoteAddr      string // ip:port of the peer
	Listener        string // listener name
	Transport       string // tcp, tls, ws or wss
	ProtocolVersion byte   // 3, 4 or 5
	CleanStart      bool
	KeepAlive       uint16
	PeerCerts       []*x509.Certificate    // verified client chain with mutual TLS
	AssignedID      bool                   // the broker generated ClientID
	UserProperties  []packets.UserProperty // MQTT 5 CONNECT user properties
	AuthMethod      string                 // MQTT 5 enhanced authentication method, if any

	login *loginCell // grants and attributes from authentication (Login, SetLogin)

	// Memo is the connection's room for the topic checker to remember its
	// latest answers in (see CheckerMemo); the broker gives every
	// connection one when a checker is configured. Nil: the checker keeps
	// nothing per connection. Copies of the ClientInfo share it.
	Memo *CheckerMemo
}

// CheckerMemo holds whatever the topic checker keeps about one connection
// (one type per checker). A check that repeats the connection's last one
// can then be answered from there, without a lookup in a table that every
// connection shares. The broker never reads it.
type CheckerMemo struct{ atomic.Value }

// AuthResult is the answer to a CONNECT. ReasonCode is an MQTT 5 reason code
// (0x86 bad user name or password, 0x87 not authorized, 0x88 server
// unavailable, ...); 0 lets the broker pick. 3.1.1 clients get 0x04 for 0x86
// and 0x05 for everything else (docs/design.md §3.2).
type AuthResult struct {
	Allow      bool
	ReasonCode byte
	Reason     string
	// Plugin names who decided (a plugin alias), for the operator's log and
	// the admin API; "" when the broker's own rules decided.
	Plugin string
	// Login is what an allowing authentication said about the client
	// (grants, attributes); nil when nothing. The broker keeps it with the
	// connection.
	Login *Login
}

// Authenticator decides whether a client may connect. It runs on the
// connecting client's goroutine before any session state changes; ctx ends
// when the client goes away or the broker shuts down.
type Authenticator interface {
	Authenticate(ctx context.Context, c *ClientInfo, password []byte) AuthResult
}

// AuthExchanger is implemented by an Authenticator that also drives MQTT 5
// enhanced authentication: a CONNECT naming an Authentication Method, then
// AUTH packets back and forth, and re-authentication during a session
// (AuthStepRequest.Reauth). A CONNECT with a method and no AuthExchanger is
// refused with 0x8C (bad authentication method).
//
// The broker bounds each exchange in steps and time (Limits.AuthExchangeSteps,
// Limits.AuthExchangeTimeout); the exchanger need not.
type AuthExchanger interface {
	AuthStep(ctx context.Context, c *ClientInfo, req *AuthStepRequest) AuthExchange
}

// AuthStepRequest is one step of an exchange as the client sent it.
type AuthStepRequest struct {
	Method string // the Authentication Method, the same for every step
	Data   []byte // the client's Authentication Data; valid only during the call
	Reauth bool   // a re-authentication of a connected client (AUTH 0x19)
	Step   int    // 1 for the first step of an exchange (CONNECT or AUTH 0x19), then 2, 3, ...
	// State is what the previous step's AuthExchange.State held (nil on
	// step 1): the exchanger's own record of the exchange, which the broker
	// keeps with the connection and drops when the exchange ends.
	State any
}

// AuthExchange is one step of enhanced authentication: Continue sends Data
// to the client and waits for its answer; otherwise Result decides, and Data
// (if any) goes to the client with the outcome. State comes back in the
// next step's AuthStepRequest.
type AuthExchange struct {
	Continue bool
	Data     []byte
	Result   AuthResult
	State    any
}

// Action is what a topic check is about.
type Action uint8

const (
	ActionSubscribe Action = iota + 1 // a topic filter of a SUBSCRIBE
	ActionPublish                     // an inbound PUBLISH, before it is acknowledged
	ActionReceive                     // one delivery of a message to one subscriber
)

func (a Action) String() string {
	switch a {
	case ActionSubscribe:
		return "subscribe"
	case ActionPublish:
		return "publish"
	case ActionReceive:
		return "receive"
	}
	return "unknown"
}

// TopicRequest is one topic check.
type TopicRequest struct {
	Action Action
	Topic  string // topic name, or topic filter for ActionSubscribe
	QoS    byte
	Retain bool
	// InlineMissed: this receive check was put to TopicCheckerNow, which
	// could not answer at once, and comes back through CheckTopic. The
	// checker need not try its in-line answers again.
	InlineMissed bool
}

// TopicResult is the answer to a topic check.
type TopicResult struct {
	Allow      bool
	ReasonCode byte // MQTT 5 reason code for a deny; 0 = 0x87 not authorized
	Reason     string
}

// TopicChecker decides subscribe, publish and receive actions. Subscribe and
// publish checks run on the acting client's goroutine; receive checks run on
// the receiving client's delivery goroutine, so a slow answer delays only the
// client it is about.
type TopicChecker interface {
	CheckTopic(ctx context.Context, c *ClientInfo, req TopicRequest) TopicResult
}

// TopicCheckerNow is implemented by a TopicChecker that can often answer a
// receive check at once, without blocking or I/O (from a cache, or from
// in-process rules). The broker then delivers in line, as with no checker,
// instead of handing the message to the subscriber's writer goroutine; ok
// false sends it the slow way. It is called with the subscriber's session
// locked, so it must never wait.
type TopicCheckerNow interface {
	CheckTopicNow(c *ClientInfo, req TopicRequest) (res TopicResult, ok bool)
}

// EventType names a broker event (docs/design.md §3.3).
type EventType uint8

const (
	EventBrokerPreStart EventType = iota
	EventBrokerPostStart
	EventBrokerPreShutdown
	EventBrokerPostShutdown
	EventClientConnected
	EventClientDisconnected
	EventClientSubscribed
	EventClientUnsubscribed
	EventMessageReceived
	EventMessageBroadcast
	EventRetainedMessage
	EventPacketReceived
	EventPacketSent
	numEventTypes
)

var eventNames = [numEventTypes]string{
	"broker_pre_start", "broker_post_start", "broker_pre_shutdown", "broker_post_shutdown",
	"broker_client_connected", "broker_client_disconnected", "broker_client_subscribed",
	"broker_client_unsubscribed", "broker_message_received", "broker_message_broadcast",
	"broker_retained_message", "mqtt_packet_received", "mqtt_packet_sent",
}

func (t EventType) String() string {
	if t < numEventTypes {
		return eventNames[t]
	}
	return "unknown"
}

// ParseEventType maps a docs/design.md §3.3 event name to its EventType.
func ParseEventType(name string) (EventType, bool) {
	for i, n := range eventNames {
		if n == name {
			return EventType(i), true
		}
	}
	return 0, false
}

// EventTypes lists every event type in declaration order.
func EventTypes() []EventType {
	ts := make([]EventType, numEventTypes)
	for i := range ts {
		ts[i] = EventType(i)
	}
	return ts
}

// EventMask is a set of event types.
type EventMask uint32

// Has reports whether t is in the set.
func (m EventMask) Has(t EventType) bool { return m&(1<<t) != 0 }

// With returns the set plus t.
func (m EventMask) With(t EventType) EventMask { return m | 1<<t }

// Event is one broker event. It and everything it points to are valid only
// during EventSink.Event: payloads and packets may alias the broker's read
// buffers, so a sink that keeps anything must copy it.
type Event struct {
	Type     EventType
	Time     time.Time
	Client   *ClientInfo    // nil for broker lifecycle events
	Topic    string         // filter for (un)subscribed, topic for message events
	QoS      byte           // requested QoS for subscribed, message QoS otherwise
	Message  *Message       // message events and retained_message
	Packet   packets.Packet // packet events
	Reason   string         // disconnected: why the connection ended
	TargetID string         // retained_message for an offline session: the session's client id
}

// EventSink receives events. Event must not block: the broker calls it on
// its hot paths. Wants is read when the broker is built and again every
// second, so a sink may narrow or widen its set while the broker runs; an
// event of a type it just dropped may still reach it for that second.
type EventSink interface {
	Wants() EventMask
	Event(e *Event)
}
