// Package cluster holds the process-level test of a cluster: a nats-server
// process with JetStream (built from the nats-server module this repository
// already requires) and three mqttd processes (built from ./cmd/mqttd), each
// with its own store, driven by real MQTT clients. It checks what the README
// "Cluster" section promises across processes: every QoS across nodes with
// one copy per subscriber, retained messages shared and cleared, client-id
// takeover across nodes, shared subscriptions split across nodes, and a node
// killed with SIGKILL that rejoins.
//
//	go test -race -count=1 ./test/cluster/
package cluster
