package main

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// The README shows this file whole, byte for byte, right after naming it.
func TestREADMEShowsThisFile(t *testing.T) {
	file, err := os.ReadFile("main.go")
	require.NoError(t, err)
	readme, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	_, after, ok := strings.Cut(string(readme), "(`examples/quickstart/main.go`")
	require.True(t, ok, "the README names examples/quickstart/main.go")
	_, block, ok := strings.Cut(after, "\n```go\n")
	require.True(t, ok, "a Go block follows the name")
	block, _, ok = strings.Cut(block, "\n```\n")
	require.True(t, ok)
	require.Equal(t, string(file), block+"\n", "README.md and examples/quickstart/main.go differ")
}

// The program, built as it stands, against a local server: three answers,
// the counters, and the log of the dial on stderr.
func TestRun(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "hello")
	}))
	defer srv.Close()
	bin := filepath.Join(t.TempDir(), "quickstart")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	require.NoError(t, err, string(out))

	cmd := exec.Command(bin, srv.URL)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdout, err := cmd.Output()
	require.NoError(t, err, stderr.String())
	get := "GET " + srv.URL + ": 200 OK, 5 bytes\n"
	require.Equal(t, get+get+get+"transport: 3 requests, 0 retried (0 nothing-written, 0 idempotent; 0 free), 0 denied, 0 surfaced\n", string(stdout))
	require.Regexp(t, regexp.MustCompile(`level=DEBUG msg="rstpool dial" source=dialer addr=127\.0\.0\.1:\d+`), stderr.String())

	err = exec.Command(bin).Run()
	var ee *exec.ExitError
	require.True(t, errors.As(err, &ee), "%v", err)
	require.Equal(t, 2, ee.ExitCode(), "no URL: usage")
}
