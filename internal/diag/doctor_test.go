package diag

import (
	"net"
	"os"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// byCheck returns the findings of one check.
func byCheck(fs []Finding, check string) []Finding {
	var out []Finding
	for _, f := range fs {
		if f.Check == check {
			out = append(out, f)
		}
	}
	return out
}

func TestDoctorBusyHost(t *testing.T) {
	fs, h, err := Doctor(DoctorOptions{Root: "testdata/busy", Port: 8080})
	require.NoError(t, err)
	require.Empty(t, h.Missing)

	lo := byCheck(fs, "listen-overflow")
	require.Len(t, lo, 1)
	require.Equal(t, Crit, lo[0].Severity, "tcp_abort_on_overflow=1 makes overflows resets")
	require.Contains(t, lo[0].Message, "ListenOverflows 17, ListenDrops 19")

	ct := byCheck(fs, "conntrack")
	require.Len(t, ct, 2)
	require.Equal(t, Crit, ct[0].Severity)
	require.Contains(t, ct[0].Message, "62000 of 65536")
	require.Contains(t, ct[1].Advice, "linux-conntrack=432000s")

	q := byCheck(fs, "listen-queue")
	require.Len(t, q, 2)
	require.Equal(t, Crit, q[0].Severity)
	require.Contains(t, q[0].Message, "127.0.0.1:8080: accept queue 128")
	require.Equal(t, Warn, q[1].Severity)
	require.Contains(t, q[1].Message, "[::1]:8080: accept queue 2")

	s := byCheck(fs, "sockets")
	require.Equal(t, Warn, s[0].Severity)
	require.Contains(t, s[0].Advice, "orphans")
	require.Contains(t, s[0].Advice, "time-wait")

	resets := FormatFindings(byCheck(fs, "resets"))
	require.Contains(t, resets, "TCPAbortOnData 42")
	require.Contains(t, resets, "EstabResets 77")
	require.Contains(t, resets, "OutRsts 123")

	ka := byCheck(fs, "keepalive")
	require.Equal(t, Info, ka[0].Severity)
	require.Contains(t, ka[0].Message, "2h11m15s")
	require.Equal(t, Crit, Worst(fs))
}

func TestDoctorQuietHostWithoutConntrack(t *testing.T) {
	fs, h, err := Doctor(DoctorOptions{Root: "testdata/quiet", Port: 9999})
	require.NoError(t, err)
	require.Contains(t, h.Missing, "proc/sys/net/netfilter/nf_conntrack_count")
	require.Contains(t, h.Missing, "proc/net/tcp6")

	ct := byCheck(fs, "conntrack")
	require.Len(t, ct, 1)
	require.Contains(t, ct[0].Message, "conntrack is not loaded")
	require.Equal(t, OK, byCheck(fs, "keepalive")[0].Severity, "300s idle is short enough")
	require.Equal(t, OK, byCheck(fs, "listen-overflow")[0].Severity)
	q := byCheck(fs, "listen-queue")
	require.Equal(t, Warn, q[0].Severity)
	require.Contains(t, q[0].Message, "nothing listens on TCP port 9999")
}

func TestDoctorNothingThere(t *testing.T) {
	fs, h, err := Doctor(DoctorOptions{Root: "testdata/empty"})
	require.NoError(t, err)
	require.Len(t, h.Missing, len(doctorSysctls)+3)
	for _, f := range fs {
		require.LessOrEqual(t, f.Severity, Info, "a missing file is never a problem: %s", f)
	}
	require.Contains(t, FormatFindings(fs), "not available on this host")
}

func TestDoctorMalformedFile(t *testing.T) {
	_, _, err := Doctor(DoctorOptions{Root: "testdata/broken"})
	require.ErrorContains(t, err, "proc/net/netstat")
}

func TestDoctorBacklogHook(t *testing.T) {
	opts := DoctorOptions{Root: "testdata/busy", Port: 8080, Backlogs: func(port uint16) (map[string]int64, error) {
		require.EqualValues(t, 8080, port)
		return map[string]int64{"127.0.0.1:8080": 4096}, nil
	}}
	fs, _, err := Doctor(opts)
	require.NoError(t, err)
	q := byCheck(fs, "listen-queue")
	require.Equal(t, Warn, q[0].Severity, "128 of 4096 is not full")
	require.Contains(t, q[0].Message, "of backlog 4096")
}

func TestParseHexAddrPort(t *testing.T) {
	a, err := parseHexAddrPort("0100007F:6448")
	require.NoError(t, err)
	require.Equal(t, "127.0.0.1:25672", a.String())
	a, err = parseHexAddrPort("00000000000000000000000001000000:1111")
	require.NoError(t, err)
	require.Equal(t, "[::1]:4369", a.String())
	_, err = parseHexAddrPort("zz:1")
	require.Error(t, err)
}

// TestDoctorLiveProc reads this machine's /proc and finds a real listener's
// accept queue: three connections the test never accepts.
func TestDoctorLiveProc(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("/proc is Linux only")
	}
	if _, err := os.Stat("/proc/net/tcp"); err != nil {
		t.Skipf("no /proc/net/tcp: %v", err)
	}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	for range 3 {
		c, err := net.Dial("tcp4", ln.Addr().String())
		require.NoError(t, err)
		defer c.Close()
	}
	port := uint16(ln.Addr().(*net.TCPAddr).Port)
	fs, h, err := Doctor(DoctorOptions{Port: port})
	require.NoError(t, err)
	require.NotContains(t, h.Missing, "proc/net/netstat")
	require.Len(t, h.Listeners, 1)
	require.EqualValues(t, 3, h.Listeners[0].AcceptQueue)
	q := byCheck(fs, "listen-queue")
	require.Equal(t, Warn, q[0].Severity)
	require.True(t, strings.HasPrefix(q[0].Message, ln.Addr().String()+": accept queue 3"), q[0].Message)
}

// TestListenBacklogsLive reads a real listener's backlog through sock_diag.
func TestListenBacklogsLive(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("sock_diag is Linux only")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	port := uint16(ln.Addr().(*net.TCPAddr).Port)
	b, err := ListenBacklogs(port)
	require.NoError(t, err)
	require.Len(t, b, 1)
	somax, err := readInt(os.DirFS("/"), "proc/sys/net/core/somaxconn")
	require.NoError(t, err)
	require.Equal(t, min(somax, 1<<16-1), b[ln.Addr().String()], "Go listens with somaxconn as backlog")
}
