package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"

	"github.com/mqttd/mqttd/internal/config"
	"github.com/mqttd/mqttd/internal/store/pebblestore"
)

const storeUsage = `usage:
  mqttd store check [--config FILE]    verify the store offline; exit 1 naming what is damaged
  mqttd store export [--config FILE]   print its sessions, retained and queued messages as JSON lines

The store is the one storage.dir names in the configuration (found as for
mqttd itself). Stop the broker first: a running mqttd holds the store's lock.
`

// storeCmd is `mqttd store check|export`. cfgPath is a --config given
// before the command; one after it wins.
func storeCmd(cfgPath string, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("mqttd store", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&cfgPath, "config", cfgPath, "")
	fs.StringVar(&cfgPath, "c", cfgPath, "")
	var pos []string
	for {
		switch err := fs.Parse(args); {
		case errors.Is(err, flag.ErrHelp):
			io.WriteString(stdout, storeUsage)
			return exitOK
		case err != nil:
			fmt.Fprintf(stderr, "mqttd store: %v\n%s", err, storeUsage)
			return exitUsage
		}
		if fs.NArg() == 0 {
			break
		}
		pos, args = append(pos, fs.Arg(0)), fs.Args()[1:]
	}
	if len(pos) != 1 || (pos[0] != "check" && pos[0] != "export") {
		fmt.Fprintf(stderr, "mqttd store: want check or export, got %q\n%s", pos, storeUsage)
		return exitUsage
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitUsage
	}
	s, code := openExisting(cfg, stderr)
	if s == nil {
		return code
	}
	defer s.Close()
	if pos[0] == "check" {
		return storeCheck(s, stdout, stderr)
	}
	w := bufio.NewWriter(stdout)
	err = exportStore(s, w)
	if ferr := w.Flush(); err == nil {
		err = ferr
	}
	if err != nil {
		fmt.Fprintf(stderr, "mqttd store export: %v\n", err)
		return exitFailure
	}
	return exitOK
}

// openExisting opens the configured store for an offline command, refusing
// to create one where there is none.
func openExisting(cfg *config.Config, stderr io.Writer) (*pebblestore.Store, int) {
	if cfg.Storage.Type == config.StorageMemory {
		fmt.Fprintln(stderr, "mqttd store: storage.type is memory: there is no store on disk")
		return nil, exitUsage
	}
	dir, err := storeDir(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "mqttd store: %v\n", err)
		return nil, exitUsage
	}
	if !pebblestore.Exists(dir) {
		fmt.Fprintf(stderr, "mqttd store: no store in %s (storage.dir %q; a relative storage.dir is relative to the working directory: run this where mqttd runs, or give --config a file with an absolute storage.dir)\n", dir, cfg.Storage.Dir)
		return nil, exitFailure
	}
	opts := storeOptions(cfg, slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn})), nil)
	opts.OnCorrupt = pebblestore.Fail // a check reports damage; it never moves the store aside
	s, err := pebblestore.Open(dir, opts)
	if err != nil {
		fmt.Fprintf(stderr, "mqttd store: %v\n", err)
		return nil, exitFailure
	}
	return s, exitOK
}

// storeCheck verifies every record and the references between them.
func storeCheck(s *pebblestore.Store, stdout, stderr io.Writer) int {
	st, err := s.Verify()
	if err != nil {
		fmt.Fprintf(stderr, "mqttd store check: %s is DAMAGED: %v\nto start anyway, move the directory aside (mqttd store export may save what still reads) or set storage.on-corrupt: quarantine\n", s.Dir(), err)
		return exitFailure
	}
	fmt.Fprintf(stdout, "store %s: ok: %d sessions, %d retained messages, %d queued messages (%d queue entries), %d in flight, %d inbound QoS 2 awaiting PUBREL\n",
		s.Dir(), st.Sessions, st.Retained, st.Messages, st.QueueEntries, st.Inflight, st.QoS2In)
	return exitOK
}
