// Command mqttd is the MQTT broker.
//
//	mqttd [--config FILE]                run the broker
//	mqttd check-config [--config FILE]   validate the configuration and print it, secrets masked
//	mqttd passwd [--bcrypt] FILE USER    add USER to a password-file plugin's FILE, or change the password
//	mqttd passwd -D FILE USER            delete USER from FILE
//	mqttd store check [--config FILE]    verify the store offline
//	mqttd store export [--config FILE]   print the store as JSON lines
//	mqttd version (or --version)         print the version: module version and commit
//
// Without --config the file is $MQTTD_CONFIG, else the first of
// ./mqttd.yaml, ./mqttd.yml, ./mqttd.toml, ./mqttd.json and the same names
// in /etc/mqttd/, else none: the built-in defaults (a broker on :1883).
// MQTTD_ variables override any key (see internal/config).
//
// SIGHUP re-reads the config file and applies its plugins, auth and
// topic-check sections without dropping a client (a password or ACL file
// is re-read too); other sections need a restart, and a reload that fails
// changes nothing and is logged (README, "What a reload applies").
//
// Exit status: 0 after a clean shutdown on SIGINT or SIGTERM, 1 when the
// broker fails or a second signal cuts the shutdown short, 2 for a usage or
// configuration error (the message, on stderr, names the key to fix).
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, cancel := context.WithCancelCause(context.Background())
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go handleSignals(sigs, cancel, os.Stderr, os.Exit)
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// handleSignals turns the first signal into a graceful shutdown (it ends
// run's context) and the second into an immediate exit with status 1.
func handleSignals(sigs <-chan os.Signal, cancel context.CancelCauseFunc, stderr io.Writer, exit func(int)) {
	s := <-sigs
	cancel(signalCause{s})
	s = <-sigs
	fmt.Fprintf(stderr, "mqttd: second signal (%s), exiting without finishing the shutdown\n", signalName(s))
	exit(exitFailure)
}

// signalCause is why the context of run ended when a signal ended it.
type signalCause struct{ sig os.Signal }

func (s signalCause) Error() string { return "received " + signalName(s.sig) }

func signalName(s os.Signal) string {
	switch s {
	case os.Interrupt:
		return "SIGINT"
	case syscall.SIGTERM:
		return "SIGTERM"
	}
	return s.String()
}
