// Package e2e holds the end-to-end test of the docker-compose stack without
// Docker: it starts the programs docker-compose.yml runs (mqttd, built from
// ./cmd/mqttd, and examples/hooks-node) as local processes, with the
// environment and config the compose file gives them, rewritten only where a
// container name or a fixed port would not work on 127.0.0.1. Real MQTT
// clients (3.1.1 and 5.0) then check authentication, the topic ACL, event
// delivery, the circuit breaker during a plugin outage, and recovery.
//
//	go test -race -count=1 ./test/e2e/
//
// TestWalkthroughWithoutDocker runs, line by line, the steps of
// examples/hooks-node/README.md that start both beside each other without
// Docker.
//
// The tests never skip: they run npm ci in examples/hooks-node when its
// node_modules is missing, and fail saying what to install when node is not
// on PATH.
package e2e
