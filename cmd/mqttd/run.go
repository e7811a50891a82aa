package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"

	"github.com/mqttd/mqttd/internal/config"
	"github.com/mqttd/mqttd/internal/hooks"
	"github.com/mqttd/mqttd/internal/mqtt"
)

// Exit statuses.
const (
	exitOK      = 0
	exitFailure = 1 // the broker could not start or stopped badly
	exitUsage   = 2 // bad arguments or configuration
)

const usage = `usage:
  mqttd [--config FILE]                run the broker
  mqttd check-config [--config FILE]   validate the configuration and print it (secrets masked)
  mqttd version, mqttd --version      print the version (module version and commit)
  mqttd passwd [-D] FILE USER          set a password-file user's password (-D: delete the user)
  mqttd store check [--config FILE]    verify the store (storage.dir) offline; exit 1 when damaged
  mqttd store export [--config FILE]   print the store's sessions, queued and retained messages as JSON lines

Without --config: $MQTTD_CONFIG, else ./mqttd.{yaml,yml,toml,json}, else
/etc/mqttd/mqttd.{yaml,yml,toml,json}, else built-in defaults (:1883).
Any key can be overridden as MQTTD_<KEY>, e.g. MQTTD_LIMITS_MAX_INFLIGHT=32.
`

// run is the whole command: main adds only the signals (ctx ends on the
// first one) and the exit.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("mqttd", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var cfgPath string
	fs.StringVar(&cfgPath, "config", "", "config file")
	fs.StringVar(&cfgPath, "c", "", "config file")
	var showVersion bool
	fs.BoolVar(&showVersion, "version", false, "print the version")
	// parse reads flags; it returns -1 to go on, else the exit status.
	parse := func(a []string) int {
		switch err := fs.Parse(a); {
		case errors.Is(err, flag.ErrHelp):
			io.WriteString(stdout, usage)
			return exitOK
		case err != nil:
			fmt.Fprintf(stderr, "mqttd: %v\n%s", err, usage)
			return exitUsage
		}
		return -1
	}
	if code := parse(args); code >= 0 {
		return code
	}
	if showVersion && fs.NArg() == 0 {
		fmt.Fprintln(stdout, versionString())
		return exitOK
	}
	var cmd string
	if fs.NArg() > 0 {
		cmd = fs.Arg(0)
		switch cmd {
		case "passwd": // its own flags and arguments
			return passwd(fs.Args()[1:], stdout, stderr)
		case "store": // check or export, then its flags
			return storeCmd(cfgPath, fs.Args()[1:], stdout, stderr)
		}
		if code := parse(fs.Args()[1:]); code >= 0 { // flags may follow the command too
			return code
		}
		if fs.NArg() > 0 {
			fmt.Fprintf(stderr, "mqttd: unexpected argument %q\n%s", fs.Arg(0), usage)
			return exitUsage
		}
	}
	switch cmd {
	case "":
		return serve(ctx, cfgPath, stderr)
	case "check-config":
		return checkConfig(cfgPath, stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, versionString())
		return exitOK
	case "help":
		io.WriteString(stdout, usage)
		return exitOK
	}
	fmt.Fprintf(stderr, "mqttd: unknown command %q\n%s", cmd, usage)
	return exitUsage
}

// loadConfig loads and validates everything a start would: the file, the
// environment, the certificates, and the options the broker is built from.
func loadConfig(path string, stderr io.Writer) (*config.Config, mqtt.Options, bool) {
	cfg, err := config.Load(path)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return nil, mqtt.Options{}, false
	}
	return cfg, brokerOptions(cfg, nil), true
}

func checkConfig(path string, stdout, stderr io.Writer) int {
	cfg, opts, ok := loadConfig(path, stderr)
	if !ok {
		return exitUsage
	}
	if _, err := mqtt.New(opts); err != nil { // the broker's own checks; New opens nothing
		fmt.Fprintf(stderr, "config: %v\n", err)
		return exitUsage
	}
	// Build the plugins too: a password or ACL file that does not parse
	// should fail here, not at start. Nothing is started or dialled.
	ps, err := buildPlugins(cfg, nil, slog.New(slog.DiscardHandler), nil)
	if err == nil {
		_, err = hooks.New(ps.opts)
		closePlugins(slices.Collect(maps.Values(ps.built)))
	}
	if err != nil {
		fmt.Fprintf(stderr, "config: %v\n", err)
		return exitUsage
	}
	for _, w := range cfg.Warnings() {
		fmt.Fprintf(stderr, "warning: %s\n", w)
	}
	if err := cfg.WriteYAML(stdout); err != nil {
		fmt.Fprintf(stderr, "mqttd: printing the configuration: %v\n", err)
		return exitFailure
	}
	return exitOK
}
