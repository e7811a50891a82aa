package main

import (
	"fmt"
	"io"
	"time"
)

// runStormCmd is `mqttbench storm`.
func runStormCmd(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("storm", "\n\nOpens -conns TCP connections, then all send CONNECT at once; measures the time to each CONNACK.", stderr)
	var (
		client  clientFlags
		probes  probeFlags
		profile profileFlag
	)
	client.register(fs)
	probes.register(fs)
	profile.register(fs)
	conns := fs.Int("conns", 1000, "number of clients")
	bursts := fs.Int("bursts", 1, "split -conns into this many bursts, one after another")
	sameID := fs.Bool("same-id", false, "every client uses the same client id (identical authenticate requests)")
	expectCode := fs.Int("expect-code", 0, "the CONNACK code every client must get (0 accepted, 5 not authorised, 0x87...); -1 = any")
	keepAlive := fs.Duration("keepalive", 60*time.Second, "MQTT keep-alive in the CONNECTs")
	caseName := fs.String("case", "", "storm title copied into the JSON result (used by mqttbench report)")
	asJSON := fs.Bool("json", false, "print one JSON object instead of text")
	if code, done := parseFlags(fs, args); done {
		return code
	}
	v5, err := client.useV5(fs)
	if err == nil {
		err = checkStormFlags(*conns, *bursts, *expectCode, *keepAlive)
	}
	if err != nil {
		return usageError(stderr, "%v", err)
	}
	stop, err := profile.start()
	if err != nil {
		return usageError(stderr, "%v", err)
	}
	defer stop()
	res := runStorm(stormConfig{
		broker: client.broker, conns: *conns, bursts: *bursts, sameID: *sameID, clientsPrefix: client.clientsPrefix,
		username: client.username, password: client.password, v5: v5, keepAlive: uint16(*keepAlive / time.Second),
		connectTimeout: client.connectTimeout, expectCode: *expectCode, probes: probes.probes(),
	})
	res.Label, res.Case = client.label, *caseName
	return printResult(res, res.OK, *asJSON, stdout, stderr)
}

func checkStormFlags(conns, bursts, expectCode int, keepAlive time.Duration) error {
	switch {
	case conns < 1 || bursts < 1 || bursts > conns:
		return fmt.Errorf("-conns and -bursts must be at least 1, and -bursts at most -conns")
	case expectCode < -1 || expectCode > 255:
		return fmt.Errorf("-expect-code must be a CONNACK code (0..255) or -1")
	case keepAlive < 0 || keepAlive > 65535*time.Second:
		return fmt.Errorf("-keepalive must be between 0 and 65535s")
	}
	return nil
}
