package main

import (
	"io"
	"time"
)

// runIdleCmd is `mqttbench idle`.
func runIdleCmd(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("idle", "\n\nOpens -conns connections that stay idle and reads the broker's memory (-pid) before and after.", stderr)
	var (
		client  clientFlags
		profile profileFlag
	)
	client.register(fs)
	profile.register(fs)
	conns := fs.Int("conns", 5000, "number of connections")
	hold := fs.Duration("hold", 3*time.Second, "wait this long with all connections open before reading RSS")
	pid := fs.Int("pid", 0, "broker process id: report its RSS and CPU from /proc")
	asJSON := fs.Bool("json", false, "print one JSON object instead of text")
	if code, done := parseFlags(fs, args); done {
		return code
	}
	v5, err := client.useV5(fs)
	if err != nil {
		return usageError(stderr, "%v", err)
	}
	if *conns < 1 {
		return usageError(stderr, "-conns must be at least 1")
	}
	stop, err := profile.start()
	if err != nil {
		return usageError(stderr, "%v", err)
	}
	defer stop()
	res := runIdle(idleConfig{
		broker: client.broker, conns: *conns, pid: *pid, hold: *hold, keepAlive: 300,
		connectTimeout: client.connectTimeout, clientsPrefix: client.clientsPrefix,
		username: client.username, password: client.password, v5: v5,
	})
	res.Label = client.label
	return printResult(res, res.OK, *asJSON, stdout, stderr)
}
