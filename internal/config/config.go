package config

import (
	"os"
	"time"
)

// Config is the whole mqttd configuration. Its mapstructure tags are the
// keys of the file; its doc tags are the one-line descriptions printed in
// the reference (see Reference), and a ref tag, where present, is the
// default shown there when the Go default cannot say it (it sets nothing).
type Config struct {
	Name          string              `mapstructure:"name" ref:"(host name)" doc:"node name, reported in $SYS and plugin events (default: the host name)"`
	Listeners     map[string]Listener `mapstructure:"listeners" doc:"named MQTT listeners; absent = one tcp listener \"default\" on :1883"`
	Limits        Limits              `mapstructure:"limits"`
	Features      Features            `mapstructure:"features"`
	Storage       Storage             `mapstructure:"storage"`
	Plugins       map[string]Plugin   `mapstructure:"plugins" doc:"plugins by alias: HTTP services (url) or built-ins (type); none by default"`
	Auth          Auth                `mapstructure:"auth"`
	TopicCheck    TopicCheck          `mapstructure:"topic-check"`
	SysInterval   time.Duration       `mapstructure:"sys-interval" doc:"$SYS publish period; 0 disables $SYS"`
	ShutdownGrace time.Duration       `mapstructure:"shutdown-grace" doc:"on SIGINT/SIGTERM, how long clients get to flush before they are cut"`
	Admin         Admin               `mapstructure:"admin"`
	Logging       Logging             `mapstructure:"logging"`
	Cluster       Cluster             `mapstructure:"cluster"`

	file    string // the file the configuration was read from, "" for none
	dir     string // relative paths in the file resolve against this directory
	envSet  map[string]string
	warns   []string
	tlsConf map[string]*tlsMaterial
}

// Listener is one MQTT endpoint. Its name (the key under listeners) is free;
// the keys inside are not.
type Listener struct {
	Type string `mapstructure:"type" ref:"tcp" doc:"tcp or ws (WebSocket); tcp when omitted"`
	Bind string `mapstructure:"bind" ref:"(required)" doc:"host:port to listen on, e.g. \":1883\" or \"127.0.0.1:1883\""`
	Path string `mapstructure:"path" ref:"/mqtt (ws)" doc:"HTTP path of a ws listener (default /mqtt)"`
	TLS  TLS    `mapstructure:"tls"`
}

// TLS turns a listener into MQTTS (tcp) or WSS (ws). Relative paths resolve
// against the directory of the config file.
type TLS struct {
	Cert     string `mapstructure:"cert" doc:"PEM certificate chain file; setting it enables TLS"`
	Key      string `mapstructure:"key" doc:"PEM private key file for cert"`
	ClientCA string `mapstructure:"client-ca" doc:"PEM CA bundle; when set, clients must present a certificate it signed (mutual TLS)"`
}

// Features are the optional MQTT capabilities; each can be switched off.
// MQTT 5 clients are told in CONNACK.
type Features struct {
	MaximumQoS              int  `mapstructure:"maximum-qos" doc:"highest QoS accepted from and granted to clients (0, 1 or 2)"`
	Retain                  bool `mapstructure:"retain" doc:"retained messages available"`
	WildcardSubscriptions   bool `mapstructure:"wildcard-subscriptions" doc:"subscriptions with + or # available"`
	SharedSubscriptions     bool `mapstructure:"shared-subscriptions" doc:"$share/{group}/{filter} subscriptions available"`
	SubscriptionIdentifiers bool `mapstructure:"subscription-identifiers" doc:"MQTT 5 Subscription Identifiers available"`
}

// Enabled reports whether any TLS key is set.
func (t TLS) Enabled() bool { return t.Cert != "" || t.Key != "" || t.ClientCA != "" }

