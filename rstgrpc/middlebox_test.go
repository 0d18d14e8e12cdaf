package rstgrpc_test

import (
	"testing"
	"time"

	"github.com/rstpool/rstpool"
	"github.com/rstpool/rstpool/internal/faultproxy"
	"github.com/rstpool/rstpool/rstgrpc"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"
)

// lbIdle is the idle timeout of the forgetful load balancer in front of the
// server, scaled down from AWS ALB's 60 s 200 times.
const lbIdle = 300 * time.Millisecond

var lbLoad = workload{rounds: 22, workers: 4, calls: 3, gaps: gapsAround, timeout: 2 * time.Second}

// A middlebox scenario: the proxy's faults and how often it restarts.
type middlebox struct {
	title   string
	cfg     faultproxy.Config // Upstream is filled in per leg
	restart int               // restart the proxy in the gap after every restart-th round (0: never)
}

// restartDown is how long a restarted proxy refuses connections. A restart
// begins restartLead before the end of a gap, so the next round's calls
// meet a refused connect.
const (
	restartDown = 50 * time.Millisecond
	restartLead = 20 * time.Millisecond
)

// lbDialer is the recipe's Dialer for the scenarios: it declares the load
// balancer as a hop, so the channel closes idle connections after 225 ms.
var lbDialer = &rstpool.Dialer{Chain: rstpool.Chain{{Name: "lb", IdleTimeout: lbIdle, Middlebox: true}}}

// TestForgetfulMiddlebox puts the fault proxy between the client and a
// default grpc-go server: a load balancer that forgets flows idle longer
// than lbIdle and answers the next bytes with an RST, alone and with
// restarts that reset every flow while the client is idle and refuse
// connects for a moment. No rstgrpc error may surface.
func TestForgetfulMiddlebox(t *testing.T) {
	lb := faultproxy.Config{IdleTimeout: lbIdle, IdleAction: faultproxy.ActionReset}
	recipe := rstgrpc.DialOptions(lbDialer, keepalive.EnforcementPolicy{})
	for _, mb := range []middlebox{
		{title: "forgetful lb (RST after 300ms idle)", cfg: lb},
		{title: "forgetful lb, restart every 3rd gap (down 50ms)", cfg: lb, restart: 3},
	} {
		t.Run(mb.title, func(t *testing.T) {
			legs := runLegs([]string{"stock", "rstgrpc lb declared"}, func(i int) leg {
				return mb.leg(t, [][]grpc.DialOption{nil, recipe}[i])
			})
			t.Log(table(mb.title, legs, "proxy: flows", "proxy: idle flows reaped", "proxy: flows reset by restart"))
			require.NotZero(t, legs[0].result.errors(), "the stock client met no fault; the test proves nothing")
			requireNoWorse(t, legs)
		})
	}
}

// TestResetInFlight adds to the forgetful load balancer resets in the
// middle of a transfer, on a third of the flows once they carried 3000
// bytes, as a crashing peer does. Such a reset fails the calls in flight on
// the connection, whose requests have left: no dialer can save them, and
// grpc-go retries only calls that never reached the server. The recipe
// surfaces at most the calls in flight at each reset (one per worker);
// with RetryIdempotent for the idempotent health check, none.
func TestResetInFlight(t *testing.T) {
	mb := middlebox{
		title: "forgetful lb, 30% of flows reset after 3000 bytes",
		cfg: faultproxy.Config{IdleTimeout: lbIdle, IdleAction: faultproxy.ActionReset,
			ResetAfterBytes: 3000, ResetFraction: 0.3, Seed: 1},
	}
	retry := grpc.WithChainUnaryInterceptor(rstgrpc.RetryMethods("grpc.health.v1.Health/Check"))
	recipe := rstgrpc.DialOptions(lbDialer, keepalive.EnforcementPolicy{})
	opts := [][]grpc.DialOption{nil, recipe, append(recipe[:len(recipe):len(recipe)], retry)}
	legs := runLegs([]string{"stock", "rstgrpc lb declared", "rstgrpc + RetryIdempotent"}, func(i int) leg {
		return mb.leg(t, opts[i])
	})
	t.Log(table(mb.title, legs, "proxy: flows", "proxy: idle flows reaped", "proxy: mid-transfer resets"))
	require.NotZero(t, legs[0].result.errors(), "the stock client met no fault; the test proves nothing")
	require.NotZero(t, legs[1].extra["proxy: mid-transfer resets"], "no flow of the recipe was reset; the test proves nothing")
	inFlight := lbLoad.workers * legs[1].extra["proxy: mid-transfer resets"]
	require.LessOrEqual(t, legs[1].result.errors(), inFlight, "rstgrpc: errors beyond the calls in flight at the resets")
	require.Zero(t, legs[1].extra["proxy: idle flows reaped"], "rstgrpc: a flow was reaped idle")
	require.Zero(t, legs[2].result.errors(), "rstgrpc + RetryIdempotent: errors surfaced")
	requireAtMostStock(t, legs)
}

// leg runs lbLoad through a new proxy in front of a new server, with a
// client built with opts (nil: stock).
func (mb middlebox) leg(t *testing.T, opts []grpc.DialOption) leg {
	srv := startServer(t)
	cfg := mb.cfg
	cfg.Upstream = srv.addr
	p, err := faultproxy.Start(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Close() })
	load := lbLoad
	load.pause = mb.pause(p)
	res := load.run(newClient(t, p.Addr(), opts...))
	s := p.Stats()
	return leg{result: res, extra: map[string]int{
		"proxy: flows":                  int(s.Accepted),
		"proxy: idle flows reaped":      int(s.Reaped()),
		"proxy: flows reset by restart": int(s.FlowsReset),
		"proxy: mid-transfer resets":    int(s.MidTransferResets),
	}}
}

// pause sleeps through a gap, restarting p restartLead before its end
// after every mb.restart-th round.
func (mb middlebox) pause(p *faultproxy.Proxy) func(r int, gap time.Duration) {
	return func(r int, gap time.Duration) {
		if mb.restart == 0 || (r+1)%mb.restart != 0 {
			time.Sleep(gap)
			return
		}
		time.Sleep(gap - restartLead)
		down := p.Restart(restartDown)
		time.Sleep(restartLead)
		go func() { <-down }()
	}
}
