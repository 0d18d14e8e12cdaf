package rstgrpc_test

import (
	"context"
	"io"
	"net"
	"testing"
	"time"

	"github.com/rstpool/rstpool"
	"github.com/rstpool/rstpool/rstgrpc"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"
)

func TestKeepaliveParams(t *testing.T) {
	lb := rstpool.Chain{{Name: "lb", IdleTimeout: 600 * time.Millisecond}}
	for _, tc := range []struct {
		name   string
		d      *rstpool.Dialer
		policy keepalive.EnforcementPolicy
		time   time.Duration
		ack    time.Duration
	}{
		{"nil Dialer, default server", nil, keepalive.EnforcementPolicy{}, rstgrpc.DefaultServerMinTime, 30 * time.Second},
		{"server allows 1m", &rstpool.Dialer{}, keepalive.EnforcementPolicy{MinTime: time.Minute}, time.Minute, 30 * time.Second},
		{"server allows 10s: the idle limit", &rstpool.Dialer{}, keepalive.EnforcementPolicy{MinTime: 10 * time.Second}, rstpool.DefaultIdleTimeout, 30 * time.Second},
		{"chain below MinTime", &rstpool.Dialer{Chain: lb}, keepalive.EnforcementPolicy{MinTime: 100 * time.Millisecond}, 450 * time.Millisecond, 30 * time.Second},
		{"idle limit above MinTime", &rstpool.Dialer{IdleTimeout: 10 * time.Minute}, keepalive.EnforcementPolicy{}, 10 * time.Minute, 30 * time.Second},
		{"no minimum, no limit", &rstpool.Dialer{IdleTimeout: -1}, keepalive.EnforcementPolicy{MinTime: -1}, 0, 30 * time.Second},
		{"keepalive 5s x 2", &rstpool.Dialer{KeepAliveInterval: 5 * time.Second, KeepAliveCount: 2}, keepalive.EnforcementPolicy{}, rstgrpc.DefaultServerMinTime, 10 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kp := rstgrpc.KeepaliveParams(tc.d, tc.policy)
			require.Equal(t, keepalive.ClientParameters{Time: tc.time, Timeout: tc.ack}, kp)
		})
	}
}

// The connection ContextDialer returns is a tracked one that a quiet spell
// beyond the Dialer's idle limit does not end: the channel applies it.
func TestContextDialerConnOutlivesTheIdleLimit(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	go func() {
		s, err := ln.Accept()
		if err == nil {
			defer s.Close()
			_, _ = io.Copy(s, s)
		}
	}()
	d := &rstpool.Dialer{IdleTimeout: 20 * time.Millisecond, RefusedRetry: -1}
	c, err := rstgrpc.ContextDialer(d)(context.Background(), ln.Addr().String())
	require.NoError(t, err)
	defer c.Close()
	_, ok := c.(*rstpool.Conn)
	require.True(t, ok, "a %T, not a *rstpool.Conn", c)
	time.Sleep(50 * time.Millisecond)
	_, err = c.Write([]byte("ping"))
	require.NoError(t, err)
	_, err = io.ReadFull(c, make([]byte, 4))
	require.NoError(t, err)
}

func TestContextDialerRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close()) // nothing listens there now
	_, err = rstgrpc.ContextDialer(&rstpool.Dialer{RefusedRetry: -1})(context.Background(), addr)
	var ce *rstpool.ConnError
	require.ErrorAs(t, err, &ce)
	require.Equal(t, rstpool.ClassRefused, ce.Class)
}

// A Dialer whose settings cannot work fails every connect with an error
// that names the setting; the call reports it.
func TestDialOptionsBadDialer(t *testing.T) {
	srv := startServer(t)
	hc := newClient(t, srv.addr, rstgrpc.DialOptions(&rstpool.Dialer{KeepAliveCount: 200}, keepalive.EnforcementPolicy{})...)
	err := check(hc, 2*time.Second)
	require.Equal(t, codes.Unavailable, status.Code(err), "%v", err)
	require.ErrorContains(t, err, "Dialer.KeepAliveCount")
}

func TestRetryMethods(t *testing.T) {
	unavailable := status.Error(codes.Unavailable, "connection reset by peer")
	retry := rstgrpc.RetryMethods("pkg.Store/Get", "/pkg.Catalog")
	for _, tc := range []struct {
		name     string
		method   string
		first    error
		ctx      func() context.Context
		attempts int
	}{
		{"named method, unavailable", "/pkg.Store/Get", unavailable, context.Background, 2},
		{"named service, unavailable", "/pkg.Catalog/List", unavailable, context.Background, 2},
		{"named method, ok", "/pkg.Store/Get", nil, context.Background, 1},
		{"named method, other code", "/pkg.Store/Get", status.Error(codes.Internal, "boom"), context.Background, 1},
		{"other method", "/pkg.Store/Put", unavailable, context.Background, 1},
		{"service prefix is not a service", "/pkg.StoreAdmin/Get", unavailable, context.Background, 1},
		{"context done", "/pkg.Store/Get", unavailable, canceled, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			attempts := 0
			invoker := func(context.Context, string, any, any, *grpc.ClientConn, ...grpc.CallOption) error {
				attempts++
				if attempts == 1 {
					return tc.first
				}
				return nil
			}
			err := retry(tc.ctx(), tc.method, nil, nil, nil, invoker)
			require.Equal(t, tc.attempts, attempts)
			if tc.attempts == 1 {
				require.Equal(t, tc.first, err)
			} else {
				require.NoError(t, err)
			}
		})
	}
}

func canceled() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}
