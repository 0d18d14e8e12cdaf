package rstpgx

import (
	"context"
	"net"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/rstpool/rstpool"
	"github.com/stretchr/testify/require"
)

// failing returns a function that fails with errs in turn, then succeeds,
// and counts its calls.
func failing(calls *int, errs ...error) func(context.Context) error {
	return func(context.Context) error {
		*calls++
		if *calls <= len(errs) {
			return errs[*calls-1]
		}
		return nil
	}
}

// resetErr is a real reset: a loopback peer closes with SO_LINGER 0.
func resetErr(t *testing.T) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	defer c.Close()
	s, err := ln.Accept()
	require.NoError(t, err)
	require.NoError(t, s.(*net.TCPConn).SetLinger(0))
	s.Close()
	_, err = c.Read(make([]byte, 1))
	require.ErrorIs(t, err, syscall.ECONNRESET)
	return err
}

func TestRetry(t *testing.T) {
	reset := resetErr(t)
	shutdown := &pgconn.PgError{Severity: "FATAL", Code: "57P01"}
	syntax := &pgconn.PgError{Severity: "ERROR", Code: "42601"}
	unsent := &rstpool.ConnError{Op: "validate", Class: rstpool.ClassPeerClosed, Err: rstpool.ErrPeerClosed}
	ctx := context.Background()
	for _, tc := range []struct {
		name       string
		idempotent bool
		err        error
		calls      int
	}{
		{"idempotent reset", true, reset, 2},
		{"idempotent 57P01", true, shutdown, 2},
		{"write 57P01 may have run", false, shutdown, 1},
		{"write reset may have run", false, reset, 1},
		{"write never sent by one step, work unseen", false, unsent, 1},
		{"server answered", true, syntax, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			calls := 0
			err := Retry(ctx, tc.idempotent, failing(&calls, tc.err))
			require.Equal(t, tc.calls, calls)
			if tc.calls == 2 {
				require.NoError(t, err)
			} else {
				require.ErrorIs(t, err, tc.err)
			}
		})
	}
}

func TestRetryOnceOnly(t *testing.T) {
	shutdown := &pgconn.PgError{Severity: "FATAL", Code: "57P01"}
	calls := 0
	err := Retry(context.Background(), true, failing(&calls, shutdown, shutdown, shutdown))
	require.Equal(t, 2, calls)
	require.ErrorIs(t, err, shutdown)
}

func TestRetryNotAfterCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	calls := 0
	err := Retry(ctx, true, failing(&calls, resetErr(t)))
	require.Equal(t, 1, calls)
	require.Error(t, err)
}
