// Command mqttbench is the benchmark tool of this repository (a dev tool,
// not a shipped binary). It loads an MQTT broker over TCP and measures what
// it delivers: throughput, publish-to-receive latency, message integrity
// and the CPU the broker spent per delivered message. It also plays an
// HTTP plugin for the broker, and turns result files into tables.
//
// Subcommands, each with its own flags (mqttbench SUBCOMMAND -h):
//
//	load    publish and measure (scenarios pairs, fanout, fanin)
//	idle    open idle connections and measure the broker's memory per connection
//	storm   many clients send CONNECT at once; time to the last CONNACK
//	plugin  serve the broker's plugin HTTP contract and count what arrives
//	report  turn -json result lines into Markdown tables
//
// The load client is built to load the broker, not itself. It speaks MQTT
// 3.1.1, or 5.0 with -v5, through a small codec of its own (codec.go,
// codec5.go; so a bug in the broker's codec cannot hide behind the same bug
// here), runs one reader goroutine per connection that reads into a reused
// buffer, writes each published message with one write() like a device
// would, sends acknowledgements in one write per drained read buffer, and
// allocates nothing per message.
//
// Every payload carries the publisher index, a per-publisher sequence
// number and the send time, so each subscriber counts lost, duplicated and
// reordered messages exactly and measures latency without any clock
// synchronisation (sender and receiver share this process's clock).
//
// Examples:
//
//	mqttbench load -scenario pairs -pubs 1 -qos 0 -duration 10s -pid $(pidof mosquitto)
//	mqttbench load -scenario fanout -pubs 1 -subs 100 -rate 1000
//	mqttbench load -scenario fanin -pubs 10 -subs 1 -qos 1 -window 64 -json
//	mqttbench load -v5 -v5-props -scenario pairs -pubs 10 -qos 1
//	mqttbench idle -conns 5000 -pid 1234
//	mqttbench report results.jsonl
//	mqttbench report -baseline "no plugins" results.jsonl   (ratios to a baseline)
//
// Plugin benchmarks (docs/benchmarks.md, "Plugins"; scripts/plugin-bench.sh):
//
//	mqttbench plugin -listen 127.0.0.1:9300 -topic-cache-ttl 60 -manifest-events broker_message_received
//	mqttbench load -scenario pairs -pubs 10 -plugin http://127.0.0.1:9300 -metrics http://127.0.0.1:9180/metrics
//	mqttbench storm -conns 1000 -username u -password p -plugin http://127.0.0.1:9300
//
// Exit status: 0 on success; 1 when a connection failed, the broker broke
// protocol, or a QoS 1/2 promise was broken (loss, unacknowledged
// publishes, QoS 2 duplicates); 2 on a bad subcommand or bad flags.
package main

import (
	"fmt"
	"io"
	"os"
	"strings"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// subcommand is one of mqttbench's tools.
type subcommand struct {
	name    string
	summary string
	run     func(args []string, stdout, stderr io.Writer) int
}

// subcommands are listed by `mqttbench help` in this order.
var subcommands = []subcommand{
	{"load", "publish and measure: throughput, latency, integrity, broker CPU per message", runLoadCmd},
	{"idle", "open idle connections and measure the broker's memory per connection", runIdleCmd},
	{"storm", "many clients send CONNECT at once; time to the last CONNACK", runStormCmd},
	{"plugin", "serve the broker's plugin HTTP contract and count what arrives", runPluginCmd},
	{"report", "turn -json result lines into Markdown tables", runReportCmd},
}

// run is main without the process exit, so tests can drive it.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		writeHelp(stderr)
		return 2
	}
	name, rest := args[0], args[1:]
	switch name {
	case "help", "-h", "-help", "--help":
		if len(rest) > 0 {
			// `mqttbench help load` is `mqttbench load -h`.
			return run([]string{rest[0], "-h"}, stdout, stderr)
		}
		writeHelp(stdout)
		return 0
	}
	for _, c := range subcommands {
		if c.name == name {
			return c.run(rest, stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "mqttbench: unknown subcommand %q; want one of %s, then its flags (mqttbench help)\n", name, subcommandNames())
	return 2
}

func subcommandNames() string {
	names := make([]string, len(subcommands))
	for i, c := range subcommands {
		names[i] = c.name
	}
	return strings.Join(names, ", ")
}

func writeHelp(w io.Writer) {
	fmt.Fprintln(w, "usage: mqttbench SUBCOMMAND [flags] [arguments]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "subcommands:")
	for _, c := range subcommands {
		fmt.Fprintf(w, "  %-7s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "mqttbench SUBCOMMAND -h lists that subcommand's flags.")
}
