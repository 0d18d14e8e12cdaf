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
// Before the first Write after a quiet spell (Dialer.PeekAfter) it peeks
// at its socket, which costs well under a microsecond. If the peer is
// already gone, that Write sends nothing and returns a *ConnError with
// Written 0, which net/http, database/sql and pgx retry on a new connection.
// The check never fails a write on a live connection, nor on one whose
// peer only half-closed after the application read its FIN, and a Conn
// enforces no idle limit or lifetime: whoever hands connections out
// (Transport, Pool, WrapConnector, rstpgx) applies those at checkout, never
// to a connection a caller holds, such as a quiet transaction or a
// WebSocket.
//
// A Conn is safe for concurrent use like any net.Conn. Read returns io.EOF
// itself, not wrapped; every other failure is a *ConnError.
type Conn struct {
	// Set at the dial, never written again.
	nc        net.Conn
	raw       syscall.RawConn // nil when nc is not a syscall.Conn
	peekAfter int64           // quiet time after which a Write checks first
	peek      bool            // check the socket, not only what a read saw
	created   int64           // mono time of the dial
	dialed    destKey         // the network and address dialed: the key of its destination's facts

	// Counters, each written by the operation it counts.
	nread     atomic.Int64 // bytes read
	lastRead  atomic.Int64 // mono time the last read that returned bytes returned
	nwritten  atomic.Int64 // bytes handed to Write, counted when each write starts
	lastWrite atomic.Int64 // mono time the last write finished

	// The current piece of work, begun by the consumer that handed the
	// connection out: its count and the counters at its start.
	pieces       atomic.Int64
	markW, markR atomic.Int64

	// quiet is the last quiet spell of at least peekAfter, stored whole
	// by the first Write after it: the evidence of how the connection died.
	quiet atomic.Pointer[spell]

	eof      atomic.Bool                // a Read returned the peer's FIN
	closed   atomic.Bool                // closed locally
	leaving  atomic.Bool                // a consumer retired it: its client closes it, goodbye first
	deadline atomic.Bool                // a caller set a deadline and has not cleared it
	learned  atomic.Bool                // a Transport's learner counted its idle death
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

// A mark is a connection's byte counts at a moment: where a piece of work
// or an attempt began.
type mark struct{ w, r int64 }

// A spell is a quiet spell as the write that ended it found the
// connection. It is never modified once stored.
type spell struct {
	length time.Duration
	at     mark  // the counts during the spell
	first  int64 // nwritten once the write that ended it is counted
}

// A retirement is why a consumer retired a connection it handed out.
type retirement struct{ err error }

func newConn(nc net.Conn, peekAfter time.Duration, peek bool) *Conn {
	now := mono()
	c := &Conn{nc: nc, peekAfter: int64(peekAfter), peek: peek, created: now}
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

// Tracked returns the *Conn under nc, seeing through *tls.Conn and other
// wrappers with a NetConn method, or nil when no Dialer dialed it.
func Tracked(nc net.Conn) *Conn {
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

// mark returns the byte counts now.
func (c *Conn) mark() mark { return mark{w: c.nwritten.Load(), r: c.nread.Load()} }

// wroteSince reports whether a byte was handed to Write since m.
func (c *Conn) wroteSince(m mark) bool { return c.nwritten.Load() != m.w }

// movedSince reports whether a byte went either way since m.
func (c *Conn) movedSince(m mark) bool { return c.mark() != m }

// Read reads from the connection. It returns io.EOF unwrapped.
func (c *Conn) Read(b []byte) (int, error) {
	n, err := c.nc.Read(b)
	if n > 0 {
		if c.nread.Add(int64(n)) == int64(n) {
			c.firstAnswer()
		}
		c.lastRead.Store(mono())
	}
	if err != nil {
		if err == io.EOF {
			c.eof.Store(true)
			c.noteConnectFailure(err)
			return n, err
		}
		return n, c.fail("read", err)
	}
	return n, nil
}

// Write writes to the connection. The first Write after a quiet spell
// checks the connection first (see Conn).
func (c *Conn) Write(b []byte) (int, error) {
	if now, last := mono(), c.lastActive(); now-last >= c.peekAfter {
		if err := c.resume(now-last, len(b)); err != nil {
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

// resume records the quiet spell that a write of size bytes ends, then
// checks the connection.
func (c *Conn) resume(quiet int64, size int) error {
	at := c.mark()
	c.quiet.Store(&spell{length: time.Duration(quiet), at: at, first: at.w + int64(size)})
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
		c.noteConnectFailure(err)
	}
	return e
}

// noteConnectFailure tells the destination's facts that a connection
// failed before the peer sent a byte or took one of its first piece of
// work: a connect answered by a reset, the sibling of a refusal.
func (c *Conn) noteConnectFailure(err error) {
	if c.dialed.addr != "" && c.connectFailure(Classify(err)) && c.untouched() {
		now := time.Now()
		destinations.entry(c.dialed, now).refused(now, err)
	}
}

// firstAnswer tells the destination's facts, if any, that a connection to
// it carried a byte back: it serves again, whatever failed before.
func (c *Conn) firstAnswer() {
	if dst := destinations.lookup(c.dialed); dst != nil {
		dst.answered()
		destinations.forget(dst)
	}
}

// connectFailure reports whether a failure of class cl is a connect
// answered by a reset or a close: the peer never sent a byte, the
// connection was never handed out twice, and it did not sit idle before its
// first work (a pooled connection that waited for work and died meanwhile
// died idle).
func (c *Conn) connectFailure(cl Class) bool {
	if !cl.peerEnded() {
		return false
	}
	sp := c.quiet.Load()
	return c.nread.Load() == 0 && c.pieces.Load() <= 1 && (sp == nil || sp.at.w == 0 && sp.length < connectWait)
}

// untouched reports whether the peer took no byte of the connection: none
// acknowledged where the kernel says (a new connection's first bytes are
// acknowledged at once, by quick ACK), else none written. A connect that
// failed untouched is a refused connect by another name, and may be tried
// again as one; a server that read a request and then reset took its
// bytes, and repeating that could add load.
func (c *Conn) untouched() bool {
	if acked, ok := c.bytesAcked(); ok {
		return acked == 0
	}
	return c.nwritten.Load() == 0
}

// connectWait is the longest a new connection may wait for its first work
// and still, failing then, count as a connect answered by a reset: a
// client writes right after its connect, while a pool keeps connections
// it dialed ahead (MinIdle) for far longer.
const connectWait = 100 * time.Millisecond

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

// newError builds the *ConnError of a failure of the current piece of
// work (since the consumer's checkout, else since the dial).
func (c *Conn) newError(op string, err error) *ConnError {
	return c.errorSince(op, err, mark{w: c.markW.Load(), r: c.markR.Load()}, c.reused())
}

// errorSince builds a *ConnError for a piece of work that began at from:
// the one constructor of a tracked connection's errors. The evidence of
// how it died is read now, from the last quiet spell as one snapshot.
func (c *Conn) errorSince(op string, err error, from mark, reused bool) *ConnError {
	now := c.mark()
	e := &ConnError{
		Op:      op,
		Class:   Classify(err),
		Reused:  reused,
		Age:     time.Duration(mono() - c.created),
		Written: now.w - from.w,
		Err:     err,
		Addr:    remote(c.nc),
	}
	sp := c.quiet.Load()
	readFrom := from.r
	if sp != nil {
		e.Idle = sp.length
		readFrom = max(readFrom, sp.at.r)
	}
	e.readBack = now.r - readFrom
	e.quietDeath = sp != nil && now.r == sp.at.r
	e.diedIdle = e.quietDeath && (op == "validate" || c.untaken(sp, now))
	e.connectReset = !reused && c.connectFailure(e.Class)
	e.untouched = e.connectReset && c.untouched()
	e.dialed = c.dialed
	return e
}

// diedIdle reports whether the connection failed and the failure's
// evidence says it was gone while idle: nothing arrived after its last
// quiet spell, and the peer took nothing written after it.
func (c *Conn) diedIdle() bool {
	f := c.failure.Load()
	return f != nil && f.diedIdle
}

// untaken reports whether nothing written after the quiet spell sp was
// taken by the peer: where the kernel says which bytes the peer
// acknowledged (Linux), none after the spell was; elsewhere, the failure
// came at the first write after it. A peer or hop that had forgotten the
// connection answers its next bytes with a reset and acknowledges none; a
// live process (a proxy resetting flows, a server crashing under a
// request) took them first.
func (c *Conn) untaken(sp *spell, now mark) bool {
	if acked, ok := c.bytesAcked(); ok {
		return acked <= sp.at.w
	}
	return now.w <= sp.first
}

func remote(nc net.Conn) string {
	if a := nc.RemoteAddr(); a != nil {
		return a.String()
	}
	return ""
}

// reused reports whether the current piece of work is not the connection's
// first: a consumer handed it out before, or, on a connection no consumer
// hands out, it carried traffic before its last quiet spell.
func (c *Conn) reused() bool {
	if n := c.pieces.Load(); n > 0 {
		return n > 1
	}
	sp := c.quiet.Load()
	return sp != nil && sp.at.w > 0
}

// begin records that a consumer hands the connection out for a new piece
// of work, which begins here: ConnError.Written counts from here. It
// stores only the marks that moved, sparing locked stores.
func (c *Conn) begin() {
	if w := c.nwritten.Load(); w != c.markW.Load() {
		c.markW.Store(w)
	}
	if r := c.nread.Load(); r != c.markR.Load() {
		c.markR.Store(r)
	}
	c.pieces.Add(1)
}

// leave records that a consumer retired the connection instead of handing
// it out: its client closes it now, and the goodbye it may write first (a
// pgx Terminate, a MySQL COM_QUIT) goes to the socket unchecked, as without
// rstpool, instead of failing a check that would only say the peer is
// gone again.
func (c *Conn) leave() { c.leaving.Store(true) }

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
	Checkouts    int64 // pieces of work a consumer (Transport, Pool, WrapConnector, rstpgx) handed it out for
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
		Checkouts:    c.pieces.Load(),
		PeerClosed:   c.eof.Load(),
	}
}

// String formats the snapshot on one line, as "age 1.2s, idle 300ms, 120 B
// read, 64 B written, 3 checkouts".
func (s ConnStats) String() string {
	str := fmt.Sprintf("age %s, idle %s, %d B read, %d B written, %d checkouts",
		round(s.Age), round(s.Idle), s.BytesRead, s.BytesWritten, s.Checkouts)
	if s.PeerClosed {
		str += ", peer closed"
	}
	return str
}
