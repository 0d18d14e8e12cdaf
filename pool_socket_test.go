package rstpool

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/rstpool/rstpool/internal/faultproxy"
	"github.com/stretchr/testify/require"
)

// socketRounds runs rounds of non-idempotent INCRs with idle gaps longer
// than the server's reap timeout, and requires that none failed and that
// each reached the server exactly once.
func socketRounds(t *testing.T, srv *lineServer, p *Pool, rounds int, gap time.Duration) {
	t.Helper()
	for i := range rounds {
		key := fmt.Sprint("k", i)
		calls := 0
		require.NoError(t, p.Do(context.Background(), false, lsIncr(key, &calls)), "round %d", i)
		require.Equal(t, 1, srv.count(key), "round %d ran twice on the server", i)
		time.Sleep(gap)
	}
	require.Equal(t, int64(0), p.Stats().Surfaced)
}

func TestPoolSurvivesServerReapingIdleConns(t *testing.T) {
	for name, mode := range map[string]int32{"fin": reapFIN, "rst": reapRST} {
		t.Run(name, func(t *testing.T) {
			srv := lsStart(t)
			srv.reapMode.Store(mode)
			srv.reapAfter.Store(int64(20 * time.Millisecond))
			p := poolFor(t, srv, PoolConfig{MaxSize: 2}) // its idle timeout (45 s) outlives the server's
			socketRounds(t, srv, p, 5, 50*time.Millisecond)
			st := p.Stats()
			require.Equal(t, int64(4), st.Retired.PeerClosed, "the peek caught each reaped conn before use")
			require.Equal(t, int64(0), st.StaleHitInUse())
			require.True(t, st.StaleRatio() > 1e9, "caught before use, never hit: %v", st.StaleRatio())
		})
	}
}

func TestPoolPingCatchesASilentServer(t *testing.T) {
	srv := lsStart(t)
	srv.reapMode.Store(reapSilent)
	srv.reapAfter.Store(int64(20 * time.Millisecond))
	p := poolFor(t, srv, PoolConfig{MaxSize: 1, Ping: lsPing, PingAfter: 30 * time.Millisecond,
		PingTimeout: 50 * time.Millisecond})
	socketRounds(t, srv, p, 3, 50*time.Millisecond)
	st := p.Stats()
	require.Equal(t, int64(0), st.Retired.PeerClosed, "a silent peer looks alive to a peek")
	require.Equal(t, int64(2), st.Retired.PingFailed)
}

func TestPoolRidesOutARestart(t *testing.T) {
	srv := lsStart(t)
	// The Dialer retries refused connects for up to a second.
	p := poolFor(t, srv, PoolConfig{MaxSize: 2, Dialer: &Dialer{RefusedRetry: time.Second}})
	poolWarm(t, p, 2)
	srv.down()
	time.Sleep(20 * time.Millisecond) // idle beyond PeekAfter; closer than that, only Do's retry rule helps
	up := time.AfterFunc(200*time.Millisecond, srv.up)
	defer up.Stop()
	calls := 0
	require.NoError(t, p.Do(context.Background(), false, lsIncr("order", &calls)))
	require.Equal(t, 1, calls, "a dead idle conn is caught before use, then the dial waits out the refusal")
	require.Equal(t, 1, srv.count("order"))
	require.Equal(t, int64(2), p.Stats().Retired.PeerClosed)
}

func TestUpkeepRefillsMinIdleWithBackoff(t *testing.T) {
	srv := lsStart(t)
	p := poolFor(t, srv, PoolConfig{MaxSize: 4, MinIdle: 2, UpkeepInterval: 5 * time.Millisecond})
	require.Eventually(t, func() bool { return p.Stats().IdleConns == 2 }, 2*time.Second, time.Millisecond)

	srv.down()
	time.Sleep(300 * time.Millisecond) // about 60 rounds
	st := p.Stats()
	require.Equal(t, int32(0), st.IdleConns, "upkeep closed the dead conns")
	require.Greater(t, st.DialErrors, int64(0))
	require.Less(t, st.DialErrors, int64(12), "refused dials back off: %d in %d rounds", st.DialErrors, st.UpkeepRounds)

	srv.up()
	require.Eventually(t, func() bool { return p.Stats().IdleConns == 2 }, 3*time.Second, time.Millisecond)
}

func TestUpkeepClosesExpiredAndPingsIdle(t *testing.T) {
	srv := lsStart(t)
	p := poolFor(t, srv, PoolConfig{MaxSize: 3, IdleTimeout: 40 * time.Millisecond, UpkeepInterval: 5 * time.Millisecond})
	poolWarm(t, p, 3)
	require.Eventually(t, func() bool { return p.Stats().TotalConns == 0 }, 2*time.Second, time.Millisecond)
	require.Equal(t, int64(3), p.Stats().Retired.IdleLimit)

	kept := poolFor(t, srv, PoolConfig{MaxSize: 2, IdleTimeout: 40 * time.Millisecond, Ping: lsPing,
		KeepAliveInterval: 10 * time.Millisecond, UpkeepInterval: 5 * time.Millisecond})
	poolWarm(t, kept, 2)
	time.Sleep(120 * time.Millisecond)
	st := kept.Stats()
	require.Equal(t, int32(2), st.TotalConns, "keepalive pings keep idle conns open (idle, or held by upkeep)")
	require.Equal(t, int64(0), st.Retired.IdleLimit)
	require.Equal(t, int64(0), st.Retired.PingFailed)
	require.GreaterOrEqual(t, srv.pingCount(), 4)
}

// A middlebox that forgets idle flows tells no one: a peek sees nothing.
// Keepalive pings below its timeout keep the flows; without them, only an
// idempotent request survives.
func TestPoolBehindAMiddleboxThatForgetsFlows(t *testing.T) {
	srv := lsStart(t)
	px, err := faultproxy.Start(faultproxy.Config{Upstream: srv.addr, IdleTimeout: 60 * time.Millisecond})
	require.NoError(t, err)
	t.Cleanup(func() { px.Close() })

	bare := poolFor(t, srv, PoolConfig{Addr: px.Addr(), MaxSize: 1})
	doReused(t, bare)
	time.Sleep(100 * time.Millisecond)
	calls := 0
	require.Error(t, bare.Do(context.Background(), false, lsIncr("order", &calls)), "non-idempotent: surfaced")
	require.Equal(t, 0, srv.count("order"), "the middlebox forwarded nothing")
	require.NoError(t, bare.Do(context.Background(), false, lsExpect("ECHO warm", "warm")))
	time.Sleep(100 * time.Millisecond)
	require.NoError(t, bare.Do(context.Background(), true, lsIncr("get", &calls)), "idempotent: retried")
	st := bare.Stats()
	require.Equal(t, int64(1), st.Surfaced)
	require.Equal(t, int64(1), st.Retried)

	kept := poolFor(t, srv, PoolConfig{Addr: px.Addr(), MaxSize: 1, Ping: lsPing,
		KeepAliveInterval: 20 * time.Millisecond, UpkeepInterval: 5 * time.Millisecond})
	doReused(t, kept)
	time.Sleep(150 * time.Millisecond)
	require.NoError(t, kept.Do(context.Background(), false, lsIncr("kept", &calls)))
	require.Equal(t, 1, srv.count("kept"))
	require.Equal(t, int64(0), kept.Stats().StaleHitInUse())
}
