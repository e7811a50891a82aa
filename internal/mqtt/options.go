package mqtt

import (
	"crypto/tls"
	"github.com/mqttd/mqttd/internal/store"
	"log/slog"
	"time"
)

// ListenerConfig describes one named listener. Type is "tcp" or "ws";
// TLS turns either into its secure variant (MQTTS, WSS).
type ListenerConfig struct {
	Name string
	Type string // "tcp" or "ws"
	Bind string // host:port; ":0" picks a free port (tests)
	Path string // WebSocket path, default "/mqtt"
	TLS  *tls.Config
}

// Limits bounds every resource a client can make the broker hold. Each field
// is a config key; zero means "use the default" (see DefaultLimits).
type Limits struct {
	MaxPacketSize     int           // largest packet accepted, fixed header included
	MaxConnections    int           // connections beyond this get CONNACK "server unavailable"
	MaxInflight       int           // outbound QoS 1/2 messages awaiting ack, per client
	MaxQueued         int           // messages queued per offline or slow session
	MaxQueuedBytes    int           // bytes (topic + payload + properties) queued per offline or slow session
	MaxOutboundBytes  int           // bytes waiting in one client's write buffer before QoS 0 is dropped
	MaxInboundQoS2    int           // inbound QoS 2 packet ids awaiting PUBREL, per client
	ConnectTimeout    time.Duration // time a new connection has to send CONNECT
	MaxConnectSize    int           // largest packet before the client is authenticated; at most MaxPacketSize
	WriteTimeout      time.Duration // a write blocked this long closes the connection
	MaxKeepAlive      uint16        // 0 = no cap
	TopicAliasMaximum uint16        // topic aliases an MQTT 5 client may set towards the broker; also caps those sent to it
	SessionExpiry     time.Duration // offline persistent sessions older than this are removed; 0 = never

	// SlowSubscriberTimeout is how long an online subscriber may keep
	// publishers' acknowledgements held back (its queue over MaxQueued or
	// MaxQueuedBytes) before it is disconnected; negative = never.
	SlowSubscriberTimeout time.Duration
	AuthExchangeSteps     int           // AUTH steps one enhanced-authentication exchange may take
	AuthExchangeTimeout   time.Duration // time one enhanced-authentication exchange may take, client and plugin together

	// MaxRetained and MaxRetainedBytes (topic, payload and properties)
	// bound the retained messages: a PUBLISH that would retain a new topic
	// beyond either is routed but not retained. Replacing or clearing a
	// retained topic is always allowed. 0 = the default; negative = no
	// bound.
	MaxRetained      int
	MaxRetainedBytes int
}

// DefaultLimits are the bounds used when a field of Limits is zero.
var DefaultLimits = Limits{
	MaxPacketSize:     1 << 20,
	MaxConnections:    100000,
	MaxInflight:       256,
	MaxQueued:         1000,
	MaxQueuedBytes:    16 << 20,
	MaxOutboundBytes:  4 << 20,
	MaxInboundQoS2:    1024,
	ConnectTimeout:    10 * time.Second,
	MaxConnectSize:    64 << 10,
	WriteTimeout:      30 * time.Second,
	TopicAliasMaximum: 64,

	SlowSubscriberTimeout: 30 * time.Second,
	AuthExchangeSteps:     8,
	AuthExchangeTimeout:   10 * time.Second,
	MaxRetained:           1000000,
	MaxRetainedBytes:      1 << 30,
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits
	if l.MaxPacketSize > 0 {
		d.MaxPacketSize = l.MaxPacketSize
	}
	if l.MaxConnections > 0 {
		d.MaxConnections = l.MaxConnections
	}
	if l.MaxInflight > 0 {
		d.MaxInflight = min(l.MaxInflight, 65535)
	}
	if l.MaxQueued > 0 {
		d.MaxQueued = l.MaxQueued
	}
	if l.MaxQueuedBytes > 0 {
		d.MaxQueuedBytes = l.MaxQueuedBytes
	}
	if l.MaxConnectSize > 0 {
		d.MaxConnectSize = l.MaxConnectSize
	}
	d.MaxConnectSize = min(d.MaxConnectSize, d.MaxPacketSize)
	if l.MaxOutboundBytes > 0 {
		d.MaxOutboundBytes = l.MaxOutboundBytes
	}
	if l.MaxInboundQoS2 > 0 {
		d.MaxInboundQoS2 = l.MaxInboundQoS2
	}
	if l.ConnectTimeout > 0 {
		d.ConnectTimeout = l.ConnectTimeout
	}
	if l.WriteTimeout > 0 {
		d.WriteTimeout = l.WriteTimeout
	}
	if l.TopicAliasMaximum > 0 {
		d.TopicAliasMaximum = l.TopicAliasMaximum
	}
	if l.SlowSubscriberTimeout != 0 {
		d.SlowSubscriberTimeout = max(l.SlowSubscriberTimeout, -1)
	}
	if l.AuthExchangeSteps > 0 {
		d.AuthExchangeSteps = l.AuthExchangeSteps
	}
	if l.AuthExchangeTimeout > 0 {
		d.AuthExchangeTimeout = l.AuthExchangeTimeout
	}
	d.MaxKeepAlive = l.MaxKeepAlive
	if l.MaxRetained != 0 {
		d.MaxRetained = max(l.MaxRetained, -1)
	}
	if l.MaxRetainedBytes != 0 {
		d.MaxRetainedBytes = max(l.MaxRetainedBytes, -1)
	}
	d.SessionExpiry = l.SessionExpiry
	return d
}

