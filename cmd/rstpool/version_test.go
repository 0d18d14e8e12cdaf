package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// The fields come from the build information, the rstpool modules only.
func TestVersionReadsBuildInfo(t *testing.T) {
	bi := &debug.BuildInfo{
		GoVersion: "go1.26.8",
		Main:      debug.Module{Path: "github.com/rstpool/rstpool/cmd/rstpool", Version: "v0.2.0"},
		Deps: []*debug.Module{
			{Path: "github.com/jackc/pgx/v5", Version: "v5.12.0"},
			{Path: "github.com/rstpool/rstpool", Version: "v0.2.0"},
			{Path: "github.com/rstpool/rstpoolx", Version: "v1.0.0"}, // not ours
			{Path: "github.com/rstpool/rstpool/rstpgx", Version: "v0.0.0-00010101000000-000000000000",
				Replace: &debug.Module{Path: "../../rstpgx", Version: "(devel)"}},
		},
		Settings: []debug.BuildSetting{
			{Key: "-buildmode", Value: "exe"},
			{Key: "vcs.revision", Value: "ea84c19f00"},
			{Key: "vcs.time", Value: "2026-11-30T10:00:00Z"},
			{Key: "vcs.modified", Value: "false"},
		},
	}
	info := readBuildInfo(bi)
	require.Equal(t, "v0.2.0", info.Version)
	require.Equal(t, "ea84c19f00", info.Revision)
	require.NotNil(t, info.Modified)
	require.False(t, *info.Modified)
	require.Equal(t, []moduleInfo{
		{Path: "github.com/rstpool/rstpool", Version: "v0.2.0"},
		{Path: "github.com/rstpool/rstpool/rstpgx", Version: "v0.0.0-00010101000000-000000000000", Replace: "../../rstpgx (devel)"},
	}, info.Modules)

	var b bytes.Buffer
	info.write(&b)
	require.Equal(t, `rstpool v0.2.0
  module    github.com/rstpool/rstpool/cmd/rstpool
  revision  ea84c19f00
  time      2026-11-30T10:00:00Z
  modified  false
  go        go1.26.8
  uses      github.com/rstpool/rstpool v0.2.0
  uses      github.com/rstpool/rstpool/rstpgx v0.0.0-00010101000000-000000000000 => ../../rstpgx (devel)
`, b.String())

	// Without version control information the lines are left out.
	info = readBuildInfo(&debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: "x"}})
	require.Equal(t, "(devel)", info.Version)
	b.Reset()
	info.write(&b)
	require.NotContains(t, b.String(), "revision")
	require.NotContains(t, b.String(), "modified")
}

// "rstpool version" of a binary made by go build, go install and go run:
// the command's module, the toolchain's Go version, the root module it was
// built with and, in a git checkout, the commit checked out.
func TestVersionOfEveryBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the command three times; runs without -short")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command on PATH")
	}
	goVersion := strings.TrimSpace(output(t, goTool, "env", "GOVERSION"))
	head, stamped := checkoutHead(t)
	bin := builtCommand(t)
	gobin := filepath.Join(t.TempDir(), "gobin")
	install := exec.Command(goTool, "install", "-buildvcs=true", ".")
	install.Env = append(os.Environ(), "GOBIN="+gobin)
	out, err := install.CombinedOutput()
	require.NoError(t, err, string(out))
	for how, doc := range map[string]string{
		"go build":   output(t, bin, "version", "--json"),
		"go install": output(t, filepath.Join(gobin, "rstpool"), "version", "--json"),
		"go run":     output(t, goTool, "run", "-buildvcs=true", ".", "version", "--json"),
	} {
		var info buildInfo
		decodeOne(t, doc, &info)
		require.Equal(t, "github.com/rstpool/rstpool/cmd/rstpool", info.Module, how)
		require.Equal(t, goVersion, info.Go, how)
		require.NotEmpty(t, info.Version, how)
		require.NotEmpty(t, info.Modules, how)
		require.Equal(t, "github.com/rstpool/rstpool", info.Modules[0].Path, how)
		if stamped {
			require.Equal(t, head, info.Revision, how)
			require.NotEmpty(t, info.Time, how)
			require.NotNil(t, info.Modified, how)
		} else {
			t.Logf("%s: no revision expected: %s", how, doc)
		}
	}
}

// built is the command built once for the tests that run it as a process.
var built struct {
	once sync.Once
	dir  string
	err  error
	out  []byte
}

func TestMain(m *testing.M) {
	code := m.Run()
	if built.dir != "" {
		os.RemoveAll(built.dir)
	}
	os.Exit(code)
}

// builtCommand returns the path of the command built by "go build
// -buildvcs=true", or skips the test where there is no go command.
func builtCommand(t *testing.T) string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command on PATH")
	}
	built.once.Do(func() {
		if built.dir, built.err = os.MkdirTemp("", "rstpool-cmd-"); built.err != nil {
			return
		}
		build := exec.Command(goTool, "build", "-buildvcs=true", "-o", filepath.Join(built.dir, "rstpool"), ".")
		built.out, built.err = build.CombinedOutput()
	})
	require.NoError(t, built.err, string(built.out))
	return filepath.Join(built.dir, "rstpool")
}

// checkoutHead returns the commit checked out, and whether the go command
// stamps it: in a git checkout whose .git is a directory (it does not look
// into a worktree's .git file). With -buildvcs=true, go run stamps it as go
// build does (its default, auto, does not).
func checkoutHead(t *testing.T) (string, bool) {
	top, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		t.Log("not a git checkout: no revision expected")
		return "", false
	}
	fi, err := os.Stat(filepath.Join(strings.TrimSpace(string(top)), ".git"))
	if err != nil || !fi.IsDir() {
		t.Log("a git worktree: the go command stamps no revision")
		return "", false
	}
	head := strings.TrimSpace(output(t, "git", "rev-parse", "HEAD"))
	return head, true
}

func output(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).Output()
	if ee, ok := err.(*exec.ExitError); ok {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, ee.Stderr)
	}
	require.NoError(t, err)
	return string(out)
}