// Limits bounds what one client, or all of them, can make the broker hold.
type Limits struct {
	MaxPacketSize     ByteSize      `mapstructure:"max-packet-size" doc:"largest MQTT packet accepted, header included (bytes or 256KiB, 1MiB, 1MB)"`
	MaxConnections    int           `mapstructure:"max-connections" doc:"open connections beyond this are refused"`
	MaxInflight       int           `mapstructure:"max-inflight" doc:"outbound QoS 1/2 messages awaiting acknowledgement, per client"`
	MaxQueued         int           `mapstructure:"max-queued" doc:"messages queued for an offline or slow session; beyond it offline QoS 1/2 and all QoS 0 are dropped, online QoS 1/2 holds its publisher's acknowledgement back"`
	MaxQueuedBytes    ByteSize      `mapstructure:"max-queued-bytes" doc:"bytes (topic, payload and MQTT 5 properties) queued for an offline or slow session; beyond it as max-queued"`
	MaxOutboundBytes  ByteSize      `mapstructure:"max-outbound-bytes" doc:"bytes waiting in one client's write buffer before its QoS 0 messages are dropped"`
	MaxInboundQoS2    int           `mapstructure:"max-inbound-qos2" doc:"inbound QoS 2 packet ids awaiting PUBREL, per client (the MQTT 5 Receive Maximum announced); also the acknowledgements held back from one publisher before its reading stops"`
	ConnectTimeout    time.Duration `mapstructure:"connect-timeout" doc:"time a new connection has to send CONNECT"`
	MaxConnectSize    ByteSize      `mapstructure:"max-connect-size" doc:"largest packet accepted before a client is authenticated (CONNECT, MQTT 5 AUTH); at most max-packet-size"`
	WriteTimeout      time.Duration `mapstructure:"write-timeout" doc:"a write blocked this long closes the connection"`
	MaxKeepAlive      int           `mapstructure:"max-keep-alive" doc:"cap on the client keep-alive, in seconds; 0 = no cap"`
	SessionExpiry     time.Duration `mapstructure:"session-expiry" doc:"offline persistent sessions older than this are removed; 0 = no cap (a 3.1.1 session is kept until its client cleans it; with storage.type memory, until restart at most)"`
	TopicAliasMaximum int           `mapstructure:"topic-alias-maximum" doc:"topic aliases an MQTT 5 client may set towards the broker, and the most the broker sets towards a client"`

	SlowSubscriberTimeout time.Duration `mapstructure:"slow-subscriber-timeout" doc:"an online subscriber that holds publishers back (its queue over max-queued) this long is disconnected (MQTT 5: 0x97); 0 = never"`
	AuthExchangeSteps     int           `mapstructure:"auth-exchange-steps" doc:"AUTH steps one MQTT 5 enhanced-authentication exchange (CONNECT or re-authentication) may take; beyond it the client is refused with 0x87 (counted)"`
	AuthExchangeTimeout   time.Duration `mapstructure:"auth-exchange-timeout" doc:"time one MQTT 5 enhanced-authentication exchange may take, client and plugin together; beyond it the client is refused with 0x87 (counted)"`

	MaxRetained      int      `mapstructure:"max-retained" doc:"retained topics kept; a PUBLISH that would retain one more is still delivered and acknowledged as usual, but not retained (counted, logged); replacing or clearing a retained topic is always allowed; 0 = no bound"`
	MaxRetainedBytes ByteSize `mapstructure:"max-retained-bytes" doc:"bytes (topic, payload and MQTT 5 properties) of all retained messages; beyond it as max-retained; 0 = no bound"`
}

// Admin is the HTTP listener for /healthz, /readyz, /metrics and the admin
// REST API (/api/v1).
type Admin struct {
	Bind  string `mapstructure:"bind" doc:"host:port of the admin HTTP listener; \"\" disables it"`
	Pprof bool   `mapstructure:"pprof" doc:"serve Go's runtime profiles under /debug/pprof on the admin listener (they show the broker's internals: keep the listener private)"`
	Token string `mapstructure:"token" doc:"bearer token the admin API (/api/v1, /plugins, /debug) requires; use ${VAR}. \"\": the API answers only over loopback"`
}

// Logging configures the process log: stderr (journald keeps it under
// systemd), or a file that SIGHUP reopens for logrotate.
type Logging struct {
	Level  string `mapstructure:"level" doc:"debug, info, warn or error"`
	Format string `mapstructure:"format" doc:"text or json"`
	File   string `mapstructure:"file" doc:"append the log to this file instead of stderr; SIGHUP reopens it (logrotate); relative to the config file"`
}

// DefaultListenerName is the name of the listener used when the
// configuration defines none.
const DefaultListenerName = "default"

// Default returns the built-in configuration: what mqttd runs with when
// there is no file and no MQTTD_ variable.
func Default() Config {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "mqttd"
	}
	return Config{
		Name: host,
		Listeners: map[string]Listener{
			DefaultListenerName: {Type: "tcp", Bind: ":1883"},
		},
		Limits: Limits{
			MaxPacketSize:     1 * MiB,
			MaxConnections:    100000,
			MaxInflight:       256,
			MaxQueued:         1000,
			MaxQueuedBytes:    16 * MiB,
			MaxOutboundBytes:  4 * MiB,
			MaxInboundQoS2:    1024,
			ConnectTimeout:    10 * time.Second,
			MaxConnectSize:    64 * KiB,
			WriteTimeout:      30 * time.Second,
			MaxKeepAlive:      0,
			SessionExpiry:     0,
			TopicAliasMaximum: 64,

			SlowSubscriberTimeout: 30 * time.Second,
			AuthExchangeSteps:     8,
			AuthExchangeTimeout:   10 * time.Second,
			MaxRetained:           1000000,
			MaxRetainedBytes:      1 * GiB,
		},
		Features: Features{MaximumQoS: 2, Retain: true, WildcardSubscriptions: true,
			SharedSubscriptions: true, SubscriptionIdentifiers: true},
		Storage: DefaultStorage(),
		Auth: Auth{AllowAnonymous: true, Mode: "all",
			RateLimit: AuthRateLimit{FailuresPerSecond: 1, Burst: 10, MaxPending: 10, MaxSources: 100000}},
		TopicCheck:    TopicCheck{Default: "deny", DenyPublish: "drop"},
		SysInterval:   10 * time.Second,
		ShutdownGrace: 5 * time.Second,
		Admin:         Admin{Bind: "127.0.0.1:9180"},
		Logging:       Logging{Level: "info", Format: "text"},
		Cluster:       Cluster{Replicas: 1, Prefix: "mqttd", NodeLease: 10 * time.Second, InterestTimeout: 2 * time.Second, HandoverTimeout: 5 * time.Second, ForwardTimeout: 5 * time.Second, ReceiveQueue: 8192},
	}
}

// File is the config file the configuration was read from, or "" when it
// is built from defaults and the environment only.
func (c *Config) File() string { return c.file }

// Warnings are problems that do not stop the broker, such as an MQTTD_
// variable that names no key. The caller logs them.
func (c *Config) Warnings() []string { return c.warns }
