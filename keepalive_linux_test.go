package rstpool

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// sockopts reads the keepalive options back from the kernel.
type sockopts struct {
	keepAlive, idle, interval, count, userTimeoutMs int
}

func readSockopts(t *testing.T, c *Conn) sockopts {
	t.Helper()
	raw, err := c.SyscallConn()
	require.NoError(t, err)
	var o sockopts
	var errs [5]error
	require.NoError(t, raw.Control(func(fd uintptr) {
		f := int(fd)
		o.keepAlive, errs[0] = unix.GetsockoptInt(f, unix.SOL_SOCKET, unix.SO_KEEPALIVE)
		o.idle, errs[1] = unix.GetsockoptInt(f, unix.IPPROTO_TCP, unix.TCP_KEEPIDLE)
		o.interval, errs[2] = unix.GetsockoptInt(f, unix.IPPROTO_TCP, unix.TCP_KEEPINTVL)
		o.count, errs[3] = unix.GetsockoptInt(f, unix.IPPROTO_TCP, unix.TCP_KEEPCNT)
		o.userTimeoutMs, errs[4] = unix.GetsockoptInt(f, unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT)
	}))
	for _, err := range errs {
		require.NoError(t, err)
	}
	return o
}

func TestKeepAliveOptionsReadBackFromKernel(t *testing.T) {
	addr := listen(t, echo).Addr().String()
	cases := []struct {
		name string
		d    *Dialer
		want sockopts
	}{
		{"defaults", noRetry(), sockopts{1, 30, 10, 3, 60000}},
		{"custom", &Dialer{RefusedRetry: -1, KeepAliveIdle: 5 * time.Second, KeepAliveInterval: 2 * time.Second,
			KeepAliveCount: 4, UserTimeout: 9 * time.Second}, sockopts{1, 5, 2, 4, 9000}},
		{"derived user timeout", &Dialer{RefusedRetry: -1, KeepAliveIdle: 5 * time.Second, KeepAliveInterval: 2 * time.Second,
			KeepAliveCount: 4}, sockopts{1, 5, 2, 4, 13000}},
		{"from a middlebox in the chain", &Dialer{RefusedRetry: -1, Chain: Chain{{Name: "nat", IdleTimeout: 40 * time.Second, Middlebox: true}}},
			sockopts{1, 20, 10, 3, 50000}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, readSockopts(t, dialTracked(t, tc.d, addr)))
		})
	}
}

func TestKeepAliveOff(t *testing.T) {
	c := dialTracked(t, &Dialer{RefusedRetry: -1, KeepAliveIdle: -1}, listen(t, echo).Addr().String())
	o := readSockopts(t, c)
	require.Equal(t, 0, o.keepAlive)
	require.Equal(t, 60000, o.userTimeoutMs, "the user timeout still bounds unacknowledged data")

	c = dialTracked(t, &Dialer{RefusedRetry: -1, KeepAliveIdle: -1, UserTimeout: -1}, listen(t, echo).Addr().String())
	require.Equal(t, 0, readSockopts(t, c).userTimeoutMs)
}
