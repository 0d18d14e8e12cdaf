package rstgrpc

import (
	"context"
	"net"
	"time"

	"github.com/rstpool/rstpool"
	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"
)

// DefaultServerMinTime is the ping interval a grpc-go server enforces when
// its keepalive.EnforcementPolicy.MinTime is zero (the server's default):
// a client that pings more often collects a strike per ping, and the third
// strike closes the connection with GOAWAY ENHANCE_YOUR_CALM
// "too_many_pings", failing the RPCs in flight on it.
const DefaultServerMinTime = 5 * time.Minute

// DialOptions returns the options that make a grpc-go client dial through
// d with settings consistent with d and with a server that enforces
// server (pass the server's keepalive.EnforcementPolicy; the zero value is
// a grpc-go server's default). Options passed after them to grpc.NewClient
// override them.
//
//   - grpc.WithContextDialer(ContextDialer(d)): TCP keepalive and
//     TCP_USER_TIMEOUT from d, a refused connect retried for d's
//     RefusedRetry, every failure a *rstpool.ConnError. grpc-go keeps only
//     its text in the status a call returns ("rstpool: read …: reset
//     (reused, idle …; likely …)"), so errors.As and rstpool.Classify do
//     not see through a gRPC error.
//   - grpc.WithIdleTimeout with d's idle limit (see rstpool.Dialer.Limits):
//     the channel closes its connections after that long without an RPC,
//     below every hop's idle timeout, so no RPC is written into a flow a
//     load balancer or NAT has forgotten. It counts idleness between RPCs
//     only, never during one. With no idle limit (a negative
//     Dialer.IdleTimeout) grpc-go's own 30 minutes stay.
//   - grpc.WithKeepaliveParams(KeepaliveParams(d, server)): HTTP/2 pings
//     only while RPCs are open, never more often than the server allows.
//
// A nil d means a zero Dialer. Settings of d that cannot work make every
// connect fail with an *rstpool.ConfigError.
func DialOptions(d *rstpool.Dialer, server keepalive.EnforcementPolicy) []grpc.DialOption {
	d = orZero(d)
	opts := []grpc.DialOption{
		grpc.WithContextDialer(ContextDialer(d)),
		grpc.WithKeepaliveParams(KeepaliveParams(d, server)),
	}
	if idle, _, _ := d.Limits(); idle > 0 {
		opts = append(opts, grpc.WithIdleTimeout(idle))
	}
	return opts
}

// KeepaliveParams returns client keepalive parameters that a server
// enforcing server never answers with "too_many_pings":
//
//   - PermitWithoutStream false: a grpc-go server refuses pings on a
//     connection without RPCs unless its policy permits them, and an idle
//     connection needs none: d's TCP keepalive refreshes L4 middleboxes
//     (NAT, L4 load balancers) below the HTTP/2 layer, where the server
//     does not count, and the channel's idle timeout closes the connection
//     before any hop's idle timeout.
//   - Time: the larger of the server's MinTime (DefaultServerMinTime when
//     zero; negative, which a grpc-go server reads as no minimum, sets no
//     floor) and d's idle limit. The server measures from one ping it
//     receives to the next, and a client sends the next ping Time after the
//     previous one's acknowledgement, so a Time of MinTime already earns no
//     strike. Pinging more often than the idle limit keeps no hop fresher:
//     the limit is below every hop's idle timeout. grpc-go raises a Time
//     below 10 s to 10 s.
//   - Timeout: d's KeepAliveInterval × KeepAliveCount (30 s by default),
//     the patience d's TCP keepalive gives an unanswered peer after its
//     first probe; a server that acknowledges TCP but not HTTP/2 (a hung
//     process, a stuck proxy) is given up after it.
//
// A nil d means a zero Dialer.
func KeepaliveParams(d *rstpool.Dialer, server keepalive.EnforcementPolicy) keepalive.ClientParameters {
	d = orZero(d)
	minTime := server.MinTime
	if minTime == 0 {
		minTime = DefaultServerMinTime
	}
	idle, _, _ := d.Limits()
	return keepalive.ClientParameters{
		Time:                max(minTime, idle),
		Timeout:             pingTimeout(d),
		PermitWithoutStream: false,
	}
}

// ContextDialer returns a dial function for grpc.WithContextDialer that
// connects over TCP through d (nil: a zero Dialer). A tracked connection
// applies no idle limit or lifetime of its own (a gRPC connection carries
// many RPCs at once, some quiet for long): the channel applies d's idle
// limit between RPCs (grpc.WithIdleTimeout), and the server's
// MaxConnectionAge ends old connections gracefully. Its peek at the socket
// before the first write after a quiet period stays. It returns the
// *rstpool.Conn, not a *net.TCPConn, so grpc-go, which sets
// TCP_USER_TIMEOUT to the ping Timeout on a *net.TCPConn when keepalive is
// on, leaves d's UserTimeout in force (60 s by default: above keepalive
// idle + interval, so one lost probe does not kill a healthy connection).
func ContextDialer(d *rstpool.Dialer) func(context.Context, string) (net.Conn, error) {
	d = orZero(d)
	return func(ctx context.Context, addr string) (net.Conn, error) {
		return d.DialContext(ctx, "tcp", addr)
	}
}

// pingTimeout is d's TCP keepalive patience after the first probe.
func pingTimeout(d *rstpool.Dialer) time.Duration {
	interval, count := d.KeepAliveInterval, d.KeepAliveCount
	if interval <= 0 {
		interval = rstpool.DefaultKeepAliveInterval
	}
	if count <= 0 {
		count = rstpool.DefaultKeepAliveCount
	}
	return interval * time.Duration(count)
}

func orZero(d *rstpool.Dialer) *rstpool.Dialer {
	if d == nil {
		return &rstpool.Dialer{}
	}
	return d
}
