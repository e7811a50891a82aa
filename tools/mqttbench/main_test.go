package main

import (
	"bytes"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// The flags each subcommand owns, and no others: a flag of another tool
// must not show up in a subcommand's help, nor be accepted by it.
var wantFlags = map[string][]string{
	"load": {"broker", "burst", "case", "clients-prefix", "connect-timeout", "cpuprofile", "drain", "duration",
		"inflight", "json", "keepalive", "label", "metrics", "password", "persistent-subs", "pid", "plugin", "protocol", "pubs", "qos",
		"rate", "scenario", "size", "subs", "topic-prefix", "username", "v5", "v5-props", "warmup", "window"},
	"idle": {"broker", "clients-prefix", "conns", "connect-timeout", "cpuprofile", "hold", "json", "label",
		"password", "pid", "protocol", "username", "v5"},
	"storm": {"broker", "bursts", "case", "clients-prefix", "conns", "connect-timeout", "cpuprofile", "expect-code",
		"json", "keepalive", "label", "metrics", "password", "plugin", "protocol", "same-id", "username", "v5"},
	"plugin": {"auth-cache-ttl", "auth-delay", "auth-reason-code", "auth-result", "cache-ttl", "cpuprofile", "delay",
		"json", "listen", "manifest-events", "no-manifest", "topic-cache-ttl", "topic-delay", "topic-result",
		"validate-every", "validate-first"},
	"report": {"baseline", "max-other"},
}

// flagLine is how flag.PrintDefaults starts a flag's entry.
var flagLine = regexp.MustCompile(`(?m)^  -([a-z0-9-]+)`)

// TestSubcommandHelp: `mqttbench SUB -h` exits 0 and lists exactly that
// subcommand's flags; `mqttbench help SUB` says the same.
func TestSubcommandHelp(t *testing.T) {
	if len(wantFlags) != len(subcommands) {
		t.Fatalf("the test knows %d subcommands, mqttbench has %d", len(wantFlags), len(subcommands))
	}
	for _, c := range subcommands {
		want := slices.Sorted(slices.Values(wantFlags[c.name]))
		for _, args := range [][]string{{c.name, "-h"}, {"help", c.name}} {
			var out, errb bytes.Buffer
			if code := run(args, &out, &errb); code != 0 {
				t.Errorf("%v: exit %d, want 0", args, code)
			}
			help := errb.String()
			if !strings.HasPrefix(help, "usage: mqttbench "+c.name+" ") {
				t.Errorf("%v: usage does not name the subcommand: %q", args, help)
			}
			var got []string
			for _, m := range flagLine.FindAllStringSubmatch(help, -1) {
				got = append(got, m[1])
			}
			slices.Sort(got)
			if !slices.Equal(got, want) {
				t.Errorf("%v lists flags\n%v\nwant\n%v", args, got, want)
			}
		}
	}
}

// TestHelpListsSubcommands: `mqttbench help` lists every subcommand, and
// mqttbench without one prints the same and fails.
func TestHelpListsSubcommands(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"help"}, &out, &errb); code != 0 {
		t.Fatalf("help: exit %d", code)
	}
	for _, name := range []string{"load", "idle", "storm", "plugin", "report"} {
		if !regexp.MustCompile(`(?m)^  ` + name + ` +\S`).MatchString(out.String()) {
			t.Errorf("help does not list %s:\n%s", name, out.String())
		}
	}
	var none bytes.Buffer
	if code := run(nil, &out, &none); code != 2 || none.String() != out.String() {
		t.Errorf("no subcommand: exit %d, printed %q", code, none.String())
	}
}

// TestUnknownSubcommand: a name that is not a subcommand (or a flag where
// the subcommand goes) fails with exit 2 and a message listing the valid
// ones.
func TestUnknownSubcommand(t *testing.T) {
	for _, args := range [][]string{{"mesh"}, {"-mode", "load"}, {"help", "mesh"}} {
		var out, errb bytes.Buffer
		if code := run(args, &out, &errb); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
		msg := errb.String()
		if !strings.Contains(msg, "unknown subcommand") || !strings.Contains(msg, "load, idle, storm, plugin, report") {
			t.Errorf("%v: message %q does not list the subcommands", args, msg)
		}
		if out.Len() != 0 {
			t.Errorf("%v: wrote %q to stdout", args, out.String())
		}
	}
}
