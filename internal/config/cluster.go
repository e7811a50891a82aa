package config

import (
	"net/url"
	"regexp"
	"strings"
	"time"
)

// Cluster joins this node to other mqttd nodes through NATS JetStream, so
// that they act as one broker. No URL: a single node.
type Cluster struct {
	NATS        []string      `mapstructure:"nats" doc:"NATS server URLs (nats://host:4222 or tls://...); empty = a single node, no cluster"`
	Credentials string        `mapstructure:"credentials" doc:"NATS credentials file (JWT and NKey seed); relative to the config file"`
	NKey        string        `mapstructure:"nkey" doc:"NATS NKey seed file for NKey authentication; relative to the config file"`
	TLS         ClusterTLS    `mapstructure:"tls"`
	Replicas    int           `mapstructure:"replicas" doc:"JetStream replicas of the cluster's buckets (1 to 5; 3 in production)"`
	Prefix      string        `mapstructure:"prefix" doc:"prefix of the NATS subjects and JetStream buckets, so several clusters can share one NATS"`
	NodeLease   time.Duration `mapstructure:"node-lease" doc:"how long a node's claim on its name outlives the node; a restarted node waits up to this long for a crashed predecessor's claim"`
	// InterestTimeout bounds the wait of a SUBACK for the other nodes.
	InterestTimeout time.Duration `mapstructure:"interest-timeout" doc:"how long a SUBACK waits for every other node to acknowledge a new filter; a node that does not answer in time is logged and counted (mqttd_cluster_interest_timeouts_total), and this node then sends every message to NATS until it answers again"`
	// ForwardTimeout bounds the wait of a QoS 1/2 acknowledgement for the
	// other nodes.
	ForwardTimeout time.Duration `mapstructure:"forward-timeout" doc:"how long a QoS 1/2 PUBACK/PUBREC waits for the nodes subscribed to its topic to confirm they have the message (stored, for persistent sessions); past it the publisher is refused (MQTT 5: 0x80, 3.1.1: connection closed) and counted in mqttd_cluster_forward_unconfirmed_total"`
	// ReceiveQueue bounds what waits to be routed from other nodes.
	ReceiveQueue int `mapstructure:"receive-queue" doc:"messages from other nodes (NATS messages, each a batch of one topic) waiting to be routed, per inbox (one per CPU); past it they are dropped (a QoS 1/2 publisher elsewhere is refused after cluster.forward-timeout) and counted in mqttd_cluster_receive_dropped_total"`
	// HandoverTimeout matters with a store the nodes share.
	HandoverTimeout time.Duration `mapstructure:"handover-timeout" doc:"with a shared store: how long a CONNECT waits for the node holding its session to let it go; past it the client is refused (server unavailable) while that node's lease is held"`
}

// ClusterTLS is the client side of TLS towards NATS. Relative paths resolve
// against the directory of the config file.
type ClusterTLS struct {
	CA   string `mapstructure:"ca" doc:"PEM CA bundle that signed the NATS servers' certificates"`
	Cert string `mapstructure:"cert" doc:"PEM client certificate, when NATS asks for one"`
	Key  string `mapstructure:"key" doc:"PEM private key of cert"`
}

// Enabled reports whether the node is part of a cluster.
func (c Cluster) Enabled() bool { return len(c.NATS) > 0 }

// clusterPrefix is what the prefix may be: it is one NATS subject token and
// part of JetStream bucket names.
var clusterPrefix = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// validateCluster checks the cluster section and resolves its file paths.
func (l *loader) validateCluster(c *Config) []error {
	var errs []error
	add := func(e error) { errs = append(errs, e) }
	cl := &c.Cluster
	if len(cl.NATS) == 0 {
		cl.NATS = nil // absent and [] are the same: no cluster
	}
	for i, u := range cl.NATS {
		cl.NATS[i] = strings.TrimSpace(u)
		p, err := url.Parse(cl.NATS[i])
		if err != nil || p.Host == "" || !natsScheme(p.Scheme) {
			add(l.errorf("cluster.nats", "%q is not a NATS URL (use nats://host:4222, or tls:// for TLS)", u))
		}
	}
	if !clusterPrefix.MatchString(cl.Prefix) {
		add(l.errorf("cluster.prefix", "%q is not a prefix (use letters, digits, - and _, e.g. mqttd)", cl.Prefix))
	}
	if cl.Enabled() && !clusterPrefix.MatchString(c.Name) {
		add(l.errorf("name", "%q cannot name a cluster node (use letters, digits, - and _)", c.Name))
	}
	chk := bounds{l, &errs}
	chk.intRange("cluster.replicas", cl.Replicas, 1, 5)
	chk.intRange("cluster.receive-queue", cl.ReceiveQueue, 16, 1<<24)
	if cl.InterestTimeout < 10*time.Millisecond {
		add(l.errorf("cluster.interest-timeout", "%s is too short (use at least 10ms, e.g. 2s)", cl.InterestTimeout))
	}
	if cl.ForwardTimeout < 10*time.Millisecond {
		add(l.errorf("cluster.forward-timeout", "%s is too short (use at least 10ms, e.g. 5s)", cl.ForwardTimeout))
	}
	if cl.NodeLease < time.Second {
		add(l.errorf("cluster.node-lease", "%s is too short (use at least 1s, e.g. 10s)", cl.NodeLease))
	}
	if cl.HandoverTimeout < 100*time.Millisecond {
		add(l.errorf("cluster.handover-timeout", "%s is too short (use at least 100ms, e.g. 5s)", cl.HandoverTimeout))
	}
	if (cl.TLS.Cert == "") != (cl.TLS.Key == "") {
		add(l.errorf("cluster.tls", "cert and key go together (set both or neither)"))
	}
	for _, p := range []*string{&cl.Credentials, &cl.NKey, &cl.TLS.CA, &cl.TLS.Cert, &cl.TLS.Key} {
		*p = c.resolve(*p)
	}
	return errs
}

func natsScheme(s string) bool {
	switch s {
	case "nats", "tls", "ws", "wss":
		return true
	}
	return false
}
