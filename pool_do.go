package rstpool

import (
	"context"
	"fmt"
	"net"

	"github.com/rstpool/rstpool/internal/rule"
)

// Do runs fn on a pooled connection and hands the connection back:
// released when fn returns nil, or when it returns an error without having
// read or written a byte (an application error before any I/O leaves the
// stream in step); destroyed when fn failed after I/O (the stream may be
// out of step) or panicked. Report a protocol-level answer that leaves the
// stream clean (a "not found") some other way than through fn's error.
//
// When fn failed because of its connection (a reset, a broken pipe, an end
// of stream), Do runs it once more on a connection never handed out before
// if nothing of the failed attempt left the client, or if the work is
// idempotent: the retry rule every rstpool consumer applies (see Retry).
// Nothing is known to have been sent only on a tracked connection (one a
// Dialer dialed, under TLS or not): on another, only idempotent work is
// retried. Do never retries an error of fn's own, never more than once, and
// not once ctx is done; the retry's error, if it fails too, is returned.
func (p *Pool) Do(ctx context.Context, idempotent bool, fn func(net.Conn) error) error {
	p.budget.deposit()
	h, err := p.Acquire(ctx)
	if err != nil {
		return err
	}
	reused := h.Reused()
	f, err := h.run(fn)
	if err == nil {
		return nil
	}
	f.CallerDone, f.Idempotent = ctx.Err() != nil, idempotent
	reason := rule.Retry(f)
	if reason != rule.None && !p.budget.withdraw() {
		p.stats.denied.Add(1)
		p.report(EventRetryDenied, RetryReason(reason).String(), err)
		reason = rule.None
	}
	if reason == rule.None {
		p.surface(reused, err)
		return err
	}
	p.stats.retried.Add(1)
	p.report(EventRetry, RetryReason(reason).String(), err)
	if !pauseUnlessStale(ctx, err) {
		return err
	}
	if h, err = p.acquireFresh(ctx); err != nil {
		return fmt.Errorf("rstpool: acquiring a connection to retry: %w", err)
	}
	if _, err = h.run(fn); err != nil {
		p.surface(true, err)
		return err
	}
	p.budget.refund()
	return nil
}

// surface counts and reports a connection failure Do returns; an error of
// fn's own is the application's business.
func (p *Pool) surface(reused bool, err error) {
	if !connFailure(err) {
		return
	}
	if reused {
		p.stats.surfaced.Add(1)
	}
	p.report(EventSurfaced, "", err)
}

// report sends an event about err to the observer.
func (p *Pool) report(kind EventKind, reason string, err error) {
	if o := p.s.observer; o != nil {
		e := Event{Kind: kind, Source: "pool", Reason: reason, Class: Classify(err), Err: err}
		e.Cause, e.Addr = causeOf(err)
		if e.Addr == "" {
			e.Addr = p.s.addr
		}
		o(e)
	}
}

// run calls fn on the handle's connection and hands the connection back.
// It returns what the retry rule needs to know of a failure.
func (h PooledConn) run(fn func(net.Conn) error) (rule.Failure, error) {
	tc := h.e.tc
	var w0, r0 int64
	if tc != nil {
		w0, r0 = tc.nwritten.Load(), tc.nread.Load()
	}
	ok := false
	defer func() {
		if !ok {
			h.Destroy()
		}
	}()
	err := fn(h.e.nc)
	quiet := tc != nil && tc.nwritten.Load() == w0 && tc.nread.Load() == r0
	failure := rule.Failure{ConnFailure: connFailure(err), Replayable: true, NothingLeft: quiet}
	if err == nil || (quiet && !failure.ConnFailure) {
		ok = true
		h.Release()
	}
	return failure, err
}
