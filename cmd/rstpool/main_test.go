package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func runCmd(args ...string) (int, string, string) {
	var out, errOut bytes.Buffer
	st := run(args, &out, &errOut)
	return st, out.String(), errOut.String()
}

func TestHelpListsEverySubcommand(t *testing.T) {
	for _, args := range [][]string{nil, {"help"}} {
		st, out, _ := runCmd(args...)
		require.Equal(t, exitOK, st)
		for name, c := range commands {
			require.Contains(t, out, name+" ")
			require.Contains(t, out, c.Summary)
		}
	}
	st, _, errOut := runCmd("nope")
	require.Equal(t, exitUsage, st)
	require.Contains(t, errOut, `unknown command "nope"`)
}

func TestSubcommandHelp(t *testing.T) {
	for name := range commands {
		st, _, errOut := runCmd(name, "-h")
		require.Equal(t, exitOK, st, name)
		require.Contains(t, errOut, "Usage: rstpool "+name, name)
	}
	st, out, _ := runCmd("help", "audit")
	require.Equal(t, exitOK, st)
	require.Contains(t, out, "--hop aws-alb=120s")
}

func TestAuditCommand(t *testing.T) {
	st, out, _ := runCmd("audit", "--hop", "aws-alb", "--hop", "nginx")
	require.Equal(t, exitFindings, st)
	require.Contains(t, out, "crit client-idle")

	st, out, _ = runCmd("audit", "--hop", "aws-alb", "--idle", "45s", "--user-timeout", "1m")
	require.Equal(t, exitOK, st, out)

	hops := filepath.Join(t.TempDir(), "hops.txt")
	require.NoError(t, os.WriteFile(hops, []byte("# path\naws-nat\naws-alb # L7\n"), 0o600))
	st, out, _ = runCmd("audit", "--file", hops, "--idle", "45s", "--json")
	require.Equal(t, exitOK, st, out)
	var res struct {
		Path      string
		Suggested struct {
			ClientIdle int64 `json:"client_idle"`
		}
	}
	require.NoError(t, json.Unmarshal([]byte(out), &res))
	require.Equal(t, "aws-nat=5m50s → aws-alb=1m0s", res.Path)
	require.EqualValues(t, 45e9, res.Suggested.ClientIdle)

	for _, bad := range [][]string{{"audit"}, {"audit", "--hop", "nosuch"}, {"audit", "--file", "/nonexistent"}, {"audit", "--hop", "nginx", "extra"}} {
		st, _, _ := runCmd(bad...)
		require.Equal(t, exitUsage, st, bad)
	}
}

func TestDoctorCommandOnFixture(t *testing.T) {
	st, out, _ := runCmd("doctor", "--root", "../../internal/diag/testdata/busy", "--port", "8080")
	require.Equal(t, exitFindings, st)
	require.Contains(t, out, "crit conntrack")
	st, out, _ = runCmd("doctor", "--root", "../../internal/diag/testdata/quiet", "--json")
	require.Equal(t, exitOK, st)
	var res struct{ Findings []map[string]string }
	require.NoError(t, json.Unmarshal([]byte(out), &res))
	require.NotEmpty(t, res.Findings)
	require.Equal(t, exitUsage, func() int { st, _, _ := runCmd("doctor", "--port", "70000"); return st }())
}

func TestProbeCommand(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := &http.Server{IdleTimeout: 200 * time.Millisecond, Handler: http.NotFoundHandler()}
	go srv.Serve(ln)
	defer srv.Close()
	st, out, errOut := runCmd("probe", "--proto", "http", "--min", "50ms", "--max", "2s", "--json", ln.Addr().String())
	require.Equal(t, exitOK, st, errOut)
	var res struct{ End string }
	require.NoError(t, json.Unmarshal([]byte(out), &res))
	require.Equal(t, "FIN", res.End)

	st, _, _ = runCmd("probe")
	require.Equal(t, exitUsage, st)
}

func TestWatchCommandOnLoopback(t *testing.T) {
	st, _, _ := runCmd("watch")
	require.Equal(t, exitUsage, st, "--port is required")
	if os.Geteuid() != 0 || runtime.GOOS != "linux" {
		t.Skip("watch needs root on Linux")
	}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			c.Read(make([]byte, 1)) // reset after the client's first byte, not during its dial
			c.(*net.TCPConn).SetLinger(0)
			c.Close() // a real RST from the peer itself
		}
	}()
	done := make(chan struct{})
	var out string
	go func() {
		defer close(done)
		st, out, _ = runCmd("watch", "--port", fmt.Sprint(ln.Addr().(*net.TCPAddr).Port), "--duration", "700ms", "--json")
	}()
	time.Sleep(300 * time.Millisecond) // let the capture open
	c, err := net.Dial("tcp4", ln.Addr().String())
	require.NoError(t, err)
	c.Write([]byte("x"))
	_, err = c.Read(make([]byte, 1))
	require.ErrorIs(t, err, syscall.ECONNRESET)
	c.Close()
	<-done
	require.Equal(t, exitOK, st, out)
	var sum struct{ RSTs, Peer, Forged int }
	require.NoError(t, json.Unmarshal([]byte(out), &sum))
	require.Equal(t, 1, sum.RSTs, out)
	require.Equal(t, 1, sum.Peer, out)
}
