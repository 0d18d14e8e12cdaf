package rstpool

import (
	"errors"
	"net/http"
)

// A RetryReason says why a Transport sent a request a second time.
type RetryReason uint8

// The reasons a Transport retries, in the order the decision tests them.
const (
	// RetryNone: the request was not retried.
	RetryNone RetryReason = iota
	// RetryNothingWritten: the reused connection failed before a byte of
	// the request left, so the server cannot have seen it.
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
