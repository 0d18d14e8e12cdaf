package rstpool

import (
	"context"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// An idle pool holding its MinIdle connection costs little memory beyond
// the socket (issue 17; integration/rest_linux_test.go measures 10,000):
// no context, Dialer settings or channel of its own, no goroutine.
func TestIdlePoolHeap(t *testing.T) {
	const n = 500
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var mu sync.Mutex
	var held []net.Conn // the server's ends, held without a goroutine
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range held {
			_ = c.Close()
		}
	})
	addr := ln.Addr().String()
	forgetDestination(t, addr)

	heap := func() float64 {
		runtime.GC()
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return float64(ms.HeapInuse)
	}
	// A bare socket, both ends: the cost every client pays.
	h0 := heap()
	raw := make([]net.Conn, n)
	for i := range raw {
		raw[i], err = net.Dial("tcp", addr)
		require.NoError(t, err)
	}
	socket := (heap() - h0) / n
	for _, c := range raw {
		_ = c.Close()
	}
	raw = nil

	h0, g0 := heap(), runtime.NumGoroutine()
	ps := make([]*Pool, n)
	for i := range ps {
		ps[i], err = NewPool(PoolConfig{Addr: addr, MinIdle: 1})
		require.NoError(t, err)
	}
	require.Eventually(t, func() bool {
		for _, p := range ps {
			if p.Stats().IdleConns < 1 {
				return false
			}
		}
		return true
	}, 10*time.Second, 10*time.Millisecond)
	per := (heap() - h0) / n
	goroutines := runtime.NumGoroutine() - g0
	for _, p := range ps {
		require.NoError(t, p.Close(t.Context()))
	}
	t.Logf("an idle pool with its connection: %.0f B of heap, %.0f B beyond a bare socket's %.0f B", per, per-socket, socket)
	require.LessOrEqual(t, per-socket, 3072.0, "heap of an idle pool beyond its socket")
	require.LessOrEqual(t, goroutines, 0, "goroutines of idle pools")
}

// A pool nobody uses rests (issue 17): its MinIdle connection expires at
// the idle limit and is not replaced, where it was redialed every idle
// limit for nobody. Its next Acquire gets a new connection, never the
// expired one, and wakes upkeep, which refills MinIdle at once; a pool in
// use keeps MinIdle refilled. Counts only: a busy machine delays the
// visits, not what they do.
func TestUnusedPoolRestsAndAUsedOneKeepsMinIdle(t *testing.T) {
	const limit = 100 * time.Millisecond // a used pool rests after a stall this long: room for a busy machine
	srv := lsStart(t)
	p := poolFor(t, srv, PoolConfig{MaxSize: 3, MinIdle: 1, IdleTimeout: limit, UpkeepInterval: 5 * time.Millisecond})
	require.Eventually(t, func() bool { return p.Stats().IdleConns == 1 }, 2*time.Second, time.Millisecond, "MinIdle opens at start")

	time.Sleep(10 * limit) // ten idle limits, nobody using the pool
	st := p.Stats()
	t.Logf("unused over %s: %d dials, %d retired at the idle limit", 10*limit, st.Dials, st.Retired.IdleLimit)
	require.LessOrEqual(t, st.Dials, int64(2), "an unused pool redials MinIdle every idle limit: %v", st)
	require.GreaterOrEqual(t, st.Retired.IdleLimit, int64(1), "the idle limit still closes the unused connection: %v", st)
	require.Equal(t, int32(0), st.TotalConns, "%v", st)
	time.Sleep(3 * limit)
	require.Equal(t, st.UpkeepRounds, p.Stats().UpkeepRounds, "a resting pool with nothing open is off upkeep's queue")

	h, err := p.Acquire(context.Background())
	require.NoError(t, err)
	require.False(t, h.Reused(), "a connection past its idle limit is never handed out")
	require.Eventually(t, func() bool { return p.Stats().IdleConns == 1 }, 2*time.Second, time.Millisecond,
		"the first Acquire after rest refills MinIdle at once")
	h2, err := p.Acquire(context.Background())
	require.NoError(t, err)
	require.Eventually(t, func() bool { return p.Stats().IdleConns == 1 }, 2*time.Second, time.Millisecond,
		"a pool in use keeps MinIdle refilled")
	h.Release()
	h2.Release()

	// In use every few milliseconds, well within the idle limit: its
	// connections live on and none is retired for idleness.
	retired := p.Stats().Retired.IdleLimit
	for range 50 {
		require.NoError(t, p.Do(context.Background(), false, lsExpect("ECHO x", "x")))
		time.Sleep(2 * time.Millisecond)
	}
	require.GreaterOrEqual(t, p.Stats().IdleConns, int32(1), "MinIdle kept while the pool is in use")
	require.NoError(t, p.Close(context.Background()))
	require.Equal(t, int32(0), p.Stats().TotalConns)
	t.Logf("in use: %d retired at the idle limit (idle spares), %d dials in all", p.Stats().Retired.IdleLimit-retired, p.Stats().Dials)
}
