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
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rstpool/rstpool"
	"github.com/stretchr/testify/require"
)

func runCmd(args ...string) (int, string, string) {
	var out, errOut bytes.Buffer
	st := run(args, &out, &errOut)
	return st, out.String(), errOut.String()
}

// decodeStrict decodes one JSON document into v, refusing any key v does
// not have.

// decodeOne decodes one JSON document into v, refusing unknown keys.
func decodeOne(t *testing.T, doc string, v any) {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(doc))
	dec.DisallowUnknownFields()
	require.NoError(t, dec.Decode(v), doc)
	require.False(t, dec.More(), "one document")
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
}

func TestSubcommandHelp(t *testing.T) {
	for name := range commands {
		st, _, errOut := runCmd(name, "-h")
		require.Equal(t, exitOK, st, name)
		require.Contains(t, errOut, "Usage: rstpool "+name, name)
	}
	st, out, _ := runCmd("help", "audit")
	require.Equal(t, exitOK, st)
	require.Contains(t, out, "--hop nginx=1s")
	require.Contains(t, out, "_ms", "the JSON fields are documented")
}

// Every bad command line is refused before any work, with one line naming
// the flag or argument, and exit status 2.
func TestUsageErrors(t *testing.T) {
	var dialerMsg = func(d rstpool.Dialer) string {
		_, _, err := d.Limits()
		return err.(*rstpool.ConfigError).Msg
	}
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"nope"}, `unknown command "nope"`},
		{[]string{"help", "nope"}, `unknown command "nope"`},
		{[]string{"audit"}, "give at least one --hop or a --file"},
		{[]string{"audit", "--hop", "nosuch"}, `invalid value "nosuch" for flag -hop`},
		{[]string{"audit", "--hop", "aws-nat,terminates"}, "both terminates and passthrough"},
		{[]string{"audit", "--file", "/nonexistent"}, "--file: open /nonexistent"},
		{[]string{"audit", "--hop", "nginx", "extra"}, `unexpected argument "extra"`},
		{[]string{"audit", "--hop", "nginx", "--bogus"}, "flag provided but not defined: -bogus"},
		{[]string{"audit", "--hop", "nginx", "--idle", "-1s"}, "--idle -1s: must not be negative"},
		{[]string{"audit", "--hop", "nginx", "--keepalive-count", "0"}, "--keepalive-count 0: must be between 1 and 127"},
		{[]string{"audit", "--hop", "nginx", "--keepalive-idle", "500ms"},
			"--keepalive-idle: " + dialerMsg(rstpool.Dialer{KeepAliveIdle: 500 * time.Millisecond})},
		{[]string{"audit", "--hop", "nginx", "--keepalive-count", "-3"},
			"--keepalive-count: " + dialerMsg(rstpool.Dialer{KeepAliveCount: -3})},
		{[]string{"audit", "--hop", "nginx", "--user-timeout", "20s"}, "--user-timeout: 20s must exceed KeepAliveIdle + KeepAliveInterval"},
		{[]string{"probe"}, "give the HOST:PORT to probe"},
		{[]string{"probe", "127.0.0.1:1", "127.0.0.1:2"}, `unexpected argument "127.0.0.1:2"`},
		{[]string{"probe", "--proto", "smtp", "127.0.0.1:1"}, `--proto "smtp": want auto`},
		{[]string{"probe", "--min", "0s", "127.0.0.1:1"}, "--min 0s: must be positive"},
		{[]string{"probe", "--min", "2s", "--max", "1s", "127.0.0.1:1"}, "--max 1s: must be at least --min (2s)"},
		{[]string{"probe", "--max", "abc", "127.0.0.1:1"}, `invalid value "abc" for flag -max`},
		{[]string{"probe", "--conns", "1", "127.0.0.1:1"}, "--conns 1: must be at least 2"},
		{[]string{"probe", "--wait", "0s", "127.0.0.1:1"}, "--wait 0s: must be positive"},
		{[]string{"probe", "localhost"}, `"localhost": want HOST:PORT`},
		{[]string{"probe", "127.0.0.1:0"}, "with a port from 1 to 65535"},
		{[]string{"probe", "127.0.0.1:99999"}, "with a port from 1 to 65535"},
		{[]string{"doctor", "--port", "70000"}, "--port 70000: must be between 1 and 65535"},
		{[]string{"doctor", "--port", "-1"}, "--port -1: must be between 1 and 65535"},
		{[]string{"doctor", "extra"}, `unexpected argument "extra"`},
		{[]string{"doctor", "--root", "/nonexistent"}, "--root /nonexistent: no proc directory"},
		{[]string{"watch"}, "--port: required"},
		{[]string{"watch", "--port", "70000"}, "--port 70000: must be between 1 and 65535"},
		{[]string{"watch", "--port", "80", "--duration", "-1s"}, "--duration -1s: must not be negative"},
		{[]string{"watch", "--port", "80", "extra"}, `unexpected argument "extra"`},
	}
	for _, tc := range cases {
		st, out, errOut := runCmd(tc.args...)
		require.Equal(t, exitUsage, st, "%v: %s", tc.args, errOut)
		require.Empty(t, out, tc.args)
		lines := strings.Split(strings.TrimSpace(errOut), "\n")
		require.LessOrEqual(t, len(lines), 2, "a reason and where to look, no usage dump: %v\n%s", tc.args, errOut)
		require.Contains(t, lines[0], tc.want, tc.args)
		require.True(t, strings.HasPrefix(lines[0], "rstpool"), lines[0])
		require.NotContains(t, lines[0], "rstpool: rstpool", tc.args)
		require.NotContains(t, errOut, "Usage:", tc.args)
	}
}

