package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"time"
)

// Flags shared by several subcommands are declared here once, in groups, so
// that a flag means the same thing wherever it appears; each subcommand's
// own flags live beside its code (cmd_*.go).

// newFlagSet returns the flag set of one subcommand. Its usage message
// names the subcommand, shows synopsis and lists that subcommand's flags
// and no other.
func newFlagSet(name, synopsis string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("mqttbench "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: mqttbench %s [flags]%s\n\n", name, synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args into fs. done is true when the caller must return
// code at once: 0 after -h (the usage was printed), 2 on a bad flag.
func parseFlags(fs *flag.FlagSet, args []string) (code int, done bool) {
	err := fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		return 0, true
	case err != nil:
		return 2, true
	}
	return 0, false
}

// usageError prints a flag problem and returns the exit status for it.
func usageError(stderr io.Writer, format string, a ...any) int {
	fmt.Fprintf(stderr, "mqttbench: "+format+"\n", a...)
	return 2
}

// flagSet reports whether the named flag was given on the command line.
func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// clientFlags are the flags of the subcommands that connect to a broker as
// MQTT clients (load, idle, storm).
type clientFlags struct {
	broker         string
	clientsPrefix  string
	connectTimeout time.Duration
	username       string
	password       string
	protocol       string
	v5             bool
	label          string
}

func (c *clientFlags) register(fs *flag.FlagSet) {
	pid := os.Getpid()
	fs.StringVar(&c.broker, "broker", "127.0.0.1:1883", "broker TCP address")
	fs.StringVar(&c.clientsPrefix, "clients-prefix", fmt.Sprintf("mqttbench-%d-", pid), "client id prefix; ids are PREFIXp0, PREFIXs0, ...")
	fs.DurationVar(&c.connectTimeout, "connect-timeout", 10*time.Second, "timeout for TCP connect, CONNACK and SUBACK")
	fs.StringVar(&c.username, "username", "", "CONNECT user name (optional)")
	fs.StringVar(&c.password, "password", "", "CONNECT password (optional, needs -username in MQTT 3.1.1)")
	fs.StringVar(&c.protocol, "protocol", "4", "MQTT version: 4 (3.1.1) or 5 (5.0)")
	fs.BoolVar(&c.v5, "v5", false, "MQTT 5.0: short for -protocol 5")
	fs.StringVar(&c.label, "label", "", "free text copied into the JSON result (e.g. the broker name)")
}

// useV5 reads -protocol and -v5 together; an error is a usage error.
func (c *clientFlags) useV5(fs *flag.FlagSet) (bool, error) {
	var v5 bool
	switch c.protocol {
	case "4", "3.1.1":
		if c.v5 && flagSet(fs, "protocol") {
			return false, fmt.Errorf("-v5 contradicts -protocol %s", c.protocol)
		}
		v5 = c.v5
	case "5", "5.0":
		v5 = true
	default:
		return false, fmt.Errorf("-protocol %q: want 4 (3.1.1) or 5 (5.0)", c.protocol)
	}
	if c.password != "" && c.username == "" && !v5 {
		return false, errors.New("-password needs -username in MQTT 3.1.1 [MQTT-3.1.2-22]")
	}
	return v5, nil
}

// probeFlags are the flags that read the bench plugin's and the broker's
// counters around a run (load, storm).
type probeFlags struct {
	plugin, metrics string
}

func (p *probeFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&p.plugin, "plugin", "", "base URL of a bench plugin (mqttbench plugin); its counters over the run go into the result")
	fs.StringVar(&p.metrics, "metrics", "", "the broker's Prometheus URL (e.g. http://127.0.0.1:9180/metrics); plugin counters and event drops over the run go into the result")
}

func (p *probeFlags) probes() probes { return probes{plugin: p.plugin, metrics: p.metrics} }

// profileFlag is -cpuprofile, which every long-running subcommand has.
type profileFlag struct{ path string }

func (p *profileFlag) register(fs *flag.FlagSet) {
	fs.StringVar(&p.path, "cpuprofile", "", "write this process's CPU profile to the file (go tool pprof reads it)")
}

// start begins profiling when -cpuprofile was given; the returned stop
// (never nil) ends it. An error is a usage error.
func (p *profileFlag) start() (stop func(), err error) {
	if p.path == "" {
		return func() {}, nil
	}
	f, err := os.Create(p.path)
	if err == nil {
		err = pprof.StartCPUProfile(f)
	}
	if err != nil {
		if f != nil {
			f.Close()
		}
		return nil, fmt.Errorf("-cpuprofile: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}