// Features switches optional MQTT capabilities off. The zero value offers
// everything; MQTT 5 clients are told in CONNACK what is off and get the
// matching reason codes; 3.1.1 clients get 0x80 in SUBACK, or are
// disconnected for what they cannot be told about.
type Features struct {
	CapQoS            bool // MaximumQoS applies
	MaximumQoS        byte // with CapQoS: highest QoS accepted (0x9B beyond) and granted
	NoRetain          bool // retained messages refused (0x9A)
	NoWildcardSubs    bool // subscriptions with + or # refused (0xA2)
	NoSharedSubs      bool // $share/... subscriptions refused (0x9E)
	NoSubscriptionIDs bool // SUBSCRIBE with a Subscription Identifier refused (0xA1)
}

func (f Features) maxQoS() byte {
	if f.CapQoS {
		return min(f.MaximumQoS, 2)
	}
	return 2
}

// Options configures a Broker. The zero value is a working broker with no
// listeners and no $SYS topics: list listeners in Listeners.
type Options struct {
	Name        string // node name, reported in $SYS and events; default the host name
	Listeners   []ListenerConfig
	Limits      Limits
	Features    Features
	SysInterval time.Duration // $SYS publish period; 0 or negative = off, as sys-interval 0 is in the config
	Logger      *slog.Logger
	Hooks       Hooks
	// DisconnectDeniedPublish closes an MQTT 3.1.1 connection whose PUBLISH
	// the topic check denies, instead of acknowledging and dropping it.
	// MQTT 5 clients always get the reason code in PUBACK/PUBREC.
	DisconnectDeniedPublish bool
	// Store keeps what must survive a restart: persistent sessions with
	// their subscriptions, queues and packet ids, and retained messages.
	// nil keeps everything in memory only. The broker does not close it:
	// close the broker first, then the store.
	Store store.Store
	// OnRecovery, if set, is told how recovery from Store progresses while
	// Start reads it, and once more with Done when it is complete.
	OnRecovery func(RecoveryProgress)
	Cluster    Cluster // nil = a single node
	// SharedStore says Store is shared by every node of Cluster: sessions
	// are not all restored at Start but loaded by the node their client
	// connects to (Cluster.TakeOver), or that adopts them (Broker.Adopt).
	SharedStore bool

	// readerLinger overrides how long an idle reader waits before it
	// parks (tests); 0 = the default.
	readerLinger time.Duration
	// writerLinger overrides how long an idle writer goroutine lingers
	// before it exits (tests); 0 = the default.
	writerLinger time.Duration
	// takingOver runs (tests) when a connection resuming a session has
	// closed the one it takes over, before it is attached itself.
	takingOver func()
}
