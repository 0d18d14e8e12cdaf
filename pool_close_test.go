package rstpool

import (
	"context"
	"os"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
	"weak"

	"github.com/stretchr/testify/require"
)

func fdCount(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd on this system: %v", err)
	}
	return len(ents)
}

func TestPoolCloseReleasesGoroutinesAndFDs(t *testing.T) {
	srv := lsStart(t)
	fds, gs := fdCount(t), runtime.NumGoroutine()

	p, err := NewPool(PoolConfig{Addr: srv.addr, Dialer: noRetry(), MaxSize: 4, MinIdle: 2, Ping: lsPing,
		KeepAliveInterval: 10 * time.Millisecond, UpkeepInterval: 5 * time.Millisecond})
	require.NoError(t, err)
	require.Eventually(t, func() bool { return p.Stats().IdleConns == 2 }, 2*time.Second, time.Millisecond)
	poolWarm(t, p, 4)
	held, err := p.Acquire(context.Background())
	require.NoError(t, err)
	kept, err := p.Acquire(context.Background())
	require.NoError(t, err)
	require.Greater(t, fdCount(t), fds)

	time.AfterFunc(20*time.Millisecond, kept.Release) // returned in time
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	err = p.Close(ctx) // held is never returned: Close revokes it
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Equal(t, int64(1), p.Stats().Revoked)
	held.Release() // a no-op after revocation, not a panic
	_, err = p.Acquire(context.Background())
	require.ErrorIs(t, err, ErrPoolClosed)
	require.ErrorIs(t, p.Close(context.Background()), context.DeadlineExceeded, "a second Close returns the first's result")

	srv.stop() // the server's own goroutines and fds
	require.Eventually(t, func() bool { return fdCount(t) <= fds && runtime.NumGoroutine() <= gs },
		2*time.Second, 5*time.Millisecond, "fds %d→%d, goroutines %d→%d", fds, fdCount(t), gs, runtime.NumGoroutine())
	require.Equal(t, int32(0), p.Stats().TotalConns)
}

func TestPoolCloseWaitsForReturns(t *testing.T) {
	srv := lsStart(t)
	p, err := NewPool(PoolConfig{Addr: srv.addr, Dialer: noRetry(), MaxSize: 2})
	require.NoError(t, err)
	h, err := p.Acquire(context.Background())
	require.NoError(t, err)
	var returned atomic.Bool
	time.AfterFunc(30*time.Millisecond, func() { returned.Store(true); h.Release() })
	require.NoError(t, p.Close(context.Background()))
	require.True(t, returned.Load(), "Close returned before the connection in use came back")
	require.Equal(t, int64(0), p.Stats().Revoked)
}

// Row 9: a pool that was closed and dropped is garbage, however upkeep
// visited it: the process's upkeep queue keeps no pointer to it (it kept
// the last pool it took off in its backing array).
func TestClosedPoolIsFreed(t *testing.T) {
	srv := lsStart(t)
	var closed []weak.Pointer[Pool]
	for range 3 {
		p, err := NewPool(PoolConfig{Addr: srv.addr, Dialer: noRetry(), MaxSize: 2, UpkeepInterval: 5 * time.Millisecond})
		require.NoError(t, err)
		poolWarm(t, p, 2)
		time.Sleep(20 * time.Millisecond) // upkeep visits it a few times
		require.NoError(t, p.Close(context.Background()))
		closed = append(closed, weak.Make(p))
	}
	runtime.GC()
	for i, w := range closed {
		require.Nil(t, w.Value(), "closed pool %d is still reachable", i)
	}
}
