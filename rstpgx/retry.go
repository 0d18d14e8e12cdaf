package rstpgx

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/rstpool/rstpool"
)

// RetryBackoff is the longest pause before Retry runs the work a second
// time (rstpool.RetryBackoff).
const RetryBackoff = rstpool.RetryBackoff

// Retry is rstpool.Retry for pgx: it runs fn, and runs it once more after a
// jittered pause of at most RetryBackoff, when it failed because of the
// connection (reset, broken-pipe, peer-closed or refused, which includes
// PostgreSQL's SQLSTATE class 08, 57P01, 57P02 and 57P03) and repeating it
// cannot run a write twice: idempotent is true, or the error proves nothing
// reached the server (pgconn.SafeToRetry, an *rstpool.ConnError with
// nothing written, or a failed connect: *pgconn.ConnectError). It never
// retries when ctx is done, and never more than once.
//
// pgxpool never retries a failed query; with Configure, a pool acquires
// a checked connection, and a connect waits out a restart, so one retry is
// enough for work that failed on a connection the server closed under it.
func Retry(ctx context.Context, idempotent bool, fn func(context.Context) error) error {
	err := rstpool.Retry(ctx, idempotent, func(ctx context.Context) error {
		return markConnectFailure(fn(ctx))
	})
	var cf connectFailure
	if errors.As(err, &cf) {
		return cf.err
	}
	return err
}

// connectFailure marks a failed connect as safe to retry: pgxpool reports
// a failed Acquire with the *pgconn.ConnectError, and nothing was sent.
type connectFailure struct{ err error }

func (e connectFailure) Error() string     { return e.err.Error() }
func (e connectFailure) Unwrap() error     { return e.err }
func (e connectFailure) SafeToRetry() bool { return true }

func markConnectFailure(err error) error {
	var connect *pgconn.ConnectError
	if errors.As(err, &connect) {
		return connectFailure{err}
	}
	return err
}
