package rstpgx

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/rstpool/rstpool"
)

// RetryBackoff is the pause before Retry runs the work a second time; the
// actual pause is jittered between half of it and all of it, so that the
// callers a restart failed at once do not come back at once.
const RetryBackoff = 50 * time.Millisecond

// Retry runs fn, and runs it once more, after a jittered pause of at most
// RetryBackoff, when it failed because of the connection (rstpool.Classify:
// reset, broken-pipe, peer-closed or refused, which includes PostgreSQL's
// SQLSTATE class 08, 57P01, 57P02 and 57P03) and repeating it cannot run a
// write twice: idempotent is true, or the error proves nothing reached the
// server (pgconn.SafeToRetry, an *rstpool.ConnError with nothing written,
// or a failed connect). It never retries when ctx is done, and never more
// than once: the second attempt's error is returned as is.
//
// pgxpool never retries a failed query; with Configure, a pool acquires
// a checked connection, and a connect waits out a restart, so one retry is
// enough for work that failed on a connection the server closed under it.
func Retry(ctx context.Context, idempotent bool, fn func(context.Context) error) error {
	err := fn(ctx)
	if !shouldRetry(ctx, idempotent, err) {
		return err
	}
	pause := time.NewTimer(RetryBackoff/2 + rand.N(RetryBackoff/2+1))
	defer pause.Stop()
	select {
	case <-ctx.Done():
		return err
	case <-pause.C:
	}
	return fn(ctx)
}

// shouldRetry is Retry's decision, in the order it reads.
func shouldRetry(ctx context.Context, idempotent bool, err error) bool {
	switch {
	case err == nil:
		return false
	case ctx.Err() != nil:
		return false // the caller gave up
	case !connectionClass(rstpool.Classify(err)):
		return false // the server answered: a repeat gets the same answer
	case idempotent:
		return true // a repeat has the effect of one
	case nothingSent(err):
		return true // the server never saw it
	}
	return false // conservatively
}

func connectionClass(c rstpool.Class) bool {
	switch c {
	case rstpool.ClassReset, rstpool.ClassBrokenPipe, rstpool.ClassPeerClosed, rstpool.ClassRefused:
		return true
	}
	return false
}

// nothingSent reports whether err proves the statement never left: pgx's
// own mark, a tracked conn that wrote nothing, or a connect that failed
// (pgxpool reports a failed Acquire with the *pgconn.ConnectError).
func nothingSent(err error) bool {
	var ce *rstpool.ConnError
	var connect *pgconn.ConnectError
	return pgconn.SafeToRetry(err) ||
		(errors.As(err, &ce) && ce.NothingWritten()) ||
		errors.As(err, &connect)
}
