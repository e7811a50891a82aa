// Package cluster joins mqttd nodes into one broker through NATS: core NATS
// subjects carry messages between nodes (each node subscribes, once per
// distinct filter, to what its clients subscribed to), and JetStream
// key-value buckets hold what every node must agree on: the node names in
// use, the retained messages, and which node owns each client id.
//
// The broker side is the small mqtt.Cluster interface; a Node implements it.
// Open connects (retrying until NATS answers) and claims the node's name;
// Start attaches the broker and begins exchanging messages.
package cluster
