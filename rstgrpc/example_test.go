package rstgrpc_test

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/rstpool/rstpool"
	"github.com/rstpool/rstpool/rstgrpc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
)

// A client behind an AWS ALB calls a grpc-go server with default settings:
// the channel closes connections idle for 45 s (below the ALB's 60 s),
// pings only during calls and no more often than the server's 5 minutes,
// and repeats a health check that a reset failed.
func ExampleDialOptions() {
	ln, err := net.Listen("tcp", "127.0.0.1:0") // the server, for the example
	if err != nil {
		panic(err)
	}
	srv := grpc.NewServer() // default keepalive.EnforcementPolicy
	healthpb.RegisterHealthServer(srv, health.NewServer())
	go func() { _ = srv.Serve(ln) }()
	defer srv.Stop()

	d := &rstpool.Dialer{Chain: rstpool.Chain{rstpool.MustHop("aws-alb")}}
	opts := append(rstgrpc.DialOptions(d, keepalive.EnforcementPolicy{}),
		grpc.WithChainUnaryInterceptor(rstgrpc.RetryMethods("grpc.health.v1.Health/Check")),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	cc, err := grpc.NewClient(ln.Addr().String(), opts...)
	if err != nil {
		panic(err)
	}
	defer cc.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{})
	fmt.Println(resp.GetStatus(), err)

	idle, _, _ := d.Limits()
	kp := rstgrpc.KeepaliveParams(d, keepalive.EnforcementPolicy{})
	fmt.Printf("idle timeout %v, pings every %v during calls, ack within %v\n", idle, kp.Time, kp.Timeout)
	// Output:
	// SERVING <nil>
	// idle timeout 45s, pings every 5m0s during calls, ack within 30s
}
