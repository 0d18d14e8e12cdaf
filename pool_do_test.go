package rstpool

import (
	"context"
	"errors"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestShouldRetryRule(t *testing.T) {
	reset := &ConnError{Op: "read", Class: ClassReset, Written: 9, Err: syscall.ECONNRESET}
	live, dead := context.Background(), canceledCtx()
	cases := []struct {
		name                      string
		ctx                       context.Context
		reused, idempotent, wrote bool
		err                       error
		want                      bool
	}{
		{"nothing written on a reused conn", live, true, false, false, reset, true},
		{"idempotent reset after writing", live, true, true, true, reset, true},
		{"idempotent peer close", live, true, true, true, io.EOF, true},
		{"idempotent broken pipe", live, true, true, true, syscall.EPIPE, true},
		{"non-idempotent after writing", live, true, false, true, reset, false},
		{"fresh connection", live, false, true, false, reset, false},
		{"idempotent timeout", live, true, true, true, context.DeadlineExceeded, false},
		{"idempotent application error", live, true, true, true, errors.New("bad reply"), false},
		{"caller gave up", dead, true, true, false, reset, false},
	}
	for _, c := range cases {
		require.Equal(t, c.want, shouldRetry(c.ctx, c.reused, c.idempotent, c.wrote, c.err), c.name)
	}
}

func canceledCtx() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}

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
	st := p.Stat()
	require.Equal(t, int64(0), st.ResetRetried())
	require.Equal(t, int64(1), st.ResetSurfaced())
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
	require.Equal(t, int64(1), p.Stat().ResetRetried())
}

func TestDoRetriesAtMostOnce(t *testing.T) {
	srv := lsStart(t)
	p := poolFor(t, srv, PoolConfig{MaxSize: 2})
	doReused(t, p)
	srv.killNext.Store(5)
	calls := 0
	err := p.Do(context.Background(), true, lsIncr("get", &calls))
	require.ErrorIs(t, err, syscall.ECONNRESET)
	require.Equal(t, 2, calls, "one attempt and one retry, never a third")
	require.Equal(t, 2, srv.count("get"))
}

func TestDoNeverRetriesAFreshConn(t *testing.T) {
	srv := lsStart(t)
	p := poolFor(t, srv, PoolConfig{MaxSize: 1})
	srv.killNext.Store(1)
	calls := 0
	err := p.Do(context.Background(), true, lsIncr("get", &calls))
	require.ErrorIs(t, err, syscall.ECONNRESET)
	require.Equal(t, 1, calls)
	st := p.Stat()
	require.Equal(t, int64(0), st.ResetRetried())
	require.Equal(t, int64(0), st.ResetSurfaced(), "a fresh connection's reset is not a stale one")
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
	require.Equal(t, int64(1), p.Stat().ResetRetried())
}

func TestDoDestroysOnErrorAndPanic(t *testing.T) {
	srv := lsStart(t)
	p := poolFor(t, srv, PoolConfig{MaxSize: 1})
	appErr := errors.New("protocol error")
	require.ErrorIs(t, p.Do(context.Background(), true, func(net.Conn) error { return appErr }), appErr)
	require.Panics(t, func() { _ = p.Do(context.Background(), true, func(net.Conn) error { panic("boom") }) })
	require.NoError(t, p.Do(context.Background(), true, lsExpect("ECHO x", "x")))
	require.Eventually(t, func() bool { return srv.acceptCount() == 3 }, time.Second, time.Millisecond,
		"each failed connection was closed, not reused")
	require.Equal(t, int64(0), p.Stat().ResetRetried(), "an application error on a fresh conn is not retried")
}
