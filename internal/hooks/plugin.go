// Package hooks is mqttd's plugin framework: the registry of plugins by
// alias, the authenticate and topic_filtering chains with aMQTT's
// combination rules (docs/design.md §3.2), and the fan-out of broker events to the
// plugins that asked for them (docs/design.md §3.3). It turns the broker's hook seam
// (mqtt.Hooks) into calls on plugins, whether they live in-process (the
// built-ins) or behind HTTP (internal/webhook); the broker cannot tell them
// apart.
package hooks

import (
	"context"
	"errors"
	"time"

	"github.com/mqttd/mqttd/internal/mqtt"
	"github.com/mqttd/mqttd/internal/mqtt/packets"
)

// Result is a plugin's answer to a decision: aMQTT's True / False / None.
type Result uint8

const (
	Ignore Result = iota // no opinion; the zero value
	Allow                // let the client do it (unless another plugin denies)
	Deny                 // refuse; in a chain a deny cannot be overruled
	// Continue answers a step of MQTT 5 enhanced authentication only
	// (AuthRequest.ExchangeID set): the exchange goes on, Decision.AuthData
	// goes to the client, and its answer comes back to the same plugin.
	Continue
)

// String is the result's name in config, metrics labels and the HTTP
// wire format: "allow", "deny" or "ignore".
func (r Result) String() string {
	switch r {
	case Allow:
		return "allow"
	case Deny:
		return "deny"
	case Continue:
		return "continue"
	}
	return "ignore"
}

// Decision is one plugin's answer to authenticate or topic_filtering.
type Decision struct {
	// Result is the answer; Ignore leaves the decision to the other
	// plugins and then to the chain's default.
	Result Result
	// ReasonCode is the MQTT 5 reason code a deny should carry (0x86 bad
	// user name or password, 0x8A banned, ...). 0 lets the chain pick; a code
	// the packet does not allow is replaced by 0x87.
	ReasonCode byte
	// Reason is a human-readable reason, sent to MQTT 5 clients that asked
	// for problem information.
	Reason string
	// AuthData is enhanced authentication's data for the client (raw
	// bytes; a string keeps Decision comparable): the challenge of a
	// Continue, or the final data of an Allow.
	AuthData string
	// Login is what an authenticate allow says about the client: grants
	// (their filters may use %u and %c, which the chain replaces with the
	// client's user name and client id) and attributes. The broker keeps
	// it with the client until its next (re-)authentication. Ignored on
	// any other answer; must not be changed once returned.
	Login *mqtt.Login
}

// AuthRequest is what an authenticate call is about. Client is the
// broker's view of the connecting client; Password is the raw CONNECT
// password (nil when absent). Neither may be kept after the call returns.
type AuthRequest struct {
	Client   *mqtt.ClientInfo // who connects: client id, user name, address, protocol, properties
	Password []byte           // the CONNECT password, nil when the packet has none

	// MQTT 5 enhanced authentication, set for each step of an exchange
	// (ExchangeID not empty); a plugin that does not know Method ignores.
	Method     string // the Authentication Method
	Data       []byte // the client's Authentication Data for this step
	ExchangeID string // the same for every step of one exchange; unguessable
	Step       int    // 1 for the first step, then 2, 3, ...
	Reauth     bool   // a re-authentication of a connected client
}

// AuthPlugin is the authenticate capability. An error (or a panic, or
// missing the deadline of ctx) makes the chain apply the plugin's on-error
// policy; the plugin need not apply it itself.
type AuthPlugin interface {
	Authenticate(ctx context.Context, req *AuthRequest) (Decision, error)
}

// TopicFilter is the topic_filtering capability: subscribe, publish and
// receive checks (req.Action). Errors are treated as for AuthPlugin.
type TopicFilter interface {
	FilterTopic(ctx context.Context, c *mqtt.ClientInfo, req mqtt.TopicRequest) (Decision, error)
}

// TopicFilterNow is implemented by a TopicFilter that can often decide at
// once, without blocking or I/O: from a cache, or from in-process rules.
// When every topic plugin answers so, the broker delivers a message in line
// instead of through the subscriber's writer goroutine. ok false means "ask
// FilterTopic". It runs with the subscriber's session locked: it must never
// wait, and must not panic.
//
// The chain asks each plugin in line at most once per check, and calls
// FilterTopic only after FilterTopicNow said ok false for that check (or
// when the broker's own in-line attempt already missed), so FilterTopic
// need not repeat the in-line lookup; it must still answer on its own.
//
// Unlike the other calls, it is made without holding the plugin against
// a Reload (see state.inlineRound): it may run concurrently with,
// and after, Close of a plugin that a Reload replaced. It must then answer
// from what it holds, or say ok false, and never use what Close released.
type TopicFilterNow interface {
	FilterTopicNow(c *mqtt.ClientInfo, req mqtt.TopicRequest) (d Decision, ok bool)
}

// TopicFilterReuse is implemented by a TopicFilterNow whose in-line
// answers the chain may keep for one connection and serve again, without
// asking, while the plugin says they hold (see connMemo). A publisher
// repeats its topic, and a subscriber gets its messages from a few, so most
// checks repeat the connection's previous one.
//
// FilterTopicNowStamped is FilterTopicNow plus a stamp for the answer; a
// zero stamp means it may not be kept. Reusable reports whether an answer
// stamped s may be served again now: it holds until the plugin's own copy
// expires or is purged, or the plugin closes. Reused tells the plugin that
// one kept answer was served (it counts a hit, as a lookup would have).
// Both run for every repeated check, on every core: no lock, no
// allocation, no blocking.
type TopicFilterReuse interface {
	TopicFilterNow
	FilterTopicNowStamped(c *mqtt.ClientInfo, req mqtt.TopicRequest) (d Decision, s Stamp, ok bool)
	Reusable(s Stamp) bool
	Reused()
}

