package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/mqttd/mqttd/internal/mqtt"
)

// Set at link time by a release build that knows better than the build
// information, e.g.
//
//	go build -ldflags "-X main.version=v1.2.0 -X main.commit=$(git rev-parse HEAD)" ./cmd/mqttd
var (
	version string
	commit  string
)

// buildVersion is what `mqttd version` reports.
type buildVersion struct {
	Module   string // the module version: v1.2.0 from `go install …@v1.2.0`, "(devel)" from a checkout
	Commit   string // the VCS revision, shortened; "unknown" when the build recorded none
	Modified bool   // the working tree had uncommitted changes
}

// readVersion takes the module version and the commit from the binary's
// build information. `go build -buildvcs=false` (as CI builds) and builds
// outside a git checkout record no commit; -ldflags values override both.
func readVersion(bi *debug.BuildInfo, ok bool) buildVersion {
	v := buildVersion{Module: "(devel)", Commit: "unknown"}
	if ok {
		if bi.Main.Version != "" {
			v.Module = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				v.Commit = shortCommit(s.Value)
			case "vcs.modified":
				v.Modified = s.Value == "true"
			}
		}
	}
	if version != "" {
		v.Module = version
	}
	if commit != "" {
		v.Commit, v.Modified = shortCommit(commit), false
	}
	return v
}

func shortCommit(c string) string {
	if len(c) > 12 {
		return c[:12]
	}
	return c
}

// String is one line: the broker's version, the module version, the
// commit, and the Go toolchain and platform it was built with.
func (v buildVersion) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s (module %s, commit %s", mqtt.Version, v.Module, v.Commit)
	if v.Modified {
		b.WriteString(", modified")
	}
	fmt.Fprintf(&b, ") %s %s/%s", runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return b.String()
}

func versionString() string {
	return readVersion(debug.ReadBuildInfo()).String()
}
