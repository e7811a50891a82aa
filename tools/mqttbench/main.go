// Command mqttbench loads an MQTT broker over TCP and measures what it
// delivers: throughput, publish-to-receive latency, message integrity and
// the CPU the broker spent per delivered message.
//
// It is built to load the broker, not itself. It speaks MQTT 3.1.1, or 5.0
// with -v5, through a small codec of its own (so a bug in the broker's
// codec cannot hide behind the same bug here), runs one reader goroutine per connection that
// reads into a reused buffer, writes each published message with one
// write() like a device would, sends acknowledgements in one write per
// drained read buffer, and allocates nothing per message.
//
// Scenarios:
//
//	pairs   N publishers, each with its own topic and its own subscriber
//	fanout  N publishers -> M subscribers, all on one topic
//	fanin   N publishers on distinct topics -> M subscribers on a '+' filter
//
// Every payload carries the publisher index, a per-publisher sequence
// number and the send time, so each subscriber counts lost, duplicated and
// reordered messages exactly and measures latency without any clock
// synchronisation (sender and receiver share this process's clock).
//
// Examples:
//
//	mqttbench -scenario pairs -pubs 1 -qos 0 -duration 10s -pid $(pidof mosquitto)
//	mqttbench -scenario fanout -pubs 1 -subs 100 -rate 1000
//	mqttbench -scenario fanin -pubs 10 -subs 1 -qos 1 -window 64 -json
//	mqttbench -v5 -v5-props -scenario pairs -pubs 10 -qos 1
//	mqttbench -mode idle -conns 5000 -pid 1234
//	mqttbench -mode report results.jsonl
//	mqttbench -mode report -baseline "no plugins" results.jsonl   (ratios to a baseline)
//
// Plugin benchmarks (docs/benchmarks.md, "Plugins"; scripts/plugin-bench.sh):
//
//	mqttbench -mode plugin -listen 127.0.0.1:9300 -topic-cache-ttl 60 -manifest-events broker_message_received
//	mqttbench -scenario pairs -pubs 10 -plugin http://127.0.0.1:9300 -metrics http://127.0.0.1:9180/metrics
//	mqttbench -mode storm -conns 1000 -username u -password p -plugin http://127.0.0.1:9300
//
// Exit status: 0 on success; 1 when a connection failed, the broker broke
// protocol, or a QoS 1/2 promise was broken (loss, unacknowledged
// publishes, QoS 2 duplicates); 2 on bad flags.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"strings"
	"time"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is main without the process exit, so tests can drive it.
