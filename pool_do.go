package rstpool

import (
	"context"
	"errors"
	"fmt"
	"net"
)

// Do runs fn on a pooled connection. When fn returns nil the connection
// goes back to the pool; when it returns an error (or panics) the
// connection is closed, since its stream may be out of step: report a
// protocol-level answer that leaves the stream clean (a "not found") some
// other way than through fn's error.
//
// When fn fails on a reused connection, Do runs it once more on a fresh
// connection if nothing of the failed attempt reached the wire, or if the
// work is idempotent and the failure is a reset, broken pipe or peer close:
// the signature of a connection that died while idle. It never retries
// more than once, never after a failure on a fresh connection, and never
// non-idempotent work that may have reached the peer. The error of the
// retry, if it fails too, is returned.
func (p *Pool) Do(ctx context.Context, idempotent bool, fn func(net.Conn) error) error {
	h, err := p.Acquire(ctx)
	if err != nil {
		return err
	}
	reused := h.Reused()
	wrote, err := h.run(fn)
	if err == nil {
		return nil
	}
	if !shouldRetry(ctx, reused, idempotent, wrote, err) {
		if reused && staleClass(err) {
			p.stats.surfaced.Add(1)
		}
		return err
	}
	p.stats.retried.Add(1)
	if h, err = p.acquireFresh(ctx); err != nil {
		return fmt.Errorf("rstpool: acquiring a connection to retry: %w", err)
	}
	_, err = h.run(fn)
	return err
}

// run calls fn on the handle's connection and hands the connection back:
// released on success, destroyed on an error or a panic. wrote reports
// whether fn may have put bytes on the wire.
func (h PooledConn) run(fn func(net.Conn) error) (wrote bool, err error) {
	var before int64
	if h.e.tc != nil {
		before = h.e.tc.nwritten.Load()
	}
	ok := false
	defer func() {
		if !ok {
			h.Destroy()
		}
	}()
	err = fn(h.e.nc)
	if err == nil {
		ok = true
		h.Release()
		return false, nil
	}
	return mayHaveWritten(h.e.tc, before, err), err
}

// mayHaveWritten reports whether a failed fn may have put bytes on the
// wire. A tracked connection counts the bytes fn wrote in all its
// exchanges; otherwise only a *ConnError saying that the failed exchange
// wrote nothing rules it out.
func mayHaveWritten(tc *Conn, before int64, err error) bool {
	if tc != nil {
		return tc.nwritten.Load() != before
	}
	var ce *ConnError
	return !errors.As(err, &ce) || !ce.NothingWritten()
}

// shouldRetry is the retry rule of Do.
func shouldRetry(ctx context.Context, reused, idempotent, wrote bool, err error) bool {
	switch {
	case ctx.Err() != nil:
		return false // the caller gave up
	case !reused:
		return false // a fresh connection did not die while idle in the pool
	case !wrote:
		return true // the request never left: repeating it cannot duplicate it
	case !idempotent:
		return false // it may have reached the peer
	}
	return staleClass(err) // conservatively: only the failures of a connection that died idle
}

// staleClass reports whether err is how a connection that died while idle
// fails on reuse.
func staleClass(err error) bool {
	switch Classify(err) {
	case ClassReset, ClassBrokenPipe, ClassPeerClosed:
		return true
	}
	return false
}
