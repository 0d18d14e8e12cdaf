package rstpool

import (
	"context"
	"errors"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// lsIncr returns a Do function for "INCR key" that counts its calls.
func lsIncr(key string, calls *int) func(net.Conn) error {
	return func(c net.Conn) error {
		*calls++
		_, err := lsCall(c, "INCR "+key)
		return err
	}
}

// doReused makes the pool's one connection reused, then arms the server.
func doReused(t *testing.T, p *Pool) {
	t.Helper()
	require.NoError(t, p.Do(context.Background(), false, lsExpect("ECHO warm", "warm")))
}

func TestDoNeverRepeatsNonIdempotentWorkThatReachedThePeer(t *testing.T) {
	srv := lsStart(t)
	p := poolFor(t, srv, PoolConfig{MaxSize: 1})
	doReused(t, p)
	srv.killNext.Store(1) // the server counts the request, then resets
	calls := 0
	err := p.Do(context.Background(), false, lsIncr("order", &calls))
	require.ErrorIs(t, err, syscall.ECONNRESET)
	require.Equal(t, 1, calls)
	require.Equal(t, 1, srv.count("order"), "ran once on the server")
	st := p.Stats()
	require.Equal(t, int64(0), st.Retried)
	require.Equal(t, int64(1), st.Surfaced)
}

func TestDoRetriesIdempotentWorkOnceOnAFreshConn(t *testing.T) {
	srv := lsStart(t)
	p := poolFor(t, srv, PoolConfig{MaxSize: 1})
	doReused(t, p)
	srv.killNext.Store(1)
	calls := 0
	require.NoError(t, p.Do(context.Background(), true, lsIncr("get", &calls)))
	require.Equal(t, 2, calls)
	require.Equal(t, 2, srv.acceptCount(), "the retry dialed a fresh connection")
	require.Equal(t, int64(1), p.Stats().Retried)
}

func TestDoRetriesAtMostOnce(t *testing.T) {
	srv := lsStart(t)
	p := poolFor(t, srv, PoolConfig{MaxSize: 2})
	doReused(t, p)
	srv.killNext.Store(5)
	calls := 0
	err := p.Do(context.Background(), true, lsIncr("get", &calls))
	require.ErrorIs(t, err, syscall.ECONNRESET)
	require.Equal(t, 2, calls, "one attempt, one retry: its Dialer retries no refused connect, so no reset on arrival either")
	require.Equal(t, 2, srv.count("get"))
}

// A fresh connection reset before any answer: idempotent work runs again
// (a blip on the path), after a pause each time its new connection is
// reset on arrival too, for as long as its Dialer retries a refused
// connect (a blip may last as long as a restart: toxiproxy's reset_peer
// asked for 128 ms reset flows for 650 ms), and no longer.
func TestDoRetriesAFreshConnResetOnArrivalWithinRefusedRetry(t *testing.T) {
	srv := lsStart(t)
	const budget = 600 * time.Millisecond
	p := poolFor(t, srv, PoolConfig{MaxSize: 1, Dialer: &Dialer{RefusedRetry: budget}})
	srv.killNext.Store(3) // a blip longer than two pauses
	calls := 0
	require.NoError(t, p.Do(context.Background(), true, lsIncr("get", &calls)))
	require.Equal(t, 4, calls)
	require.Equal(t, int64(3), p.Stats().Retried)

	srv.killNext.Store(1000) // a proxy with no upstream: every request reset
	calls = 0
	start := time.Now()
	require.ErrorIs(t, p.Do(context.Background(), true, lsIncr("get", &calls)), syscall.ECONNRESET)
	took := time.Since(start)
	require.GreaterOrEqual(t, took, budget, "retried for the Dialer's RefusedRetry")
	require.Less(t, took, budget+time.Second, "and then surfaced")
	require.LessOrEqual(t, calls, 2+int(budget/(retryPause.Base*6/10)), "one run per pause")
	srv.killNext.Store(0)
}

func TestDoRetriesNonIdempotentWorkThatNeverLeft(t *testing.T) {
	srv := lsStart(t)
	srv.reapAfter.Store(int64(20 * time.Millisecond)) // the server reaps idle conns with a FIN
	// The pool does not peek: the tracked conn's own check before the
	// write catches the FIN, and nothing leaves.
	p := poolFor(t, srv, PoolConfig{MaxSize: 1, PeekAfter: -1})
	doReused(t, p)
	time.Sleep(60 * time.Millisecond)
	calls := 0
	require.NoError(t, p.Do(context.Background(), false, lsIncr("order", &calls)))
	require.Equal(t, 2, calls)
	require.Equal(t, 1, srv.count("order"), "the first attempt never reached the server")
	require.Equal(t, int64(1), p.Stats().Retried)
}

// Do hands a connection back by what fn did with it: an error of fn's own
// before any I/O leaves the stream in step (released, not retried); an
// error after I/O or a panic may not (destroyed).
func TestDoDestroysOnErrorAfterIOAndPanic(t *testing.T) {
	srv := lsStart(t)
	p := poolFor(t, srv, PoolConfig{MaxSize: 1})
	appErr := errors.New("bad request")
	calls := 0
	require.ErrorIs(t, p.Do(context.Background(), true, func(net.Conn) error { calls++; return appErr }), appErr)
	require.Equal(t, 1, calls, "an application error is never retried")
	require.NoError(t, p.Do(context.Background(), true, lsExpect("ECHO x", "x")))
	require.Equal(t, 1, srv.acceptCount(), "an error before any I/O keeps the connection")

	protoErr := errors.New("protocol error")
	require.ErrorIs(t, p.Do(context.Background(), true, func(c net.Conn) error {
		calls++
		_, _ = lsCall(c, "ECHO y")
		return protoErr
	}), protoErr)
	require.Equal(t, 2, calls)
	require.Panics(t, func() { _ = p.Do(context.Background(), true, func(net.Conn) error { panic("boom") }) })
	require.NoError(t, p.Do(context.Background(), true, lsExpect("ECHO x", "x")))
	require.Eventually(t, func() bool { return srv.acceptCount() == 3 }, time.Second, time.Millisecond,
		"each connection that failed after I/O or panicked was closed, not reused")
	require.Equal(t, int64(0), p.Stats().Retried)
}

// A paid retry that never reached the server (no connection came for it:
// the destination was down for the Dialer) gives its token back, so an
// outage longer than RefusedRetry does not leave the budget empty for the
// failures after it.
func TestDoRetryThatNeverReachedTheServerGivesItsTokenBack(t *testing.T) {
	srv := lsStart(t)
	forgetDestination(t, srv.addr)
	p := poolFor(t, srv, PoolConfig{MaxSize: 1, Dialer: &Dialer{RefusedRetry: 50 * time.Millisecond},
		RetryBudget: RetryBudget{Burst: 2}})
	for range 2 {
		doReused(t, p)
		err := p.Do(context.Background(), true, func(c net.Conn) error {
			srv.down() // the server dies under the exchange, and stays down
			_, err := lsCall(c, "ECHO x")
			return err
		})
		require.ErrorIs(t, err, syscall.ECONNREFUSED, "the retry found the destination down")
		srv.up()
		destinations.drop(destKey{"tcp", srv.addr}) // this test is about the budget, not the down memory
	}
	time.Sleep(budgetWait + 100*time.Millisecond) // no waiting for a token now
	doReused(t, p)
	srv.killNext.Store(1) // a reused connection reset mid-exchange: a paid retry
	calls := 0
	require.NoError(t, p.Do(context.Background(), true, lsIncr("get", &calls)))
	require.Equal(t, 2, calls)
	st := p.Stats()
	t.Log(st)
	require.Zero(t, st.Denied, "the two retries that never reached the server spent nothing")
}
