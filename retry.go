package rstpool

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/http"
	"time"
)

// A RetryReason says why a Transport sent a request a second time.
type RetryReason uint8

// The reasons a Transport retries, in the order the decision tests them.
const (
	// RetryNone: the request was not retried.
	RetryNone RetryReason = iota
	// RetryNothingWritten: a reused connection (one that served a request
	// or waited in the idle pool) failed before a byte of the request
	// left, so the server cannot have seen it.
	RetryNothingWritten
	// RetryIdempotent: the request may have reached the server, but its
	// method (RetryMethods) or an Idempotency-Key header makes a repeat
	// harmless.
	RetryIdempotent

	numRetryReasons
)

var retryReasonNames = [...]string{"none", "nothing-written", "idempotent"}

// String names the reason.
func (r RetryReason) String() string {
	if int(r) < len(retryReasonNames) {
		return retryReasonNames[r]
	}
	return "unknown"
}

// retryReason decides whether a request whose attempt a failed with err may
// be sent once more, on a new connection, and why. Refused dials are not
// its business: the Dialer already retried them within RefusedRetry.
func (t *Transport) retryReason(r *http.Request, a *attempt, err error) RetryReason {
	switch {
	case a.conns == 0 || isDialError(err):
		return RetryNone // no connection to blame; the Dialer retried refusals
	case r.Context().Err() != nil:
		return RetryNone // the caller gave up
	case !replayable(r):
		return RetryNone // the body cannot be sent again
	case !a.reused():
		return RetryNone // a fresh connection failed: the server refuses this request
	case a.wroteNothing():
		return RetryNothingWritten // the request never left
	case t.idempotent(r):
		return RetryIdempotent // a repeat has the effect of one (RFC 9110, 9.2.2)
	}
	return RetryNone // conservatively
}

func isDialError(err error) bool {
	var ce *ConnError
	return errors.As(err, &ce) && ce.Op == "dial"
}

// idempotent reports whether r's method is one of RetryMethods or r carries
// an Idempotency-Key (or X-Idempotency-Key) header.
func (t *Transport) idempotent(r *http.Request) bool {
	if _, ok := r.Header["Idempotency-Key"]; ok {
		return true
	}
	if _, ok := r.Header["X-Idempotency-Key"]; ok {
		return true
	}
	methods := t.RetryMethods
	if methods == nil {
		methods = DefaultRetryMethods
	}
	m := r.Method
	if m == "" {
		m = http.MethodGet
	}
	for _, x := range methods {
		if x == m {
			return true
		}
	}
	return false
}

// RetryBackoff is the longest pause before Retry runs work a second time;
// the pause is jittered between half of it and all of it, so that callers a
// restart failed together do not come back together.
const RetryBackoff = 50 * time.Millisecond

// Retry runs fn and, when it failed because of its connection, runs it once
// more after a short jittered pause, for clients that do not retry
// themselves: database/sql with an in-flight query the server ended
// (PostgreSQL's 57P01 at a restart, MySQL's invalid connection), go-redis
// with MaxRetries off, a protocol of your own. It retries only when the
// failure's class is reset, broken-pipe, peer-closed or refused, and
// repeating cannot run a write twice: idempotent is true, or the error
// proves nothing left (a *ConnError with nothing written, or a driver error
// whose SafeToRetry method says so). It never retries once ctx is done, and
// never more than once: the second attempt's error is returned as is.
func Retry(ctx context.Context, idempotent bool, fn func(context.Context) error) error {
	err := fn(ctx)
	if !retryWork(ctx, idempotent, err) {
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

// retryWork is Retry's decision, in the order it reads.
func retryWork(ctx context.Context, idempotent bool, err error) bool {
	switch {
	case err == nil:
		return false
	case ctx.Err() != nil:
		return false // the caller gave up
	case !connectionFailure(Classify(err)):
		return false // the server answered: a repeat gets the same answer
	case idempotent:
		return true // a repeat has the effect of one
	case nothingSent(err):
		return true // the server never saw it
	}
	return false // conservatively
}

func connectionFailure(c Class) bool {
	switch c {
	case ClassReset, ClassBrokenPipe, ClassPeerClosed, ClassRefused:
		return true
	}
	return false
}

// nothingSent reports whether err proves the work never left: a tracked
// connection that wrote nothing, or a driver's own mark (pgconn errors have
// SafeToRetry).
func nothingSent(err error) bool {
	var ce *ConnError
	var safe interface{ SafeToRetry() bool }
	return (errors.As(err, &ce) && ce.NothingWritten()) || (errors.As(err, &safe) && safe.SafeToRetry())
}
