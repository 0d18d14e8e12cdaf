package rstpool

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// epoch anchors the monotonic clock a Conn keeps its timestamps on.
var epoch = time.Now()

func mono() int64 { return int64(time.Since(epoch)) }

// policy is what a Conn enforces, resolved from a Dialer once per dial.
type policy struct {
	idleLimit     time.Duration // <= 0: none
	maxLifetime   time.Duration // <= 0: none
	validateAfter time.Duration // quiet time after which a Write checks first
	peek          bool          // check the socket, not only the limits
}

// A Conn is a tracked connection, as returned by Dialer.DialContext. It
// records when it was established, when it was last active, how many
// exchanges (a write followed by a read) it completed and how many bytes went
// each way, and it checks itself before the first Write after a quiet
// period: a connection whose peer is gone, or that outlived its idle limit
// or lifetime, is closed and that Write returns 0 and a *ConnError with
// Written 0, which every common client treats as safe to retry on a new
// connection.
//
// A Conn is safe for concurrent use like any net.Conn. Read returns io.EOF
// itself, not wrapped, at the end of the stream; every other failure is a
// *ConnError.
type Conn struct {
	nc  net.Conn
	raw syscall.RawConn // nil when nc is not a syscall.Conn
	pol policy

	created   int64        // mono time of establishment
	idleLimit atomic.Int64 // the idle limit in force, <= 0: none (SetIdleLimit)

	// Read side: written only by Read.
	nread    atomic.Int64
	lastRead atomic.Int64

	// Write side: written only by Write.
	nwritten  atomic.Int64
	lastWrite atomic.Int64
	readMark  atomic.Int64 // nread when the current exchange began
	writeMark atomic.Int64 // nwritten when the current exchange began
	gap       atomic.Int64 // idle time before the current exchange
	exchanges atomic.Int64 // exchanges completed
	uses      atomic.Int64 // checkouts recorded by a pool that knows them

	eof     atomic.Bool               // Read saw the peer's FIN
	failure atomic.Pointer[ConnError] // the first failure, for drivers that report their own error
	closed  atomic.Bool

	checkMu  sync.Mutex // serializes checks; guards the fields below
	peekFn   func(fd uintptr)
	peekBuf  [1]byte
	peekN    int
	peekErr  error
	state    uint8  // TCP state read with the peek, 0 when unknown
	final    Health // HealthClosed or HealthReset once seen: a dead peer stays dead
	finalErr error
}

func newConn(nc net.Conn, pol policy) *Conn {
	now := mono()
	c := &Conn{nc: nc, pol: pol, created: now}
	c.idleLimit.Store(int64(pol.idleLimit))
	c.lastRead.Store(now)
	c.lastWrite.Store(now)
	if sc, ok := nc.(syscall.Conn); ok {
		if raw, err := sc.SyscallConn(); err == nil {
			c.raw = raw
		}
	}
	c.peekFn = c.peekFD
	return c
}

func (c *Conn) lastActive() int64 { return max(c.lastRead.Load(), c.lastWrite.Load()) }

// Read reads from the connection. It returns io.EOF unwrapped.
func (c *Conn) Read(b []byte) (int, error) {
	n, err := c.nc.Read(b)
	if n > 0 {
		c.nread.Add(int64(n))
		c.lastRead.Store(mono())
	}
	if err != nil {
		if err == io.EOF {
			c.eof.Store(true)
			return n, err
		}
		return n, c.fail("read", err)
	}
	return n, nil
}

// Write writes to the connection. The first Write after the connection was
// quiet for the validate-after window checks it first (see Dialer).
func (c *Conn) Write(b []byte) (int, error) {
	now := mono()
	last := c.lastActive()
	if r := c.nread.Load(); r != c.readMark.Load() && c.uses.Load() == 0 {
		c.turn(r, now, last)
	}
	if idle := time.Duration(now - last); idle >= c.pol.validateAfter {
		if err := c.checkBeforeWrite(now, idle); err != nil {
			return 0, err
		}
	}
	n, err := c.nc.Write(b)
	c.nwritten.Add(int64(n))
	c.lastWrite.Store(now)
	if err != nil {
		return n, c.fail("write", err)
	}
	return n, nil
}