// The README's audit example is what the command prints, and the library
// says the same of the same path.
func TestREADMEAuditExample(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	_, after, ok := strings.Cut(string(readme), "Node.js backend:\n\n```\n")
	require.True(t, ok, "the README's audit example")
	want, _, _ := strings.Cut(after, "```")

	st, out, _ := runCmd("audit", "--hop", "aws-nat", "--hop", "aws-alb", "--hop", "node", "--idle", "90s")
	require.Equal(t, exitFindings, st)
	require.Equal(t, want, out, "the README shows the command's output")

	st, out, _ = runCmd("audit", "--hop", "aws-nat", "--hop", "aws-alb", "--hop", "node", "--idle", "90s", "--json")
	require.Equal(t, exitFindings, st)
	var res auditJSON
	decodeOne(t, out, &res)
	chain := rstpool.Chain{rstpool.MustHop("aws-nat"), rstpool.MustHop("aws-alb"), rstpool.MustHop("node")}
	require.EqualError(t, chain.Check(90*time.Second), res.Findings[0].Message)
	require.Equal(t, chain.ClientIdleTimeout().Milliseconds(), res.Suggested.IdleTimeoutMs)
	d := &rstpool.Dialer{Chain: chain}
	idle, life, err := d.Limits()
	require.NoError(t, err)
	ka, ut, err := d.KeepAlive()
	require.NoError(t, err)
	require.Equal(t, settingsJSON{IdleTimeoutMs: idle.Milliseconds(), KeepAliveIdleMs: ka.Idle.Milliseconds(),
		KeepAliveIntervalMs: ka.Interval.Milliseconds(), KeepAliveCount: ka.Count, UserTimeoutMs: ut.Milliseconds(),
		MaxLifetimeMs: life.Milliseconds()}, res.Suggested)
	require.Equal(t, settingsJSON{IdleTimeoutMs: 45000, KeepAliveIdleMs: 30000, KeepAliveIntervalMs: 10000,
		KeepAliveCount: 3, UserTimeoutMs: 60000}, res.Suggested)
	_, _, err = (&rstpool.Dialer{Chain: chain, IdleTimeout: 90 * time.Second}).Limits()
	require.ErrorContains(t, err, res.Findings[0].Message, "the Dialer refuses it in the same words")
}

