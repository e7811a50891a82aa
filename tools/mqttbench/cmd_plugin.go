package main

import (
	"flag"
	"io"
	"strings"
	"time"
)

// pluginFlags are the flags of `mqttbench plugin`.
type pluginFlags struct {
	profile profileFlag

	listen                  string
	delay                   time.Duration
	authDelay, topicDelay   time.Duration
	cacheTTL                int
	authTTL, topicTTL       int
	authResult, topicResult string
	authReason              int
	manifestEvents          string
	noManifest              bool
	validateFirst           int
	validateEvery           int
	asJSON                  bool
}

// The sample of event batches checked in full. The contract check costs
// some 200 times the counting pass per event (BenchmarkPostEvents), so one
// batch in 128 keeps the plugin's CPU per event where one in 16 kept it
// with the hand-written checks it replaced; and the first 10 batches, not
// 100: while the plugin is slow the broker sends bigger batches, and 100
// of them in full kept a plugin-bench run from ever leaving the start.
const (
	defaultValidateFirst = 10
	defaultValidateEvery = 128
)

// Defaults that mean "take the general flag's value": a delay of -1 and a
// cache_ttl of -2 (a negative cache_ttl of its own leaves it out).
const (
	inheritDelay = -1
	inheritTTL   = -2
)

func (f *pluginFlags) register(fs *flag.FlagSet) {
	f.profile.register(fs)
	fs.StringVar(&f.listen, "listen", "127.0.0.1:9300", "address to serve on")
	fs.DurationVar(&f.delay, "delay", 0, "delay before answering authenticate and topic_filtering")
	fs.DurationVar(&f.authDelay, "auth-delay", inheritDelay, "delay before answering authenticate (default -delay)")
	fs.DurationVar(&f.topicDelay, "topic-delay", inheritDelay, "delay before answering topic_filtering (default -delay)")
	fs.IntVar(&f.cacheTTL, "cache-ttl", 60, "cache_ttl (seconds) in decisions; negative leaves it out")
	fs.IntVar(&f.authTTL, "auth-cache-ttl", inheritTTL, "cache_ttl of authenticate answers (default -cache-ttl)")
	fs.IntVar(&f.topicTTL, "topic-cache-ttl", inheritTTL, "cache_ttl of topic_filtering answers (default -cache-ttl)")
	fs.StringVar(&f.authResult, "auth-result", "allow", "authenticate answer: allow, deny or ignore")
	fs.StringVar(&f.topicResult, "topic-result", "allow", "topic_filtering answer: allow, deny or ignore")
	fs.IntVar(&f.authReason, "auth-reason-code", 0, "reason_code in a deny (e.g. 134 = 0x86 bad user name or password); 0 = none")
	fs.StringVar(&f.manifestEvents, "manifest-events", "", "comma-separated event types the manifest asks for (e.g. broker_message_received)")
	fs.BoolVar(&f.noManifest, "no-manifest", false, "answer GET /manifest with 404")
	fs.IntVar(&f.validateFirst, "validate-first", defaultValidateFirst, "check the first N event batches in full against api/openapi.yaml")
	fs.IntVar(&f.validateEvery, "validate-every", defaultValidateEvery, "after -validate-first, check one event batch in K in full, picked at random (1 = all); the others are only counted (events, by type, duplicate ids) in one cheap pass, as the plugin's CPU is taken from the broker it measures")
	fs.BoolVar(&f.asJSON, "json", false, "print the final counters as one JSON object instead of text")
}

func (f *pluginFlags) config() pluginConfig {
	pick := func(own, def time.Duration) time.Duration {
		if own < 0 {
			return def
		}
		return own
	}
	pickTTL := func(own, def int) int {
		if own == inheritTTL {
			return def
		}
		return own
	}
	var events []string
	for e := range strings.SplitSeq(f.manifestEvents, ",") {
		if e = strings.TrimSpace(e); e != "" {
			events = append(events, e)
		}
	}
	return pluginConfig{
		authDelay: pick(f.authDelay, f.delay), topicDelay: pick(f.topicDelay, f.delay),
		authTTL: pickTTL(f.authTTL, f.cacheTTL), topicTTL: pickTTL(f.topicTTL, f.cacheTTL),
		authResult: f.authResult, topicResult: f.topicResult, authReasonCode: f.authReason,
		manifestEvents: events, noManifest: f.noManifest,
		validateFirst: f.validateFirst, validateEvery: f.validateEvery,
	}
}

// runPluginCmd is `mqttbench plugin`.
func runPluginCmd(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("plugin", "\n\nServes the broker's plugin HTTP contract on -listen with answers fixed by flags,\n"+
		"counts what arrives (GET /stats) and prints the counters on SIGINT or SIGTERM.", stderr)
	var f pluginFlags
	f.register(fs)
	if code, done := parseFlags(fs, args); done {
		return code
	}
	if f.validateFirst < 0 || f.validateEvery < 1 {
		return usageError(stderr, "-validate-first must be 0 or more and -validate-every 1 or more")
	}
	stop, err := f.profile.start()
	if err != nil {
		return usageError(stderr, "%v", err)
	}
	defer stop()
	return runPlugin(f.listen, f.config(), f.asJSON, stdout, stderr, nil)
}
