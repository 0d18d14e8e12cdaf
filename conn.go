package rstpool

import (
	"crypto/tls"
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

// A Conn is a tracked connection, as returned by Dialer.DialContext. It
// records facts only: when it was dialed, when its last write finished and
// its last read returned, how many bytes went each way (a write counts from
// the moment it starts), and whether the peer's FIN or RST was seen.
//
// Before the first Write after a quiet spell (Dialer.ValidateAfter) it peeks
// at its socket, which costs well under a microsecond. If the peer is
// already gone, that Write sends nothing and returns a *ConnError with
// Written 0, which net/http, database/sql and pgx retry on a new connection.
// The check never fails a write on a live connection, and a Conn enforces no
// idle limit or lifetime: whoever hands connections out (Transport, Pool,
// WrapConnector, rstpgx) applies those at checkout, never to a connection a
// caller holds, such as a quiet transaction or a WebSocket.
//
// A Conn is safe for concurrent use like any net.Conn. Read returns io.EOF
// itself, not wrapped; every other failure is a *ConnError.
type Conn struct {
	nc            net.Conn
	raw           syscall.RawConn // nil when nc is not a syscall.Conn
	validateAfter int64           // quiet time after which a Write checks first
	peek          bool            // check the socket, not only what a read saw
	created       int64           // mono time of the dial

	nread     atomic.Int64 // bytes read
	lastRead  atomic.Int64 // mono time the last read that returned bytes returned
	nwritten  atomic.Int64 // bytes handed to Write, counted when each write starts
	lastWrite atomic.Int64 // mono time the last write finished

	// The checkout: where the current piece of work began, set by the
	// consumer that handed the connection out (zero: since the dial).
	markW, markR atomic.Int64 // bytes written and read at the checkout
	checkouts    atomic.Int64

	// The last quiet spell of at least validateAfter, recorded by the first
	// Write after it: evidence for ConnError.Cause.
	gap      atomic.Int64 // its length
	gapW     atomic.Int64 // bytes written before it
	gapR     atomic.Int64 // bytes read before it
	gapFirst atomic.Int64 // nwritten at the end of the write that ended it
	gapEnd   atomic.Int64 // mono time it ended

	eof      atomic.Bool                // a Read returned the peer's FIN
	closed   atomic.Bool                // closed locally
	deadline atomic.Bool                // a caller set a deadline and has not cleared it
	retired  atomic.Pointer[retirement] // fail the next write: a consumer retired it at handout
	failure  atomic.Pointer[ConnError]  // the first failure, for drivers that report their own

	checkMu  sync.Mutex // serializes checks; guards the fields below
	peekFn   func(fd uintptr)
	peekBuf  [1]byte
	peekN    int
	peekErr  error
	state    uint8  // TCP state read with the peek, 0 when unknown
	final    Health // HealthClosed or HealthReset once seen: a dead peer stays dead
	finalErr error
}

// A retirement is why a consumer retired a connection it handed out.
type retirement struct{ err error }

func newConn(nc net.Conn, validateAfter time.Duration, peek bool) *Conn {
	now := mono()
	c := &Conn{nc: nc, validateAfter: int64(validateAfter), peek: peek, created: now}
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

// tracked returns the *Conn under nc, seeing through *tls.Conn and other
// wrappers with a NetConn method, or nil when no Dialer dialed it.
func tracked(nc net.Conn) *Conn {
	for range 4 {
		switch c := nc.(type) {
		case *Conn:
			return c
		case *tls.Conn:
			nc = c.NetConn()
		case interface{ NetConn() net.Conn }:
			nc = c.NetConn()
		default:
			return nil
		}
	}
	return nil
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

// Write writes to the connection. The first Write after a quiet spell
// checks the connection first (see Conn).
func (c *Conn) Write(b []byte) (int, error) {
	if now, last := mono(), c.lastActive(); now-last >= c.validateAfter {
		if err := c.resume(now, now-last, len(b)); err != nil {
			return 0, err
		}
	}
	c.nwritten.Add(int64(len(b))) // a read failing during the syscall must not see 0
	n, err := c.nc.Write(b)
	if n < len(b) {
		c.nwritten.Add(int64(n - len(b)))
	}
	c.lastWrite.Store(mono())
	if err != nil {
		return n, c.fail("write", err)
	}
	return n, nil
}

// resume records the quiet spell that a write of size bytes, starting at
// now, ends, then checks the connection.
func (c *Conn) resume(now, quiet int64, size int) error {
	w := c.nwritten.Load()
	c.gapEnd.Store(now)
	c.gap.Store(quiet)
	c.gapW.Store(w)
	c.gapR.Store(c.nread.Load())
	c.gapFirst.Store(w + int64(size))
	return c.checkBeforeWrite()
}

// fail wraps err with the connection's history and remembers the first
// failure of the peer (see failed).
func (c *Conn) fail(op string, err error) error {
	if f := c.failure.Load(); f != nil && errors.Is(err, net.ErrClosed) {
		// Closed because of that failure: report it, keeping net.ErrClosed.
		e := *f
		e.Op, e.Err = op, &closedBy{cause: f.Err, closed: err}
		return &e
	}
	e := c.newError(op, err)
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

// failed returns the first failure the connection saw, or a peer-closed
// *ConnError when a Read returned io.EOF; nil while it is healthy. Drivers
// that replace a connection error with their own (go-sql-driver/mysql's
// "invalid connection") lose the class and history; WrapConnector attaches
// this to their error.
func (c *Conn) failed() *ConnError {
	if e := c.failure.Load(); e != nil {
		return e
	}
	if c.eof.Load() {
		c.failure.CompareAndSwap(nil, c.newError("read", io.EOF))
		return c.failure.Load()
	}
	return nil
}

// newError builds a *ConnError from the connection's facts: the bytes of
// the current piece of work (since its checkout, else since the dial) and
// the evidence of how it died.
func (c *Conn) newError(op string, err error) *ConnError {
	w, r := c.nwritten.Load(), c.nread.Load()
	gapR := c.gapR.Load()
	return &ConnError{
		Op:       op,
		Class:    Classify(err),
		Reused:   c.reused(),
		Idle:     time.Duration(c.gap.Load()),
		Age:      time.Duration(mono() - c.created),
		Written:  w - c.markW.Load(),
		Err:      err,
		Addr:     remote(c.nc),
		readBack: r - max(c.markR.Load(), gapR),
		diedIdle: c.diedIdle(w, r),
	}
}

// diedWithin is how soon after a quiet spell a failure still counts as the
// answer to its first bytes: a peer or a hop that forgot an idle
// connection answers them within a round trip, well under this on
// loopback and within a zone. Later failures, or failures after other
// writes, happened mid-exchange.
const diedWithin = 10 * time.Millisecond

// diedIdle reports the evidence that the connection was dead when its last
// quiet spell ended: nothing arrived since, and the failure came at the
// first write after it, or within diedWithin of it (HTTP/2 writes headers
// and data frames of several streams in a burst).
func (c *Conn) diedIdle(w, r int64) bool {
	if c.gap.Load() == 0 || r != c.gapR.Load() {
		return false
	}
	return w <= c.gapFirst.Load() || time.Duration(mono()-c.gapEnd.Load()) <= diedWithin
}

func remote(nc net.Conn) string {
	if a := nc.RemoteAddr(); a != nil {
		return a.String()
	}
	return ""
}

// reused reports whether the current piece of work is not the connection's
// first: a consumer handed it out before, or, on a connection no consumer
// checks out, it carried traffic before its last quiet spell.
func (c *Conn) reused() bool {
	if n := c.checkouts.Load(); n > 0 {
		return n > 1
	}
	return c.gap.Load() > 0 && c.gapW.Load() > 0
}

// checkout records that a consumer hands the connection out for a new
// piece of work, which begins here: ConnError.Written counts from here.
// It stores only the marks that moved, sparing locked stores.
func (c *Conn) checkout() {
	if w := c.nwritten.Load(); w != c.markW.Load() {
		c.markW.Store(w)
	}
	if r := c.nread.Load(); r != c.markR.Load() {
		c.markR.Store(r)
	}
	c.checkouts.Add(1)
}

// writtenSince returns the bytes written since the count w0, from the
// moment each write started.
func (c *Conn) writtenSince(w0 int64) int64 { return c.nwritten.Load() - w0 }

// retire makes the next Write after a quiet spell fail with err and send
// nothing, once: a consumer that handed out a connection it must not reuse
// (Transport's learned idle limit) lets the client retry the request on
// another one, then close this one its own way (a TLS close_notify still
// goes out).
func (c *Conn) retire(err error) { c.retired.Store(&retirement{err: err}) }

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
func (c *Conn) SetDeadline(t time.Time) error {
	c.noteDeadline(t)
	return c.nc.SetDeadline(t)
}

// SetReadDeadline sets the read deadline of the underlying connection.
func (c *Conn) SetReadDeadline(t time.Time) error {
	c.noteDeadline(t)
	return c.nc.SetReadDeadline(t)
}

// SetWriteDeadline sets the write deadline of the underlying connection.
func (c *Conn) SetWriteDeadline(t time.Time) error {
	c.noteDeadline(t)
	return c.nc.SetWriteDeadline(t)
}

// noteDeadline records whether a deadline may be in force: a pool clears
// it between holders only then.
func (c *Conn) noteDeadline(t time.Time) {
	if set := !t.IsZero(); set != c.deadline.Load() {
		c.deadline.Store(set)
	}
}

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

// ConnStats is a snapshot of a Conn's facts.
type ConnStats struct {
	Age          time.Duration // since the connection was dialed
	Idle         time.Duration // since its last write finished or its last read returned
	BytesRead    int64
	BytesWritten int64 // counted when each write starts
	Checkouts    int64 // times a consumer (Transport, Pool, WrapConnector, rstpgx) handed it out
	PeerClosed   bool  // a Read returned io.EOF
}

// Stats returns a snapshot of the connection's facts.
func (c *Conn) Stats() ConnStats {
	now := mono()
	return ConnStats{
		Age:          time.Duration(now - c.created),
		Idle:         time.Duration(now - c.lastActive()),
		BytesRead:    c.nread.Load(),
		BytesWritten: c.nwritten.Load(),
		Checkouts:    c.checkouts.Load(),
		PeerClosed:   c.eof.Load(),
	}
}
