package main

import (
	"cmp"
	"fmt"
	"runtime"
	"runtime/debug"
)

// version is the release this binary was built as, set at build time
// (go build -ldflags "-X main.version=v1.2.0"); without it, the module's
// version as the Go toolchain recorded it ("(devel)" for a source build).
var version string

// versionString names the build: version, commit (with "+dirty" when the
// tree had changes), commit time and Go version. The commit is what the Go
// toolchain records when it builds inside a git checkout.
func versionString() string {
	v, commit, when, dirty := version, "unknown", "", ""
	if bi, ok := debug.ReadBuildInfo(); ok {
		v = cmp.Or(v, bi.Main.Version)
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				commit = s.Value
			case "vcs.time":
				when = s.Value
			case "vcs.modified":
				if s.Value == "true" {
					dirty = "+dirty"
				}
			}
		}
	}
	s := fmt.Sprintf("causeway detector %s commit %s%s", cmp.Or(v, "(devel)"), commit, dirty)
	if when != "" {
		s += " (" + when + ")"
	}
	return s + " " + runtime.Version()
}
