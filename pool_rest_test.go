package rstpool

import (
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
