package rstpool

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
)

// safeErr stands in for a driver error that marks itself safe to retry
// (pgconn's errors do): it speaks for one operation, not for the work.
type safeErr struct{ error }

func (safeErr) SafeToRetry() bool { return true }
func (e safeErr) Unwrap() error   { return e.error }

// Retry's rule on errors alone: without a consumer that saw the work's
// connections, "nothing written" cannot be proven, so only idempotent work
// runs again.
func TestRetryRuns(t *testing.T) {
	reset := &ConnError{Op: "read", Class: ClassReset, Written: 10, Err: syscall.ECONNRESET}
	unsent := &ConnError{Op: "validate", Class: ClassPeerClosed, Err: ErrPeerClosed}
	answered := fmt.Errorf("query: %w", sqlStateErr("23505"))
	cases := []struct {
		name       string
		idempotent bool
		first      error
		runs       int
	}{
		{"success", false, nil, 1},
		{"reset, idempotent", true, reset, 2},
		{"reset after writing, not idempotent", false, reset, 1},
		{"nothing written by one step, work unseen", false, unsent, 1},
		{"driver says safe for one step", false, safeErr{io.ErrUnexpectedEOF}, 1},
		{"nothing written, idempotent", true, unsent, 2},
		{"the server answered", true, answered, 1},
		{"refused", true, &ConnError{Op: "dial", Class: ClassRefused, Err: syscall.ECONNREFUSED}, 2},
		{"timeout is not retried", true, &ConnError{Op: "read", Class: ClassTimeout, Err: syscall.ETIMEDOUT}, 1},
		// pgx's stdlib returns driver.ErrBadConn bare once database/sql
		// gave up on pooled connections and a new one (soak: "driver: bad
		// connection" in restarts and blips).
		{"database/sql gave up, idempotent", true, driver.ErrBadConn, 2},
		{"database/sql gave up, wrapped", true, fmt.Errorf("query: %w", driver.ErrBadConn), 2},
		{"database/sql gave up, not idempotent, work unseen", false, driver.ErrBadConn, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			runs := 0
			err := Retry(context.Background(), tc.idempotent, func(context.Context) error {
				runs++
				if runs == 1 {
					return tc.first
				}
				return errors.New("second")
			})
			require.Equal(t, tc.runs, runs)
			if tc.runs == 2 {
				require.EqualError(t, err, "second", "the second attempt's error is returned as is")
			} else {
				require.Equal(t, tc.first, err)
			}
		})
	}
}

func TestRetryStopsWhenTheCallerGaveUp(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	runs := 0
	err := Retry(ctx, true, func(context.Context) error {
		runs++
		cancel()
		return &ConnError{Op: "read", Class: ClassReset, Err: syscall.ECONNRESET}
	})
	require.Equal(t, 1, runs)
	require.ErrorIs(t, err, syscall.ECONNRESET)
}

// A real reset on a reused connection: the retry dials a new one.
func TestRetryOnRealReset(t *testing.T) {
	var served atomic.Int32
	ln := listen(t, func(c net.Conn) {
		n := served.Add(1)
		buf := make([]byte, 4)
		if _, err := io.ReadFull(c, buf); err == nil && n == 1 {
			rstClose(c.(*net.TCPConn))
			return
		}
		_, _ = c.Write([]byte("pong"))
		c.Close()
	})
	err := Retry(context.Background(), true, func(ctx context.Context) error {
		c, err := noRetry().DialContext(ctx, "tcp", ln.Addr().String())
		if err != nil {
			return err
		}
		defer c.Close()
		if _, err := c.Write([]byte("ping")); err != nil {
			return err
		}
		_, err = io.ReadFull(c, make([]byte, 4))
		return err
	})
	require.NoError(t, err)
	require.Equal(t, int32(2), served.Load())
}