// turn starts a new exchange: the connection read something since it last
// started writing, so this write begins the next request.
func (c *Conn) turn(r, now, last int64) {
	if c.nwritten.Load() > c.writeMark.Load() {
		c.exchanges.Add(1)
	}
	c.readMark.Store(r)
	c.writeMark.Store(c.nwritten.Load())
	c.gap.Store(now - last)
}

// fail wraps err with the connection's history and remembers the first
// failure (see Failure).
func (c *Conn) fail(op string, err error) error {
	if f := c.failure.Load(); f != nil && errors.Is(err, net.ErrClosed) {
		// Closed because of that failure: report it, keeping net.ErrClosed.
		e := *f
		e.Op, e.Err = op, &closedBy{cause: f.Err, closed: err}
		return &e
	}
	e := c.newError(op, err, c.nwritten.Load()-c.writeMark.Load())
	if !errors.Is(err, os.ErrDeadlineExceeded) && !errors.Is(err, net.ErrClosed) {
		c.failure.CompareAndSwap(nil, e) // a deadline or a local close leaves the peer healthy
	}
	return e
}

// closedBy is the error of an operation on a connection that rstpool closed
// after a failure: it matches both the failure's cause and net.ErrClosed.
type closedBy struct{ cause, closed error }

func (e *closedBy) Error() string   { return e.cause.Error() + " (connection closed)" }
func (e *closedBy) Unwrap() []error { return []error{e.cause, e.closed} }

// Failure returns the first failure the connection saw, or a peer-closed
// *ConnError when a Read returned io.EOF; nil while it is healthy. Drivers
// that replace a connection error with their own (go-sql-driver/mysql's
// "invalid connection") lose the class and history; WrapConnector attaches
// this to their error.
func (c *Conn) Failure() *ConnError {
	if e := c.failure.Load(); e != nil {
		return e
	}
	if c.eof.Load() {
		e := c.newError("read", io.EOF, c.nwritten.Load()-c.writeMark.Load())
		c.failure.CompareAndSwap(nil, e)
		return c.failure.Load()
	}
	return nil
}

func (c *Conn) newError(op string, err error, written int64) *ConnError {
	now := mono()
	gap := time.Duration(c.gap.Load())
	return &ConnError{
		Op:        op,
		Class:     Classify(err),
		Reused:    c.reused(),
		Idle:      gap,
		Age:       time.Duration(now - c.created),
		Written:   written,
		Err:       err,
		Addr:      remote(c.nc),
		readBack:  c.nread.Load() - c.readMark.Load(),
		afterIdle: gap >= c.pol.validateAfter,
	}
}

func remote(nc net.Conn) string {
	if a := nc.RemoteAddr(); a != nil {
		return a.String()
	}
	return ""
}

// reused reports whether an exchange completed before the current one. A
// pool that records its checkouts (MarkUsed) decides instead.
func (c *Conn) reused() bool {
	if u := c.uses.Load(); u > 0 {
		return u > 1
	}
	return c.exchanges.Load() > 0
}

// MarkUsed records that a pool handed the connection out for a new
// request, which begins here. Once a pool calls it, exchanges are delimited
// by these checkouts rather than guessed from write-after-read turnarounds,
// which protocols with handshakes (TLS, database logins) inflate and which
// cannot tell a response read while the request is still being written (a
// server answering early) from the next request: Reused then means "checked
// out before", and a reset while writing after part of the answer was read
// is recognized as a close with unread data.
func (c *Conn) MarkUsed() { c.markUsedAt(mono()) }

