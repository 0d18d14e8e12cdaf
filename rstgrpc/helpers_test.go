package rstgrpc_test

import (
	"context"
	"io"
	"net"
	"os"
	"testing"
	"time"
	_ "unsafe" // go:linkname, below

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/grpclog"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// minPingTime is grpc-go's floor on a client's keepalive Time (10 s),
// which grpc-go documents as a knob for tests. Lowering it lets the ping
// tests scale the server's 5-minute policy down to fractions of a second
// and run in seconds; the ping and strike logic they exercise is grpc-go's
// own, unchanged.
//
//go:linkname minPingTime google.golang.org/grpc/internal.KeepaliveMinPingTime
var minPingTime time.Duration

func TestMain(m *testing.M) {
	// grpc-go logs every GOAWAY and reconnect at error level to stderr; the
	// tests count them instead.
	grpclog.SetLoggerV2(grpclog.NewLoggerV2(io.Discard, io.Discard, io.Discard))
	minPingTime = 50 * time.Millisecond
	os.Exit(m.Run())
}

// server is a real grpc-go server with the health service on a loopback
// port, its connections tapped.
type server struct {
	addr string
	tap  *tapListener
}

func startServer(t *testing.T, opts ...grpc.ServerOption) *server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	tap := &tapListener{Listener: ln}
	s := grpc.NewServer(opts...)
	healthpb.RegisterHealthServer(s, health.NewServer())
	go func() { _ = s.Serve(tap) }()
	t.Cleanup(s.Stop)
	return &server{addr: ln.Addr().String(), tap: tap}
}

// newClient connects to addr in plaintext with opts (nil: a stock client).
func newClient(t *testing.T, addr string, opts ...grpc.DialOption) healthpb.HealthClient {
	t.Helper()
	opts = append(opts, grpc.WithTransportCredentials(insecure.NewCredentials()))
	cc, err := grpc.NewClient(addr, opts...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = cc.Close() })
	return healthpb.NewHealthClient(cc)
}

// check makes one unary call with a bounded deadline.
func check(c healthpb.HealthClient, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	_, err := c.Check(ctx, &healthpb.HealthCheckRequest{})
	return err
}
