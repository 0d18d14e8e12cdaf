package rstgrpc_test

import (
	"testing"
	"time"

	"github.com/rstpool/rstpool"
	"github.com/rstpool/rstpool/rstgrpc"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"
)

// serverLimits closes connections idle 300 ms and drains every connection
// after about 800 ms (grpc-go adds ±10 % jitter), with a short grace.
var serverLimits = keepalive.ServerParameters{
	MaxConnectionIdle:     300 * time.Millisecond,
	MaxConnectionAge:      800 * time.Millisecond,
	MaxConnectionAgeGrace: 100 * time.Millisecond,
}

// gapsAround are idle gaps on both sides of a 300 ms idle timeout: a run of
// shorter gaps long enough for a connection to reach its maximum age, then
// gaps just below, at and above the idle timeout.
var gapsAround = []time.Duration{
	40 * time.Millisecond, 100 * time.Millisecond, 200 * time.Millisecond, 250 * time.Millisecond,
	40 * time.Millisecond, 100 * time.Millisecond, 200 * time.Millisecond, 250 * time.Millisecond,
	290 * time.Millisecond, 310 * time.Millisecond, 400 * time.Millisecond,
}

var limitsLoad = workload{rounds: 22, workers: 4, calls: 3, gaps: gapsAround, timeout: 2 * time.Second}

// TestServerIdleAndAge runs unary calls with idle gaps against servers
// that close idle connections (MaxConnectionIdle) and drain old ones
// (MaxConnectionAge): a stock client, the recipe with a zero Dialer (the
// server's GOAWAY closes idle connections) and the recipe with the server
// declared as a hop (the client closes them first). No rstgrpc leg may
// surface an error, nor more than stock.
func TestServerIdleAndAge(t *testing.T) {
	dialers := []*rstpool.Dialer{nil, {}, {Chain: rstpool.Chain{
		{Name: "grpc-server", IdleTimeout: serverLimits.MaxConnectionIdle}}}}
	names := []string{"stock", "rstgrpc zero Dialer", "rstgrpc server as hop"}
	legs := runLegs(names, func(i int) leg {
		srv := startServer(t, grpc.KeepaliveParams(serverLimits))
		var opts []grpc.DialOption
		if dialers[i] != nil {
			opts = rstgrpc.DialOptions(dialers[i], keepalive.EnforcementPolicy{})
		}
		res := limitsLoad.run(newClient(t, srv.addr, opts...))
		w := srv.tap.stats()
		return leg{result: res, extra: map[string]int{
			"server: connections":     w.Conns,
			"server: GOAWAY max_idle": w.GoAways["max_idle"],
			"server: GOAWAY max_age":  w.GoAways["max_age"],
		}}
	})
	t.Log(table("server MaxConnectionIdle 300ms, MaxConnectionAge 800ms, grace 100ms", legs,
		"server: connections", "server: GOAWAY max_idle", "server: GOAWAY max_age"))
	require.NotZero(t, legs[0].extra["server: GOAWAY max_idle"], "the stock client never met MaxConnectionIdle")
	require.NotZero(t, legs[0].extra["server: GOAWAY max_age"], "the stock client never met MaxConnectionAge")
	requireNoWorse(t, legs)
}
