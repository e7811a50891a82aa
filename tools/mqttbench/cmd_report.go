package main

import (
	"fmt"
	"io"
)

// runReportCmd is `mqttbench report`: the JSON lines that load, idle and
// storm print with -json become Markdown tables.
func runReportCmd(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("report", " FILE.jsonl ...\n\nTurns the -json result lines of load and storm runs into Markdown tables.", stderr)
	maxOther := fs.Float64("max-other", 0, "leave out runs during which other processes used more than this CPU % (100 = one core); 0 = keep all")
	baseline := fs.String("baseline", "", "label of the baseline runs; prints each other label's throughput as a ratio to it, run by run")
	if code, done := parseFlags(fs, args); done {
		return code
	}
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
}
