package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"time"
)

// loadFlags are the flags of `mqttbench load`.
type loadFlags struct {
	client  clientFlags
	probes  probeFlags
	profile profileFlag

	scenario    string
	pubs, subs  int
	qos         int
	size        int
	duration    time.Duration
	warmup      time.Duration
	drain       time.Duration
	rate        float64
	window      int
	burst       int
	inflight    int
	pid         int
	topicPrefix string
	keepAlive   time.Duration
	v5Props     bool
	persistent  bool
	caseName    string
	asJSON      bool
}

func (f *loadFlags) register(fs *flag.FlagSet) {
	f.client.register(fs)
	f.probes.register(fs)
	f.profile.register(fs)
	fs.StringVar(&f.scenario, "scenario", "pairs", "pairs, fanout or fanin")
	fs.IntVar(&f.pubs, "pubs", 1, "number of publishers")
	fs.IntVar(&f.subs, "subs", 0, "number of subscribers (pairs: must equal -pubs; default 1 for fanout/fanin)")
	fs.IntVar(&f.qos, "qos", 0, "QoS of publishes and subscriptions: 0, 1 or 2")
	fs.IntVar(&f.size, "size", 64, "payload bytes (at least 24: publisher, sequence, timestamp)")
	fs.DurationVar(&f.duration, "duration", 10*time.Second, "measured publishing time")
	fs.DurationVar(&f.warmup, "warmup", time.Second, "publishing time before measuring starts (counted for loss, not for rates, latency or CPU)")
	fs.DurationVar(&f.drain, "drain", 3*time.Second, "how long to wait for stragglers after publishing stops")
	fs.Float64Var(&f.rate, "rate", 0, "messages per second per publisher; 0 = closed loop limited by -window")
	fs.IntVar(&f.window, "window", 256, "max messages outstanding per publisher (sent, not yet received by all its subscribers; for QoS 1/2 also not yet acknowledged); 0 = unbounded")
	fs.IntVar(&f.burst, "burst", 1, "closed loop: a publisher blocked on -window resumes when this many slots are free (1 = smooth load)")
	fs.IntVar(&f.inflight, "inflight", 0, "max unacknowledged QoS 1/2 publishes per publisher; 0 = same as -window")
	fs.IntVar(&f.pid, "pid", 0, "broker process id: report its CPU from /proc")
	fs.StringVar(&f.topicPrefix, "topic-prefix", fmt.Sprintf("mqttbench/%d", os.Getpid()), "topic prefix; topics are PREFIX/N (fanout: PREFIX/all)")
	fs.DurationVar(&f.keepAlive, "keepalive", 60*time.Second, "MQTT keep-alive (PINGREQ sent every half of it)")
	fs.BoolVar(&f.v5Props, "v5-props", false, "MQTT 5.0: every PUBLISH carries a message expiry interval and a user property, and every subscriber checks that the broker forwarded them")
	fs.BoolVar(&f.persistent, "persistent-subs", false, "subscribers hold persistent sessions (3.1.1 clean session 0; 5.0 Clean Start with a one-hour Session Expiry), so a broker with a store writes every QoS 1/2 delivery")
	fs.StringVar(&f.caseName, "case", "", "scenario title copied into the JSON result (used by mqttbench report)")
	fs.BoolVar(&f.asJSON, "json", false, "print one JSON object instead of text")
}

// config checks the flags and turns them into a loadConfig; an error is a
// usage error.
func (f *loadFlags) config(fs *flag.FlagSet) (loadConfig, error) {
	v5, err := f.client.useV5(fs)
	if err != nil {
		return loadConfig{}, err
	}
	if f.v5Props && !v5 {
		return loadConfig{}, fmt.Errorf("-v5-props needs -v5 (or -protocol 5)")
	}
	c := &f.client
	cfg := loadConfig{
		broker: c.broker, scenario: f.scenario, pubs: f.pubs, subs: f.subs, qos: byte(f.qos), size: f.size,
		duration: f.duration, warmup: f.warmup, drain: f.drain, rate: f.rate, window: f.window,
		inflight: f.inflight, burst: f.burst, pid: f.pid, keepAlive: f.keepAlive, connectTimeout: c.connectTimeout,
		topicPrefix: f.topicPrefix, clientsPrefix: c.clientsPrefix, username: c.username, password: c.password,
		v5: v5, v5Props: f.v5Props, persistentSubs: f.persistent, probes: f.probes.probes(),
	}
	switch cfg.scenario {
	case "pairs":
		if cfg.subs == 0 {
			cfg.subs = cfg.pubs
		}
		if cfg.subs != cfg.pubs {
			return cfg, fmt.Errorf("-scenario pairs gives each publisher one subscriber: -subs must equal -pubs (or be omitted)")
		}
	case "fanout", "fanin":
		if cfg.subs == 0 {
			cfg.subs = 1
		}
	default:
		return cfg, fmt.Errorf("-scenario %q: want pairs, fanout or fanin", cfg.scenario)
	}
	return cfg, f.checkBounds(cfg)
}

// checkBounds refuses numbers a run cannot use.
func (f *loadFlags) checkBounds(cfg loadConfig) error {
	switch {
	case cfg.pubs < 1 || cfg.subs < 1:
		return fmt.Errorf("-pubs and -subs must be at least 1")
	case f.qos < 0 || f.qos > 2:
		return fmt.Errorf("-qos must be 0, 1 or 2")
	case cfg.size < payloadHeader:
		return fmt.Errorf("-size must be at least %d (publisher id, sequence number, timestamp)", payloadHeader)
	case cfg.size > 1<<20:
		return fmt.Errorf("-size must be at most 1 MiB")
	case cfg.duration <= 0:
		return fmt.Errorf("-duration must be positive")
	case cfg.warmup < 0 || cfg.drain < 0:
		return fmt.Errorf("-warmup and -drain must not be negative")
	case cfg.rate < 0 || cfg.window < 0 || cfg.inflight < 0 || cfg.burst < 0:
		return fmt.Errorf("-rate, -window, -inflight and -burst must not be negative")
	case cfg.rate == 0 && cfg.window == 0 && cfg.qos == 0:
		// Nothing would hold the publishers back: they would measure how
		// fast the kernel buffers bytes, not what the broker delivers.
		return fmt.Errorf("closed loop at QoS 0 needs a -window (or give a -rate)")
	case cfg.keepAlive < 0 || cfg.keepAlive > 65535*time.Second:
		return fmt.Errorf("-keepalive must be between 0 and 65535s")
	}
	return nil
}

// runLoadCmd is `mqttbench load`.
func runLoadCmd(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("load", "\n\nPublishes and measures what the broker delivers.", stderr)
	var f loadFlags
	f.register(fs)
	if code, done := parseFlags(fs, args); done {
		return code
	}
	cfg, err := f.config(fs)
	if err != nil {
		return usageError(stderr, "%v", err)
	}
	stop, err := f.profile.start()
	if err != nil {
		return usageError(stderr, "%v", err)
	}
	defer stop()
	if _, err := raiseFileLimit(); err != nil {
		fmt.Fprintf(stderr, "mqttbench: raising RLIMIT_NOFILE: %v\n", err)
	}
	r := &loadRun{cfg: cfg}
	res, err := r.execute()
	if res == nil {
		fmt.Fprintf(stderr, "mqttbench: %v\n", err)
		return 1
	}
	res.Label, res.Case = f.client.label, f.caseName
	if err != nil && len(res.Errors) == 0 {
		res.Errors, res.OK = []string{err.Error()}, false
	}
	return printResult(res, res.OK, f.asJSON, stdout, stderr)
}
