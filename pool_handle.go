package rstpool

import (
	"context"
	"net"
	"time"

	"github.com/jackc/puddle/v2"
)

// A pconn's state word counts its checkouts in the bits above stateBits
// and says in the low bits where the current checkout stands, so that a
// handle (which carries the count of its checkout) can tell its own
// checkout from a later one without an allocation per Acquire.
const (
	handleOut      = iota + 1 // held by the caller
	handleReturned            // idle: Released, or never handed out
	handleRevoked             // closed by Pool.Close after its context expired

	stateBits = 2
	stateMask = 1<<stateBits - 1
)

// handOut gives res to the caller under a new checkout number, unless the
// pool began closing meanwhile. The checkout starts the caller's piece of
// work: the tracked connection counts Written from here, after any ping.
func (p *Pool) handOut(ctx context.Context, res *puddle.Resource[*pconn], now int64) (PooledConn, error) {
	if p.closing.Load() {
		res.Release()
		return PooledConn{}, ErrPoolClosed
	}
	e := res.Value()
	if e.res == nil {
		e.res = res // puddle keeps one Resource per value
	}
	e.uses++
	e.lastUse = now
	if e.tc != nil {
		e.tc.checkout()
	}
	noteHandout(ctx, e.tc, e.nc)
	// From (n, returned) to (n+1, out) in one locked add, no load first.
	gen := e.state.Add(1<<stateBits+handleOut-handleReturned) &^ stateMask
	return PooledConn{e: e, gen: gen}, nil
}

// A PooledConn is a connection checked out of a Pool. Use Conn for I/O,
// then call exactly one of Release (the connection is in a clean state
// between requests) or Destroy (it saw an error, a timeout or a protocol
// error, or is otherwise out of step). Calling either twice, on the
// handle or a copy of it, panics. The zero PooledConn holds no connection.
type PooledConn struct {
	e   *pconn
	gen uint64 // the checkout, as the high bits of e.state
}

// Conn returns the connection: the one PoolConfig.Wrap returned for it,
// else the one dialed. It must not be used after Release or Destroy, and
// must not be closed by the caller: Destroy closes it.
func (h PooledConn) Conn() net.Conn { return h.e.nc }

// Reused reports whether the connection had been handed out before.
func (h PooledConn) Reused() bool { return h.e.uses > 1 }

// Release returns the connection to the pool for reuse.
func (h PooledConn) Release() {
	if !h.give("Release") {
		return
	}
	if h.e.tc == nil {
		h.e.lastUse = mono() // an untracked conn's traffic is unknown: count it up to now
	}
	if h.e.tc == nil || h.e.tc.deadline.Load() {
		_ = h.e.nc.SetDeadline(time.Time{}) // the next holder starts without this one's deadline
	}
	// The pool keeps its own idle clock (lastUse and the Conn's traffic)
	// and never reads puddle's: ReleaseUnused spares a clock read.
	h.e.res.ReleaseUnused()
}

// Destroy closes the connection and frees its slot: it is never reused.
// Hand back with Destroy every connection that saw an error, including a
// protocol error that may have left unread bytes behind.
func (h PooledConn) Destroy() {
	if !h.give("Destroy") {
		return
	}
	h.e.res.Destroy()
}

// give ends the handle's checkout. It reports false when Close already
// revoked it, and panics when it was already returned (or is a stale
// handle of an earlier checkout, or the zero PooledConn).
func (h PooledConn) give(op string) bool {
	if h.e != nil {
		if h.e.state.CompareAndSwap(h.gen|handleOut, h.gen|handleReturned) {
			return true
		}
		if h.e.state.Load() == h.gen|handleRevoked {
			return false
		}
	}
	panic("rstpool: PooledConn." + op + " called on a connection already released or destroyed")
}

// revoke closes e under the holder of checkout state, which its holder
// never returned; it does nothing if the holder returned it meanwhile.
func (e *pconn) revoke(state uint64) {
	if !e.state.CompareAndSwap(state, state&^stateMask|handleRevoked) {
		return
	}
	_ = e.nc.Close()
	e.res.Hijack()
	e.p.mu.Lock()
	delete(e.p.conns, e)
	e.p.mu.Unlock()
	e.p.stats.revoked.Add(1)
}
