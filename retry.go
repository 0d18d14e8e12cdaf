package rstpool

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	"github.com/rstpool/rstpool/internal/rule"
)

// A RetryReason says why rstpool ran work a second time.
type RetryReason uint8

// The reasons for a retry, in the order the rule tests them.
const (
	// RetryNone: the work was not retried.
	RetryNone = RetryReason(rule.None)
	// RetryNothingWritten: the connection failed before a byte of the work
	// left, so the server cannot have seen it.
	RetryNothingWritten = RetryReason(rule.NothingWritten)
	// RetryIdempotent: the work may have reached the server, but nothing of
	// its answer had arrived and a repeat is harmless: an idempotent HTTP
	// method (RFC 9110, 9.2.2), an Idempotency-Key header, or work its
	// caller declared idempotent.
	RetryIdempotent = RetryReason(rule.Idempotent)

	numRetryReasons = RetryIdempotent + 1
)

var retryReasonNames = [...]string{"none", "nothing-written", "idempotent"}

// String names the reason.
func (r RetryReason) String() string {
	if int(r) < len(retryReasonNames) {
		return retryReasonNames[r]
	}
	return "unknown"
}

// connFailure reports whether err is a failure of the connection under the
// work, as the retry rule means it: a reset, a broken pipe, an end of
// stream, a refused connect, or a retirement by the client before the work
// left. A timeout is not: the server may still be working on it.
func connFailure(err error) bool {
	switch Classify(err) {
	case ClassReset, ClassBrokenPipe, ClassPeerClosed, ClassRefused:
		return true
	}
	return errors.Is(err, ErrIdleLimit) || errors.Is(err, ErrMaxLifetime)
}

// RetryBackoff is the longest pause before work runs a second time after a
// failure that was not a stale connection's: the connection was fresh, or
// failed in the middle of an exchange, so the path or the server failed
// rather than an idle connection. The pause is jittered between half of it
// and all of it, so that a blip of the path (a proxy reload, a flapping
// link, about 100 ms) has passed, and callers a restart failed together do
// not come back together. A reused connection found dead after sitting
// idle at least DefaultLearnFloor is retried at once: a hop reaped it, and
// the next connection is fine.
const RetryBackoff = 200 * time.Millisecond

// stale reports whether err is a reused connection that died while idle
// for at least DefaultLearnFloor, the way hops reap idle connections: a
// retry on another connection may go at once. A shorter quiet spell says
// nothing of the path (a blip kills busy connections too).
func stale(err error) bool {
	var ce *ConnError
	return errors.As(err, &ce) && ce.Reused && ce.Cause() == CauseIdleReaped && ce.Idle >= DefaultLearnFloor
}

// pauseUnlessStale waits before a retry unless first was a stale
// connection's; it reports false when ctx ended first.
func pauseUnlessStale(ctx context.Context, first error) bool {
	return stale(first) || pause(ctx, RetryBackoff)
}

// Retry runs fn and, when it failed because of its connection, runs it once
// more (after a jittered pause of up to RetryBackoff, none after a stale
// connection), for clients that do not retry
// themselves: database/sql with an in-flight query the server ended
// (PostgreSQL's 57P01 at a restart, MySQL's invalid connection), pgxpool,
// a protocol of your own on a Pool.
//
// The rule is the one every rstpool consumer applies: a connection
// failure only (reset, broken-pipe, peer-closed, refused; never an error
// of the server or the application, never a timeout), at most once, never
// once ctx is done, and only when the work is idempotent or provably
// nothing of it left. Retry proves the latter by counting, under the
// context it passes to fn, the bytes written on every connection that an
// rstpool consumer hands out (Transport, Pool, WrapConnector, rstpgx): fn
// may take several steps on several connections. With a client that is
// not one of those (go-redis, a bare Conn), Retry cannot see every
// connection, and retries only idempotent work. Retries draw from one
// RetryBudget for the whole process, with its defaults. The second
// attempt's error is returned as is.
func Retry(ctx context.Context, idempotent bool, fn func(context.Context) error) error {
	retryBudget.deposit()
	wctx, w := withWork(ctx)
	err := fn(wctx)
	if err == nil {
		return nil
	}
	reason := rule.Retry(rule.Failure{
		CallerDone:  ctx.Err() != nil,
		ConnFailure: connFailure(err),
		Replayable:  true,
		NothingLeft: w.nothingLeft(),
		Idempotent:  idempotent,
	})
	if reason == rule.None || !retryBudget.withdraw() {
		return err
	}
	if !pauseUnlessStale(ctx, err) {
		return err
	}
	if err = fn(ctx); err == nil {
		retryBudget.refund()
	}
	return err
}

// retryBudget bounds the retries of Retry, over the whole process, with
// the RetryBudget defaults.
var retryBudget budget

// pause waits between half of max and max, jittered, or until ctx is done;
// it reports whether it waited the whole pause.
func pause(ctx context.Context, max time.Duration) bool {
	return sleepCtx(ctx, max/2+rand.N(max/2+1))
}
