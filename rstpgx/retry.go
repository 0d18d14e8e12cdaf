package rstpgx

import (
	"context"

	"github.com/rstpool/rstpool"
)

// RetryBackoff is the longest pause before Retry runs the work a second
// time (rstpool.RetryBackoff).
const RetryBackoff = rstpool.RetryBackoff

// Retry is rstpool.Retry for pgx: it runs fn, and runs it once more after a
// jittered pause of at most RetryBackoff, when it failed because of the
// connection (reset, broken-pipe, peer-closed or refused, which include
// PostgreSQL's SQLSTATE class 08, 57P01, 57P02 and 57P03) and a repeat
// cannot run a write twice: idempotent is true, or provably no byte of fn's
// work left. Retry proves the latter on pools set up with Configure and
// databases opened with OpenDB: every connection they hand out, and every
// connect they start, under the context Retry passes to fn is counted, so
// that work of several statements is never repeated after the first one
// ran. pgconn's SafeToRetry speaks for one statement only, and is not
// enough. Retry never retries when ctx is done, and never more than once.
//
// pgxpool never retries a failed query; with Configure, a pool acquires a
// checked connection, and a connect waits out a restart, so one retry is
// enough for work that failed on a connection the server closed under it.
func Retry(ctx context.Context, idempotent bool, fn func(context.Context) error) error {
	return rstpool.Retry(ctx, idempotent, fn)
}