// Stamp is what a TopicFilterReuse plugin needs to tell whether an answer
// it gave still holds: a generation of its own and an expiry (Unix
// nanoseconds). The chain only keeps it; the zero Stamp is never reusable.
type Stamp struct {
	Gen   uint64
	Until int64
}

// EventPlugin is the events capability. Wants may change while the plugin
// runs (an HTTP plugin narrows it once its manifest answers); it is read
// for every event and by the broker every second, and events no plugin
// wants are never built. It must be cheap and safe for concurrent use.
// Event hands over one event and must not block: a sink queues it (see
// Queue) and does its work on its own goroutines. The event is immutable
// and shared with other sinks; it may be kept.
type EventPlugin interface {
	Wants() mqtt.EventMask
	Event(e *Event)
}

// BorrowingEventPlugin is an EventPlugin that takes events it will not keep: a sink
// that serialises each event at once (an HTTP plugin encodes it into its
// next batch). The framework then hands it the broker's event as it is,
// without the owned copy an Event call gets, so an event costs it no
// allocation.
//
// BorrowEvent must not block, and e and everything it points to (topic,
// payload, packet, id) are valid only during the call: they alias buffers
// the broker reuses. The sink copies what it keeps. When a sink has both
// methods the framework calls only BorrowEvent.
type BorrowingEventPlugin interface {
	EventPlugin
	BorrowEvent(e *Event)
}

// SelfTimed is implemented by plugins that bound each call themselves,
// and only when the call waits on something: an HTTP plugin times its
// requests, so a decision from its cache costs no timer. When
// TimesOwnCalls says so, the framework puts no timeout of its own around
// the plugin's calls and PluginSpec.Timeout is not used; the plugin must
// still honour ctx, which ends when the client goes.
type SelfTimed interface {
	TimesOwnCalls() bool
}

// Closer is implemented by plugins holding resources. Close is called at
// broker shutdown after broker_post_shutdown has been handed to every sink;
// ctx bounds how long a sink may take to drain its queue.
type Closer interface {
	Close(ctx context.Context) error
}

// Starter is implemented by plugins that must do work before the broker
// accepts clients, such as fetching an HTTP plugin's manifest. Start runs
// before broker_pre_start; an error stops the broker from starting.
type Starter interface {
	Start(ctx context.Context) error
}

// Plugin is what a plugin alias resolves to: any value implementing one or
// more of AuthPlugin, TopicFilter and EventPlugin (and optionally Starter
// and Closer). The framework asks once, at load, which it has.
type Plugin any

// OnError is what a decision becomes when the plugin fails: it errs,
// panics, times out, or its circuit breaker is open.
type OnError uint8

const (
	OnErrorDeny   OnError = iota // deny (the default); MQTT 5 clients hear 0x88 server unavailable
	OnErrorAllow                 // allow
	OnErrorIgnore                // as if the plugin answered ignore
	OnErrorStale                 // the plugin serves its last decision even if expired (webhook); else deny
)

// ParseOnError maps a config value to an OnError.
func ParseOnError(s string) (OnError, bool) {
	switch s {
	case "", "deny":
		return OnErrorDeny, true
	case "allow":
		return OnErrorAllow, true
	case "ignore":
		return OnErrorIgnore, true
	case "stale":
		return OnErrorStale, true
	}
	return 0, false
}

// String is the policy's config value: "deny", "allow", "ignore" or
// "stale".
func (o OnError) String() string {
	return [...]string{"deny", "allow", "ignore", "stale"}[o]
}

// ErrStale is returned (wrapped) by a plugin whose on-error policy is stale
// but that has no decision to serve; the chain then denies.
var ErrStale = errors.New("no stale decision to serve")

// Event is one broker event as plugins see it: an owned, immutable copy of
// the broker's mqtt.Event (which aliases read buffers), stamped with the
// fields every plugin event carries (docs/design.md §4).
type Event struct {
	ID     string         // unique across brokers and restarts
	Seq    uint64         // per broker, increasing in the order events were built
	Type   mqtt.EventType // which event; decides which other fields are set
	Time   time.Time      // when the broker saw it, UTC
	Broker string         // node name (config name)

	Client   *mqtt.ClientInfo // nil for broker lifecycle events; a copy the broker no longer touches
	Topic    string           // filter for (un)subscribed, topic for message events
	QoS      byte             // subscription QoS for (un)subscribed, message QoS for message events
	Message  *Message         // message events and broker_retained_message
	Packet   packets.Packet   // mqtt_packet_received / mqtt_packet_sent, decoded from an owned buffer
	Reason   string           // broker_client_disconnected: why the connection ended
	TargetID string           // broker_retained_message for an offline session: its client id
	Config   map[string]any   // broker_pre_start only: the receiving plugin's own config block
}

// Message is an owned copy of an application message.
type Message struct {
	Topic      string              // the topic name it was published to
	Payload    []byte              // the application payload, owned by the event
	QoS        byte                // the QoS it was published with
	Retain     bool                // the RETAIN flag
	Properties *packets.Properties // MQTT 5 properties, nil when none
}
