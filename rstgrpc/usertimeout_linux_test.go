package rstgrpc_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/rstpool/rstpool"
	"github.com/rstpool/rstpool/rstgrpc"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"
)

// With keepalive on, grpc-go sets TCP_USER_TIMEOUT to the ping Timeout on
// a *net.TCPConn. A tracked connection is not one, so the Dialer's own
// UserTimeout (idle + interval × count, 60 s by default) stays: one lost
// keepalive probe never kills a healthy connection.
func TestDialerUserTimeoutStays(t *testing.T) {
	srv := startServer(t)
	d := &rstpool.Dialer{}
	conns := make(chan net.Conn, 4)
	dial := rstgrpc.ContextDialer(d)
	opts := append(rstgrpc.DialOptions(d, keepalive.EnforcementPolicy{}),
		grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			c, err := dial(ctx, addr)
			if err == nil {
				conns <- c
			}
			return c, err
		}))
	require.NoError(t, check(newClient(t, srv.addr, opts...), 2*time.Second))
	raw, err := (<-conns).(*rstpool.Conn).SyscallConn()
	require.NoError(t, err)
	var ms int
	var serr error
	require.NoError(t, raw.Control(func(fd uintptr) {
		ms, serr = unix.GetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT)
	}))
	require.NoError(t, serr)
	want := rstpool.DefaultKeepAliveIdle + rstpool.DefaultKeepAliveInterval*rstpool.DefaultKeepAliveCount
	require.Equal(t, want, time.Duration(ms)*time.Millisecond)
	require.NotEqual(t, rstgrpc.KeepaliveParams(d, keepalive.EnforcementPolicy{}).Timeout, want, "the test cannot tell the two apart")
}
