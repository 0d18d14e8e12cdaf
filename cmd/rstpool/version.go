package main

import (
	"fmt"
	"io"
	"runtime/debug"
	"strings"
)

func init() {
	register("version", command{Summary: "print the version of this build and of the rstpool modules in it", Run: runVersion})
}

const versionAbout = `Prints what the Go toolchain recorded in this binary: the command's module
path and version, the version control revision, its time and whether the
work tree had changes ("modified"), the Go version, and the rstpool modules
it was built with (a "=>" shows a replacement, such as the checkout itself).
A binary built from a clone has the version "(devel)" or a pseudo-version
derived from the commit; one installed with "go install ...@v0.2.0" has
v0.2.0. The revision, time and modified lines are missing when the build
had no version control information (-buildvcs=false, or no git checkout).

--json prints the same as one JSON object: module, version, go, revision,
time, modified (absent when unknown), modules [{path, version, replace}].`

// buildInfo is what "rstpool version" reports.
type buildInfo struct {
	Module   string       `json:"module"`
	Version  string       `json:"version"`
	Go       string       `json:"go"`
	Revision string       `json:"revision,omitempty"`
	Time     string       `json:"time,omitempty"`
	Modified *bool        `json:"modified,omitempty"`
	Modules  []moduleInfo `json:"modules"` // the rstpool modules built in, the command's own excluded
}

// moduleInfo is one rstpool module the binary was built with.
type moduleInfo struct {
	Path    string `json:"path"`
	Version string `json:"version"`
	Replace string `json:"replace,omitempty"` // the replacement's path and version, if any
}

func runVersion(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("version", "[--json]", versionAbout, stderr)
	asJSON := fs.Bool("json", false, "print one JSON object")
	if st := parseFlags(fs, args); st >= 0 {
		return st
	}
	if fs.NArg() > 0 {
		return usageError(stderr, "version", "unexpected argument %q: version takes no arguments", fs.Arg(0))
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return fail(stderr, "version", fmt.Errorf("this binary carries no build information"))
	}
	info := readBuildInfo(bi)
	if *asJSON {
		return writeJSON(stdout, info)
	}
	info.write(stdout)
	return exitOK
}

// readBuildInfo picks from bi what "rstpool version" reports.
func readBuildInfo(bi *debug.BuildInfo) buildInfo {
	info := buildInfo{Module: bi.Main.Path, Version: bi.Main.Version, Go: bi.GoVersion}
	if info.Version == "" {
		info.Version = "(devel)" // go run of a file list, or a test binary
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			info.Revision = s.Value
		case "vcs.time":
			info.Time = s.Value
		case "vcs.modified":
			modified := s.Value == "true"
			info.Modified = &modified
		}
	}
	for _, m := range bi.Deps {
		if m.Path == "github.com/rstpool/rstpool" || strings.HasPrefix(m.Path, "github.com/rstpool/rstpool/") {
			mi := moduleInfo{Path: m.Path, Version: m.Version}
			if r := m.Replace; r != nil {
				mi.Replace = strings.TrimSpace(r.Path + " " + r.Version)
			}
			info.Modules = append(info.Modules, mi)
		}
	}
	return info
}

// write prints info as aligned lines.
func (info buildInfo) write(w io.Writer) {
	fmt.Fprintf(w, "rstpool %s\n", info.Version)
	line := func(k, v string) { fmt.Fprintf(w, "  %-9s %s\n", k, v) }
	line("module", info.Module)
	if info.Revision != "" {
		line("revision", info.Revision)
	}
	if info.Time != "" {
		line("time", info.Time)
	}
	if info.Modified != nil {
		line("modified", fmt.Sprint(*info.Modified))
	}
	line("go", info.Go)
	for _, m := range info.Modules {
		s := m.Path + " " + m.Version
		if m.Replace != "" {
			s += " => " + m.Replace
		}
		line("uses", s)
	}
}
