package rstgrpc_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rstpool/rstpool"
	"github.com/rstpool/rstpool/rstgrpc"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
)

// scaledPolicy is a grpc-go server's default enforcement policy (MinTime
// 5 min, PermitWithoutStream false) with MinTime scaled down 600 times, so
// that the three strikes that close a connection take seconds.
var scaledPolicy = keepalive.EnforcementPolicy{MinTime: 500 * time.Millisecond}

type pingClient struct {
	name string
	opts []grpc.DialOption
	good bool // configured consistently with the server: must never be sent away
}

type pingResult struct {
	pingClient
	wire   wireStats
	errors int
}

// TestNoTooManyPings runs the same session through clients configured by
// the recipe and through two common misconfigurations, each against its
// own server enforcing scaledPolicy: a call, a server stream held open and
// quiet (the client pings while it waits), an idle spell with no RPC, a
// last call. The recipe clients must ping during the quiet stream and never
// get a "too_many_pings" GOAWAY; the misconfigured ones must get it, or
// the test would prove nothing.
func TestNoTooManyPings(t *testing.T) {
	chain := &rstpool.Dialer{Chain: rstpool.Chain{{Name: "lb", IdleTimeout: 600 * time.Millisecond}}}
	noLimit := &rstpool.Dialer{IdleTimeout: -1}
	clients := []pingClient{
		{"rstgrpc, chain lb=600ms", rstgrpc.DialOptions(chain, scaledPolicy), true},
		{"rstgrpc, no idle limit", rstgrpc.DialOptions(noLimit, scaledPolicy), true},
		{"Time 100ms < MinTime", []grpc.DialOption{grpc.WithKeepaliveParams(keepalive.ClientParameters{
			Time: 100 * time.Millisecond})}, false},
		{"PermitWithoutStream, Time 600ms", []grpc.DialOption{grpc.WithKeepaliveParams(keepalive.ClientParameters{
			Time: 600 * time.Millisecond, PermitWithoutStream: true})}, false},
	}
	results := make([]pingResult, len(clients))
	var wg sync.WaitGroup
	for i, pc := range clients {
		srv := startServer(t, grpc.KeepaliveEnforcementPolicy(scaledPolicy))
		hc := newClient(t, srv.addr, pc.opts...)
		wg.Go(func() {
			results[i] = pingResult{pingClient: pc, errors: pingSession(hc)}
			results[i].wire = srv.tap.stats()
		})
	}
	wg.Wait()
	t.Log(pingTable(results))
	for _, r := range results {
		if r.good {
			require.Zero(t, r.wire.TooManyPings, "%s: too_many_pings", r.name)
			require.Zero(t, r.errors, "%s: errors", r.name)
			require.GreaterOrEqual(t, r.wire.Pings, 3, "%s: the client did not ping; the test proves nothing", r.name)
		} else {
			require.NotZero(t, r.wire.TooManyPings, "%s: the control was not sent away", r.name)
		}
	}
	require.NotZero(t, results[2].errors, "a quiet stream sent away with too_many_pings fails")
}

// pingSession is the workload of TestNoTooManyPings; it returns how many of
// its RPCs failed.
func pingSession(hc healthpb.HealthClient) (errors int) {
	count := func(err error) {
		if err != nil {
			errors++
		}
	}
	count(check(hc, 2*time.Second))
	count(watchQuiet(hc, 2500*time.Millisecond))
	time.Sleep(2500 * time.Millisecond)
	count(check(hc, 2*time.Second))
	return errors
}

// watchQuiet opens a health Watch stream, reads the first status and holds
// the stream open for hold. The server sends nothing more, so the client
// sees no activity and pings. An end before hold is a failure.
func watchQuiet(hc healthpb.HealthClient, hold time.Duration) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, err := hc.Watch(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		return err
	}
	if _, err := st.Recv(); err != nil {
		return err
	}
	ended := make(chan error, 1)
	go func() { _, err := st.Recv(); ended <- err }()
	select {
	case err := <-ended:
		return fmt.Errorf("watch ended early: %w", err)
	case <-time.After(hold):
		return nil
	}
}

func pingTable(rs []pingResult) string {
	var b strings.Builder
	fmt.Fprintf(&b, "server policy MinTime %v, PermitWithoutStream false (grpc-go's default, scaled)\n", scaledPolicy.MinTime)
	fmt.Fprintf(&b, "%-34s %6s %6s %15s %7s\n", "client", "conns", "pings", "too_many_pings", "errors")
	for _, r := range rs {
		fmt.Fprintf(&b, "%-34s %6d %6d %15d %7d\n", r.name, r.wire.Conns, r.wire.Pings, r.wire.TooManyPings, r.errors)
	}
	return b.String()
}