func TestAuditCommand(t *testing.T) {
	st, out, _ := runCmd("audit", "--hop", "aws-alb", "--idle", "45s", "--user-timeout", "1m")
	require.Equal(t, exitOK, st, out)

	hops := filepath.Join(t.TempDir(), "hops.txt")
	require.NoError(t, os.WriteFile(hops, []byte("# path\naws-nat\nlb=60s,terminates,upstream=50s # L7\napi=2m\n"), 0o600))
	st, out, _ = runCmd("audit", "--file", hops, "--idle", "45s", "--json")
	require.Equal(t, exitOK, st, out)
	var res auditJSON
	decodeOne(t, out, &res)
	require.Equal(t, "aws-nat=5m50s → lb=1m0s → api=2m0s", res.Path)
	require.Equal(t, []hopJSON{
		{Name: "aws-nat", Kind: "passthrough", IdleTimeoutMs: 350000},
		{Name: "lb", Kind: "terminates", IdleTimeoutMs: 60000, UpstreamIdleMs: 50000},
		{Name: "api", Kind: "unmarked", IdleTimeoutMs: 120000},
	}, res.Hops)
	require.EqualValues(t, 45000, res.Client.IdleTimeoutMs)
	require.EqualValues(t, 15000, res.Client.KeepAliveIdleMs)
	require.EqualValues(t, 45000, res.Suggested.IdleTimeoutMs)
	require.Equal(t, "suggested", res.Findings[len(res.Findings)-1].Check)
}

func TestDoctorCommandOnFixture(t *testing.T) {
	st, out, _ := runCmd("doctor", "--root", "../../internal/diag/testdata/busy", "--port", "8080")
	require.Equal(t, exitFindings, st)
	require.Contains(t, out, "crit conntrack")
	for _, fixture := range []string{"busy", "quiet"} {
		st, out, _ = runCmd("doctor", "--root", "../../internal/diag/testdata/"+fixture, "--port", "8080", "--json")
		require.NotEqual(t, exitUsage, st)
		var res doctorJSON
		decodeOne(t, out, &res)
		require.NotEmpty(t, res.Findings)
		require.NotNil(t, res.Host.KeepAliveTimeMs, fixture)
		require.Zero(t, *res.Host.KeepAliveTimeMs%1000, "seconds as milliseconds")
		require.NotEmpty(t, res.Host.Counters)
	}
	require.EqualValues(t, 7200000, func() int64 {
		_, out, _ := runCmd("doctor", "--root", "../../internal/diag/testdata/busy", "--json")
		var res doctorJSON
		decodeOne(t, out, &res)
		return *res.Host.KeepAliveTimeMs
	}())
}

func TestProbeCommand(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := &http.Server{IdleTimeout: 300 * time.Millisecond, Handler: http.NotFoundHandler()}
	go srv.Serve(ln)
	defer srv.Close()
	addr := ln.Addr().String()

	st, out, errOut := runCmd("probe", "--min", "50ms", "--max", "1s", "--json", addr)
	require.Equal(t, exitOK, st, errOut)
	var res probeJSON
	decodeOne(t, out, &res)
	require.Equal(t, "http", res.Proto, "the default detects HTTP")
	require.Equal(t, "FIN", res.End)
	require.EqualValues(t, 1000, res.MaxMs)
	require.InDelta(t, 300, res.EstimateMs, 60)
	require.Contains(t, errOut, "timeout in [", "progress on stderr")

	st, out, _ = runCmd("probe", "--proto", "tcp", "--min", "50ms", "--max", "400ms", addr)
	require.Equal(t, exitOK, st)
	require.Contains(t, out, "--max 400ms")
	require.Contains(t, out, "mode: tcp (--proto tcp)")
	require.Contains(t, out, "note: No request was sent", "tcp mode says why its answer may be wrong")

	closed, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	closedAddr := closed.Addr().String()
	closed.Close()
	st, _, errOut = runCmd("probe", "--proto", "http", closedAddr)
	require.Equal(t, exitFindings, st)
	require.Equal(t, fmt.Sprintf("rstpool probe: dial tcp %s: connect: connection refused\n", closedAddr), errOut,
		"one prefix, no empty parentheses")
}

func TestWatchCommandOnLoopback(t *testing.T) {
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
	var st int
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
	var sum struct {
		Segments, RSTs, Peer, Forged, Unknown int
		Events                                []struct {
			Time     time.Time `json:"time"`
			From, To string
			TTL      int    `json:"ttl"`
			PeerTTL  int    `json:"peer_ttl"`
			Verdict  string `json:"verdict"`
		}
	}
	decodeOne(t, out, &sum)
	require.Equal(t, 1, sum.RSTs, out)
	require.Equal(t, 1, sum.Peer, out)
	require.Equal(t, "peer", sum.Events[0].Verdict)
}