// markUsedAt is MarkUsed for a caller that already read the clock. Pools
// call it on every checkout, mostly after requests that did I/O only
// sometimes: it loads the marks first and stores only those that moved,
// sparing locked stores.
func (c *Conn) markUsedAt(now int64) {
	c.gap.Store(now - c.lastActive())
	if r := c.nread.Load(); r != c.readMark.Load() {
		c.readMark.Store(r)
	}
	if w := c.nwritten.Load(); w != c.writeMark.Load() {
		c.writeMark.Store(w)
	}
	c.uses.Add(1)
}

// SetIdleLimit changes the idle limit the connection enforces at its next
// Write after a quiet period; zero or negative removes it. A pool that
// learns a hop's idle timeout applies it to the connections it already has.
func (c *Conn) SetIdleLimit(d time.Duration) { c.idleLimit.Store(int64(d)) }

// IdleLimit returns the idle limit in force; zero means none.
func (c *Conn) IdleLimit() time.Duration { return max(time.Duration(c.idleLimit.Load()), 0) }

// Close closes the connection.
func (c *Conn) Close() error {
	c.closed.Store(true)
	return c.nc.Close()
}

// LocalAddr returns the local network address.
func (c *Conn) LocalAddr() net.Addr { return c.nc.LocalAddr() }

// RemoteAddr returns the remote network address.
func (c *Conn) RemoteAddr() net.Addr { return c.nc.RemoteAddr() }

// SetDeadline sets the read and write deadlines of the underlying connection.
func (c *Conn) SetDeadline(t time.Time) error { return c.nc.SetDeadline(t) }

// SetReadDeadline sets the read deadline of the underlying connection.
func (c *Conn) SetReadDeadline(t time.Time) error { return c.nc.SetReadDeadline(t) }

// SetWriteDeadline sets the write deadline of the underlying connection.
func (c *Conn) SetWriteDeadline(t time.Time) error { return c.nc.SetWriteDeadline(t) }

// SyscallConn returns the underlying connection's raw connection, so that
// drivers' own liveness checks keep working through a Conn.
func (c *Conn) SyscallConn() (syscall.RawConn, error) {
	if c.raw == nil {
		return nil, fmt.Errorf("rstpool: %T has no raw connection: %w", c.nc, errors.ErrUnsupported)
	}
	return c.raw, nil
}

// CloseWrite shuts down the writing side, when the underlying connection
// supports it (TCP and Unix connections do).
func (c *Conn) CloseWrite() error {
	if cw, ok := c.nc.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return fmt.Errorf("rstpool: %T cannot close its write side: %w", c.nc, errors.ErrUnsupported)
}

// CloseRead shuts down the reading side, when the underlying connection
// supports it.
func (c *Conn) CloseRead() error {
	if cr, ok := c.nc.(interface{ CloseRead() error }); ok {
		return cr.CloseRead()
	}
	return fmt.Errorf("rstpool: %T cannot close its read side: %w", c.nc, errors.ErrUnsupported)
}

// NetConn returns the underlying connection.
func (c *Conn) NetConn() net.Conn { return c.nc }

// ConnStats is a snapshot of a Conn's history.
type ConnStats struct {
	Age          time.Duration // since the connection was established
	Idle         time.Duration // since it last read or wrote
	Exchanges    int64         // write-then-read turnarounds completed
	Uses         int64         // checkouts recorded with MarkUsed
	BytesRead    int64
	BytesWritten int64
	PeerClosed   bool // a Read returned io.EOF
}

// Stats returns a snapshot of the connection's history.
func (c *Conn) Stats() ConnStats {
	now := mono()
	return ConnStats{
		Age:          time.Duration(now - c.created),
		Idle:         time.Duration(now - c.lastActive()),
		Exchanges:    c.exchanges.Load(),
		Uses:         c.uses.Load(),
		BytesRead:    c.nread.Load(),
		BytesWritten: c.nwritten.Load(),
		PeerClosed:   c.eof.Load(),
	}
}
