// Package cluster holds the process-level tests of a cluster: a nats-server
// process with JetStream (built from the nats-server module this repository
// already requires) and three mqttd processes (built from ./cmd/mqttd),
// driven by real MQTT clients.
//
// TestThreeNodes gives each node its own store and checks what the README
// "Cluster" section promises across processes: every QoS across nodes with
// one copy per subscriber, retained messages shared and cleared, client-id
// takeover across nodes, shared subscriptions split across nodes, and a node
// killed with SIGKILL that rejoins.
//
// TestSharedStore runs the nodes on one store in JetStream
// (storage.type jetstream) and checks that persistent sessions follow their
// clients between processes: resumed on another node with what was queued
// meanwhile, taken over with their queue, and, with a node killed by
// SIGKILL under QoS 1 load, that every message a publisher was acknowledged
// for reaches the subscriber, whether the dead node held the subscriber or
// the publishers; the killed node, restarted, serves sessions again.
//
//	go test -race -count=1 ./test/cluster/
//
// CLUSTER_TEST_LOGS=dir writes each process's whole output to dir (a
// failing test logs only the last lines).
package cluster