func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("mqttbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	pid := os.Getpid()
	var (
		mode      = fs.String("mode", "load", "load: publish and measure; idle: open -conns idle connections and measure broker memory; storm: -conns clients send CONNECT at once, time to the last CONNACK; plugin: serve the plugin HTTP contract on -listen and count what arrives; report: turn -json result files (arguments) into a Markdown table")
		broker    = fs.String("broker", "127.0.0.1:1883", "broker TCP address")
		scenario  = fs.String("scenario", "pairs", "pairs, fanout or fanin")
		pubs      = fs.Int("pubs", 1, "number of publishers")
		subs      = fs.Int("subs", 0, "number of subscribers (pairs: must equal -pubs; default 1 for fanout/fanin)")
		qos       = fs.Int("qos", 0, "QoS of publishes and subscriptions: 0, 1 or 2")
		size      = fs.Int("size", 64, "payload bytes (at least 24: publisher, sequence, timestamp)")
		duration  = fs.Duration("duration", 10*time.Second, "measured publishing time")
		warmup    = fs.Duration("warmup", time.Second, "publishing time before measuring starts (counted for loss, not for rates, latency or CPU)")
		drain     = fs.Duration("drain", 3*time.Second, "how long to wait for stragglers after publishing stops")
		rate      = fs.Float64("rate", 0, "messages per second per publisher; 0 = closed loop limited by -window")
		window    = fs.Int("window", 256, "max messages outstanding per publisher (sent, not yet received by all its subscribers; for QoS 1/2 also not yet acknowledged); 0 = unbounded")
		burst     = fs.Int("burst", 1, "closed loop: a publisher blocked on -window resumes when this many slots are free (1 = smooth load)")
		inflight  = fs.Int("inflight", 0, "max unacknowledged QoS 1/2 publishes per publisher; 0 = same as -window")
		bpid      = fs.Int("pid", 0, "broker process id: report its CPU (and RSS in idle mode) from /proc")
		asJSON    = fs.Bool("json", false, "print one JSON object per run instead of text")
		topicPfx  = fs.String("topic-prefix", fmt.Sprintf("mqttbench/%d", pid), "topic prefix; topics are PREFIX/N (fanout: PREFIX/all)")
		clientPfx = fs.String("clients-prefix", fmt.Sprintf("mqttbench-%d-", pid), "client id prefix; ids are PREFIXp0, PREFIXs0, ...")
		keepAlive = fs.Duration("keepalive", 60*time.Second, "MQTT keep-alive for load connections (PINGREQ sent every half of it)")
		connTO    = fs.Duration("connect-timeout", 10*time.Second, "timeout for TCP connect, CONNACK and SUBACK")
		conns     = fs.Int("conns", 5000, "idle mode: number of connections")
		hold      = fs.Duration("hold", 3*time.Second, "idle mode: wait this long with all connections open before reading RSS")
		username  = fs.String("username", "", "CONNECT user name (optional)")
		password  = fs.String("password", "", "CONNECT password (optional, needs -username)")
		label     = fs.String("label", "", "free text copied into the JSON result (e.g. the broker name)")
		maxOther  = fs.Float64("max-other", 0, "report mode: leave out runs during which other processes used more than this CPU % (100 = one core); 0 = keep all")
		caseName  = fs.String("case", "", "scenario title copied into the JSON result (used by -mode report)")
		protocol  = fs.String("protocol", "4", "MQTT version: 4 (3.1.1) or 5 (5.0)")
		v5        = fs.Bool("v5", false, "MQTT 5.0: short for -protocol 5")
		v5Props   = fs.Bool("v5-props", false, "MQTT 5.0: every PUBLISH carries a message expiry interval and a user property, and every subscriber checks that the broker forwarded them")

		pluginURL  = fs.String("plugin", "", "load, storm: base URL of a -mode plugin server; its counters over the run go into the result")
		metricsURL = fs.String("metrics", "", "load, storm: the broker's Prometheus URL (e.g. http://127.0.0.1:9180/metrics); plugin counters and event drops over the run go into the result")
		baseline   = fs.String("baseline", "", "report mode: label of the baseline runs; prints each other label's throughput as a ratio to it, run by run")

		sameID     = fs.Bool("same-id", false, "storm: every client uses the same client id (identical authenticate requests)")
		bursts     = fs.Int("bursts", 1, "storm: split -conns into this many bursts, one after another")
		expectCode = fs.Int("expect-code", 0, "storm: the CONNACK code every client must get (0 accepted, 5 not authorised, 0x87...); -1 = any")

		listen       = fs.String("listen", "127.0.0.1:9300", "plugin mode: address to serve on")
		delay        = fs.Duration("delay", 0, "plugin mode: delay before answering authenticate and topic_filtering")
		authDelay    = fs.Duration("auth-delay", -1, "plugin mode: delay before answering authenticate (default -delay)")
		topicDelay   = fs.Duration("topic-delay", -1, "plugin mode: delay before answering topic_filtering (default -delay)")
		cacheTTL     = fs.Int("cache-ttl", 60, "plugin mode: cache_ttl (seconds) in decisions; negative leaves it out")
		authTTL      = fs.Int("auth-cache-ttl", -2, "plugin mode: cache_ttl of authenticate answers (default -cache-ttl)")
		topicTTL     = fs.Int("topic-cache-ttl", -2, "plugin mode: cache_ttl of topic_filtering answers (default -cache-ttl)")
		authResult   = fs.String("auth-result", "allow", "plugin mode: authenticate answer: allow, deny or ignore")
		topicResult  = fs.String("topic-result", "allow", "plugin mode: topic_filtering answer: allow, deny or ignore")
		authReason   = fs.Int("auth-reason-code", 0, "plugin mode: reason_code in a deny (e.g. 134 = 0x86 bad user name or password); 0 = none")
		manifestEvts = fs.String("manifest-events", "", "plugin mode: comma-separated event types the manifest asks for (e.g. broker_message_received)")
		noManifest   = fs.Bool("no-manifest", false, "plugin mode: answer GET /manifest with 404")
		validFirst   = fs.Int("validate-first", 100, "plugin mode: check the first N event batches in full (valid JSON, every field the contract requires)")
		validEvery   = fs.Int("validate-every", 16, "plugin mode: after -validate-first, check one event batch in K in full, picked at random (1 = all); the others are only counted (events, by type, duplicate ids) in one cheap pass, as the plugin's CPU is taken from the broker it measures")
		cpuProfile   = fs.String("cpuprofile", "", "write this process's CPU profile to the file (any mode; go tool pprof reads it)")
	)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: mqttbench [flags]            (load a broker and measure it)")
		fmt.Fprintln(stderr, "       mqttbench -mode idle [flags]  (broker memory per idle connection)")
		fmt.Fprintln(stderr, "       mqttbench -mode report FILE.jsonl ...")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintf(stderr, "mqttbench: -cpuprofile: %v\n", err)
			return 2
		}
		defer func() {
			pprof.StopCPUProfile()
			f.Close()
		}()
	}
	usage := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "mqttbench: "+format+"\n", a...)
		return 2
	}
	var useV5 bool
	switch *protocol {
	case "4", "3.1.1":
		useV5 = *v5
		if *v5 && protocolSet(fs) {
			return usage("-v5 contradicts -protocol %s", *protocol)
		}
	case "5", "5.0":
		useV5 = true
	default:
		return usage("-protocol %q: want 4 (3.1.1) or 5 (5.0)", *protocol)
	}
	if *v5Props && !useV5 {
		return usage("-v5-props needs -v5 (or -protocol 5)")
	}

	switch *mode {
	case "report":
		rs, bad, err := readResults(fs.Args())
		if err != nil {
			fmt.Fprintf(stderr, "mqttbench: %v\n", err)
			return 1
		}
		storms, err := readStorms(fs.Args())
		if err != nil {
			fmt.Fprintf(stderr, "mqttbench: %v\n", err)
			return 1
		}
		if bad -= len(storms); bad > 0 {
			fmt.Fprintf(stderr, "mqttbench: skipped %d lines that are not results\n", bad)
		}
		if *baseline != "" {
			writeRatioReport(stdout, rs, *baseline, *maxOther)
		} else if len(rs) > 0 {
			writeReport(stdout, rs, *maxOther)
		}
		if len(storms) > 0 {
			if len(rs) > 0 {
				fmt.Fprintln(stdout)
			}
			writeStormReport(stdout, storms)
		}
		return 0

	case "plugin":
		pick := func(own time.Duration, def time.Duration) time.Duration {
			if own < 0 {
				return def
			}
			return own
		}
		pickTTL := func(own, def int) int {
			if own == -2 {
				return def
			}
			return own
		}
		if *validFirst < 0 || *validEvery < 1 {
			return usage("-validate-first must be 0 or more and -validate-every 1 or more")
		}
		var events []string
		for e := range strings.SplitSeq(*manifestEvts, ",") {
			if e = strings.TrimSpace(e); e != "" {
				events = append(events, e)
			}
		}
		return runPlugin(*listen, pluginConfig{
			authDelay: pick(*authDelay, *delay), topicDelay: pick(*topicDelay, *delay),
			authTTL: pickTTL(*authTTL, *cacheTTL), topicTTL: pickTTL(*topicTTL, *cacheTTL),
			authResult: *authResult, topicResult: *topicResult, authReasonCode: *authReason,
			manifestEvents: events, noManifest: *noManifest,
			validateFirst: *validFirst, validateEvery: *validEvery,
		}, *asJSON, stdout, stderr, nil)

	case "storm":
		n := *conns
		if !flagSet(fs, "conns") {
			n = 1000
		}
		switch {
		case n < 1 || *bursts < 1 || *bursts > n:
			return usage("storm: -conns and -bursts must be at least 1, and -bursts at most -conns")
		case *password != "" && *username == "" && !useV5:
			return usage("-password needs -username in MQTT 3.1.1 [MQTT-3.1.2-22]")
		case *expectCode < -1 || *expectCode > 255:
			return usage("-expect-code must be a CONNACK code (0..255) or -1")
		}
		res := runStorm(stormConfig{
			broker: *broker, conns: n, bursts: *bursts, sameID: *sameID, clientsPrefix: *clientPfx,
			username: *username, password: *password, v5: useV5, keepAlive: uint16(*keepAlive / time.Second),
			connectTimeout: *connTO, expectCode: *expectCode, probes: probes{plugin: *pluginURL, metrics: *metricsURL},
		})
		res.Label, res.Case = *label, *caseName
		return printResult(res, res.OK, *asJSON, stdout, stderr)

	case "idle":
		if *conns < 1 {
			return usage("-conns must be at least 1")
		}
		res := runIdle(idleConfig{
			broker: *broker, conns: *conns, pid: *bpid, hold: *hold, keepAlive: 300,
			connectTimeout: *connTO, clientsPrefix: *clientPfx, username: *username, password: *password,
			v5: useV5,
		})
		res.Label = *label
		return printResult(res, res.OK, *asJSON, stdout, stderr)

	case "load":
	default:
		return usage("-mode %q: want load, idle, storm, plugin or report", *mode)
	}

	cfg := loadConfig{
		broker: *broker, scenario: *scenario, pubs: *pubs, subs: *subs, qos: byte(*qos), size: *size,
		duration: *duration, warmup: *warmup, drain: *drain, rate: *rate, window: *window,
		inflight: *inflight, burst: *burst, pid: *bpid, keepAlive: *keepAlive, connectTimeout: *connTO,
		topicPrefix: *topicPfx, clientsPrefix: *clientPfx, username: *username, password: *password,
		v5: useV5, v5Props: *v5Props, probes: probes{plugin: *pluginURL, metrics: *metricsURL},
	}
	switch cfg.scenario {
	case "pairs":
		if cfg.subs == 0 {
			cfg.subs = cfg.pubs
		}
		if cfg.subs != cfg.pubs {
			return usage("-scenario pairs gives each publisher one subscriber: -subs must equal -pubs (or be omitted)")
		}
	case "fanout", "fanin":
		if cfg.subs == 0 {
			cfg.subs = 1
		}
	default:
		return usage("-scenario %q: want pairs, fanout or fanin", cfg.scenario)
	}
	switch {
	case cfg.pubs < 1 || cfg.subs < 1:
		return usage("-pubs and -subs must be at least 1")
	case *qos < 0 || *qos > 2:
		return usage("-qos must be 0, 1 or 2")
	case cfg.size < payloadHeader:
		return usage("-size must be at least %d (publisher id, sequence number, timestamp)", payloadHeader)
	case cfg.size > 1<<20:
		return usage("-size must be at most 1 MiB")
	case cfg.duration <= 0:
		return usage("-duration must be positive")
	case cfg.warmup < 0 || cfg.drain < 0:
		return usage("-warmup and -drain must not be negative")
	case cfg.rate < 0 || cfg.window < 0 || cfg.inflight < 0 || cfg.burst < 0:
		return usage("-rate, -window, -inflight and -burst must not be negative")
	case cfg.rate == 0 && cfg.window == 0 && cfg.qos == 0:
		// Nothing would hold the publishers back: they would measure how
		// fast the kernel buffers bytes, not what the broker delivers.
		return usage("closed loop at QoS 0 needs a -window (or give a -rate)")
	case cfg.keepAlive < 0 || cfg.keepAlive > 65535*time.Second:
		return usage("-keepalive must be between 0 and 65535s")
	case *password != "" && *username == "" && !useV5:
		return usage("-password needs -username in MQTT 3.1.1 [MQTT-3.1.2-22]")
	}
	if _, err := raiseFileLimit(); err != nil {
		fmt.Fprintf(stderr, "mqttbench: raising RLIMIT_NOFILE: %v\n", err)
	}

	r := &loadRun{cfg: cfg}
	res, err := r.execute()
	if res == nil {
		fmt.Fprintf(stderr, "mqttbench: %v\n", err)
		return 1
	}
	res.Label, res.Case = *label, *caseName
	if err != nil && len(res.Errors) == 0 {
		res.Errors, res.OK = []string{err.Error()}, false
	}
	if *asJSON {
		if err := res.writeJSON(stdout); err != nil {
			fmt.Fprintf(stderr, "mqttbench: %v\n", err)
			return 1
		}
	} else {
		res.writeText(stdout)
	}
	if !res.OK {
		return 1
	}
	return 0
}

// protocolSet reports whether -protocol was given on the command line.
func protocolSet(fs *flag.FlagSet) bool { return flagSet(fs, "protocol") }

// flagSet reports whether the named flag was given on the command line.
func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// printResult writes a storm or idle result as one JSON line or as text;
// the exit status is 1 when the result failed its checks or could not be
// written.
func printResult(res interface{ writeText(io.Writer) }, ok, asJSON bool, stdout, stderr io.Writer) int {
	if asJSON {
		if err := writeJSONLine(stdout, res); err != nil {
			fmt.Fprintf(stderr, "mqttbench: %v\n", err)
			return 1
		}
	} else {
		res.writeText(stdout)
	}
	if !ok {
		return 1
	}
	return 0
}
