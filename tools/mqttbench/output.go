package main

import (
	"encoding/json"
	"fmt"
	"io"
	"sync"
)

// Printing shared by the subcommands that measure (load, idle, storm): a
// result is one JSON line with -json, the unit scripts and `mqttbench
// report` read, or text for a person ending with one verdict line.

// printResult writes a result as one JSON line or as text; the exit status
// is 1 when the result failed its checks or could not be written.
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

// writeJSONLine writes v as one line, the unit scripts read.
func writeJSONLine(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

// printVerdict ends a text report: ok, or FAILED and why.
func printVerdict(w io.Writer, ok bool, errs []string) {
	if ok {
		fmt.Fprintln(w, "result     ok")
		return
	}
	fmt.Fprintln(w, "result     FAILED")
	for _, e := range errs {
		fmt.Fprintf(w, "  - %s\n", e)
	}
}

// errorList collects a run's errors from many goroutines, keeping the
// first few and counting the rest.
type errorList struct {
	mu    sync.Mutex
	n     int
	first []string
}

func (e *errorList) add(format string, args ...any) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.n++
	if len(e.first) < 10 {
		e.first = append(e.first, fmt.Sprintf(format, args...))
	}
}

// list is what a result reports: the first errors, and how many more
// there were.
func (e *errorList) list() []string {
	l := e.first
	if extra := e.n - len(e.first); extra > 0 {
		l = append(l, fmt.Sprintf("... and %d more errors", extra))
	}
	return l
}
