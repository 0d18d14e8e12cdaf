package rstpool

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptrace"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rstpool/rstpool/internal/rule"
)

// Defaults a zero Transport applies.
const (
	// DefaultMaxBufferedBody is how much of a request body without GetBody
	// a Transport keeps a copy of as it is sent, so that a retry can send
	// it again: 64 KiB covers typical JSON and form posts.
	DefaultMaxBufferedBody = 64 << 10

	// DefaultExpectContinueBody is the body size above which a request is
	// sent with "Expect: 100-continue": 256 KiB is more than a loopback or
	// LAN socket buffer takes at once, so a server that refuses the
	// request (401, 413) answers before the body fills its receive buffer
	// and closes with unread data (an RST). Below it, the extra round trip
	// would cost more than it saves.
	DefaultExpectContinueBody = 256 << 10

	// DefaultExpectContinueTimeout is how long a request with
	// "Expect: 100-continue" waits for the server's answer before sending
	// the body anyway, as net/http's DefaultTransport.
	DefaultExpectContinueTimeout = time.Second

	// DefaultHTTP2PingAfter is how long an HTTP/2 connection may receive
	// no frame before the client pings it, when Base has no HTTP2 config:
	// a third of DefaultIdleTimeout, so a silently dropped connection is
	// found while it is still pooled.
	DefaultHTTP2PingAfter = 15 * time.Second

	// DefaultHTTP2PingTimeout is how long a ping may go unanswered before
	// the connection is closed.
	DefaultHTTP2PingTimeout = 5 * time.Second
)

// Transport is an http.RoundTripper for HTTP/1.1 and HTTP/2 that dials
// through a Dialer, keeps connections below every hop's idle timeout,
// learns a destination's idle timeout from the connections it finds dead
// after an idle gap, and retries a failed request once, on a new
// connection, by the rule every rstpool consumer applies: a connection
// failure, before any byte of the response arrived, when nothing of the
// request was written or the request is idempotent (see RetryReason),
// within the RetryBudget.
//
// The zero value is usable. A Transport must not be copied after first
// use and is safe for concurrent use. Its fields must not change after
// the first request.
type Transport struct {
	// Base is the transport requests go through. Nil: a transport like
	// net/http's DefaultTransport that dials through Dialer, with its
	// IdleConnTimeout set to the Dialer's idle limit, HTTP/2 health pings
	// (DefaultHTTP2PingAfter, DefaultHTTP2PingTimeout) and
	// ExpectContinueTimeout set. Non-nil: Base is cloned, never modified;
	// the clone dials through Dialer (its DialContext is replaced), its
	// IdleConnTimeout is lowered to the Dialer's idle limit, and HTTP/2
	// pings and ExpectContinueTimeout are set when Base leaves them zero.
	// DialTLSContext is kept: connections it makes are not tracked.
	Base *http.Transport

	// Dialer dials every connection. Nil: a zero Dialer (its defaults).
	Dialer *Dialer

	// RetryMethods are the methods retried after a failure that may have
	// reached the server. Nil: the methods RFC 9110 (9.2.2) defines as
	// idempotent, and QUERY: GET, HEAD, OPTIONS, TRACE, PUT, DELETE and
	// QUERY. A request carrying an Idempotency-Key or X-Idempotency-Key
	// header counts as idempotent whatever its method.
	RetryMethods []string

	// RetryBudget bounds the Transport's retries (see RetryBudget). Zero:
	// the defaults.
	RetryBudget RetryBudget

	// MaxBufferedBody is how much of a request body without GetBody the
	// Transport keeps a copy of as net/http sends it, so that a retry can
	// send the whole body again. Nothing is read ahead: a larger or
	// unfinished body is streamed as net/http streams it and is retried
	// only if none of it was read. Zero: DefaultMaxBufferedBody. Negative:
	// keep no copy.
	MaxBufferedBody int64

	// ExpectContinueBody is the body size above which requests of known
	// length send "Expect: 100-continue". Zero: DefaultExpectContinueBody.
	// Negative: never added.
	ExpectContinueBody int64

	// LearnFloor is the shortest idle gap the Transport takes as evidence
	// of a hop's idle timeout (see TransportStats.LearnedIdle): a reused
	// connection found dead after a shorter gap is taken as chance (a
	// restart, a crash). Zero: DefaultLearnFloor. Negative: no learning.
	LearnFloor time.Duration

	// Observer receives the Transport's events (retries, retries denied,
	// failures that reach the caller, learned limits). Nil: the Dialer's
	// Observer.
	Observer Observer

	once     sync.Once
	err      error           // a bad setting, reported by every RoundTrip
	rt       *http.Transport // the transport for first attempts
	fresh    *http.Transport // the transport for retries: no keep-alive
	set      *settings       // the Dialer's resolved settings
	observer Observer
	budget   budget
	stats    transportCounters
	learn    learner
}

// RoundTrip sends the request, and sends it once more on a new connection
// when the first attempt failed and the retry rule and budget allow it. A
// failure is reported as a *ConnError wrapping the underlying error,
// unless no connection was involved.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if err := t.init(); err != nil {
		closeBody(req)
		return nil, err
	}
	t.stats.requests.Add(1)
	t.budget.deposit()
	r, rb := t.prepare(req)
	if rb != nil {
		defer rb.finish()
	}
	a := getAttempt()
	defer putAttempt(a)
	a.limit = t.learn.limitFor(r)
	resp, err := a.run(t.rt, r)
	if err != nil {
		err = a.wrap(err)
	}
	t.noteFailure(r, a, err)
	if err == nil {
		return t.done(req, resp), nil
	}
	if reason := t.retryReason(r, rb, a, err); reason != RetryNone {
		if resp, err = t.retry(r, rb, a, reason, err); err == nil {
			t.budget.refund()
			return t.done(req, resp), nil
		}
		err = a.wrap(err) // the second attempt's failure; the first is already wrapped
	}
	t.surface(r, err)
	return nil, err
}

// done gives the caller's request back in the response, as net/http does.
func (t *Transport) done(req *http.Request, resp *http.Response) *http.Response {
	resp.Request = req
	return resp
}

// retryReason applies the retry rule to a failed attempt, whose error
// a.wrap already explained, then the budget.
// Refused dials are not its business: the Dialer already retried them
// within RefusedRetry.
func (t *Transport) retryReason(r *http.Request, rb *replayBody, a *attempt, err error) RetryReason {
	reason := RetryReason(rule.Retry(rule.Failure{
		CallerDone:  r.Context().Err() != nil,
		ConnFailure: a.conns > 0 && !isDialError(err) && connFailure(err),
		Replayable:  replayable(r, rb),
		NothingLeft: a.wroteNothing(err),
		Answered:    a.answered(),
		Idempotent:  t.idempotent(r),
	}))
	if reason != RetryNone && !t.budget.withdraw() {
		t.stats.denied.Add(1)
		t.observer.emit(Event{Kind: EventRetryDenied, Source: "transport", Addr: requestAddr(r), Reason: reason.String(), Class: Classify(err), Err: err})
		return RetryNone
	}
	return reason
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
	m := r.Method
	if m == "" {
		m = http.MethodGet
	}
	if t.RetryMethods == nil {
		switch m {
		case "GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE", "QUERY":
			return true
		}
		return false
	}
	return slices.Contains(t.RetryMethods, m)
}

// retry runs the second and last attempt on a new connection.
func (t *Transport) retry(r *http.Request, rb *replayBody, a *attempt, reason RetryReason, first error) (*http.Response, error) {
	r2, err := rewind(r, rb)
	if err != nil {
		return nil, err
	}
	t.stats.retries[reason].Add(1)
	t.observer.emit(Event{Kind: EventRetry, Source: "transport", Addr: requestAddr(r), Reason: reason.String(), Class: Classify(first), Err: first})
	if !pauseUnlessStale(r.Context(), first) {
		return nil, first
	}
	a.reset()
	return a.run(t.fresh, r2)
}

// surface counts and reports a failure RoundTrip returns.
func (t *Transport) surface(r *http.Request, err error) {
	class := Classify(err)
	t.stats.errors[class].Add(1)
	if o := t.observer; o != nil {
		c, addr := causeOf(err)
		if addr == "" {
			addr = requestAddr(r)
		}
		o(Event{Kind: EventSurfaced, Source: "transport", Addr: addr, Class: class, Cause: c, Err: err})
	}
}

// CloseIdleConnections closes the idle connections of the transport.
func (t *Transport) CloseIdleConnections() {
	if t.init() == nil {
		t.rt.CloseIdleConnections()
	}
}

func (t *Transport) init() error {
	t.once.Do(func() { t.rt, t.fresh, t.set, t.err = t.build() })
	return t.err
}

func (t *Transport) dialer() *Dialer {
	if t.Dialer != nil {
		return t.Dialer
	}
	return &Dialer{}
}

// build makes the two transports from Base and the Dialer's settings.
func (t *Transport) build() (rt, fresh *http.Transport, s *settings, err error) {
	d := t.dialer()
	if s, err = d.settings(); err != nil {
		return nil, nil, nil, err
	}
	if err = t.RetryBudget.check("Transport.RetryBudget"); err != nil {
		return nil, nil, nil, err
	}
	t.budget.set(t.RetryBudget)
	t.observer = t.Observer
	if t.observer == nil {
		t.observer = d.Observer
	}
	t.learn.init(orDefault(t.LearnFloor, DefaultLearnFloor), s.idleLimit, t.observer)
	if t.Base == nil {
		rt = t.newBase()
	} else {
		rt = t.Base.Clone()
	}
	rt.DialContext = t.dial
	if s.idleLimit > 0 && (rt.IdleConnTimeout <= 0 || rt.IdleConnTimeout > s.idleLimit) {
		rt.IdleConnTimeout = s.idleLimit
	}
	if rt.ExpectContinueTimeout == 0 {
		rt.ExpectContinueTimeout = DefaultExpectContinueTimeout
	}
	if rt.HTTP2 == nil {
		rt.HTTP2 = &http.HTTP2Config{SendPingTimeout: DefaultHTTP2PingAfter, PingTimeout: DefaultHTTP2PingTimeout}
	}
	if rt.TLSNextProto == nil {
		rt.ForceAttemptHTTP2 = true
	}
	fresh = rt.Clone()
	fresh.DisableKeepAlives = true
	return rt, fresh, s, nil
}

// newBase is net/http's DefaultTransport without its dialer.
func (t *Transport) newBase() *http.Transport {
	return &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		MaxIdleConns:        100,
		TLSHandshakeTimeout: 10 * time.Second,
	}
}

// dial dials through the Dialer.
func (t *Transport) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	return t.dialer().DialContext(ctx, network, addr)
}

// An attempt records, through an httptrace.ClientTrace, the connection one
// attempt of a request used, and counts from its checkout. Attempts are
// pooled: the trace's hook is bound once.
type attempt struct {
	// trace is bound to the attempt once and never written again:
	// net/http reads it after RoundTrip returns (PutIdleConn).
	trace *httptrace.ClientTrace

	ctx      context.Context // the request's, for Retry's accounting
	conn     *Conn           // the tracked connection, when there is one
	info     httptrace.GotConnInfo
	conns    int   // connections the attempt got: more than one means net/http retried
	written0 int64 // conn's bytes written when the attempt got it
	read0    int64
	prevConn *Conn // the connection before the last, when conns > 1
	// firstByte: a byte of the response arrived. net/http reports it from
	// its read loop, which may outlive RoundTrip's return.
	firstByte atomic.Bool

	// limit is the idle limit learned for the request's destination, zero
	// when none.
	limit time.Duration
}

// dueTo is net/http's error for a connection that failed under a request,
// with the failure that explains it; errors.Is and errors.As see both.
type dueTo struct{ err, cause error }

func (e *dueTo) Error() string   { return e.err.Error() + " (after " + e.cause.Error() + ")" }
func (e *dueTo) Unwrap() []error { return []error{e.err, e.cause} }

var attempts = sync.Pool{New: func() any {
	a := &attempt{}
	a.trace = a.newTrace()
	return a
}}

func (a *attempt) newTrace() *httptrace.ClientTrace {
	return &httptrace.ClientTrace{GotConn: a.onGotConn, GotFirstResponseByte: a.onFirstByte}
}

// onFirstByte records that the response began: from here the request is
// never retried.
func (a *attempt) onFirstByte() { a.firstByte.Store(true) }

func getAttempt() *attempt { return attempts.Get().(*attempt) }

func putAttempt(a *attempt) {
	a.reset()
	a.limit = 0
	attempts.Put(a)
}

func (a *attempt) reset() {
	a.ctx, a.conn, a.info, a.conns, a.written0, a.read0, a.prevConn = nil, nil, httptrace.GotConnInfo{}, 0, 0, 0, nil
	a.firstByte.Store(false)
}

// run sends r through rt, tracing the connection it gets.
func (a *attempt) run(rt http.RoundTripper, r *http.Request) (*http.Response, error) {
	tr := a.trace
	if httptrace.ContextClientTrace(r.Context()) != nil {
		// Composing with the caller's trace rewrites the hooks: use a
		// trace of this request's own.
		tr = a.newTrace()
	}
	a.ctx = r.Context()
	ctx := httptrace.WithClientTrace(a.ctx, tr)
	return rt.RoundTrip(r.WithContext(ctx))
}

// onGotConn is the attempt's checkout: it retires an idle connection that
// outlived the learned limit (its first write then fails with nothing
// written, and net/http takes another), marks the checkout, and counts the
// connection's bytes from here.
func (a *attempt) onGotConn(info httptrace.GotConnInfo) {
	if a.conns > 0 {
		a.prevConn = a.conn
	}
	a.conns++
	a.info = info
	a.info.Conn = nil
	a.conn = tracked(info.Conn)
	noteHandout(a.ctx, a.conn, info.Conn)
	if a.conn == nil {
		return
	}
	if info.WasIdle && a.limit > 0 &&
		rule.Checkout(rule.Conn{Idle: info.IdleTime}, rule.Limits{IdleLimit: a.limit, PeekAfter: -1}, nil) == rule.RetireIdle {
		a.conn.retire(ErrIdleLimit)
	}
	if !info.Reused || info.WasIdle {
		// A new piece of work begins. An HTTP/2 connection that other
		// requests are using keeps the mark of the earliest of them, so
		// that its errors never undercount what left.
		a.conn.checkout()
	}
	a.written0 = a.conn.nwritten.Load()
	a.read0 = a.conn.nread.Load()
}

// wroteNothing reports whether the attempt put no byte on its connection
// before err: by the attempt's own count, or by the connection's error,
// counted when it failed (a TLS close_notify written on the way out is
// not the request). Unknown (an untracked connection) counts as written.
func (a *attempt) wroteNothing(err error) bool {
	if a.conn == nil {
		return false
	}
	var ce *ConnError
	return a.conn.nwritten.Load() == a.written0 || (errors.As(err, &ce) && ce.NothingWritten())
}

// answered reports whether a byte of the response had arrived: net/http
// says so for the request itself, on HTTP/1 and HTTP/2 alike.
func (a *attempt) answered() bool { return a.firstByte.Load() }

// wrap returns err as a *ConnError: the tracked connection's own error when
// err carries one, else err with what the attempt knows of its connection.
func (a *attempt) wrap(err error) error {
	var ce *ConnError
	if errors.As(err, &ce) || a.conns == 0 {
		return err
	}
	e := &ConnError{Op: "read", Class: Classify(err), Reused: a.info.Reused, Idle: a.info.IdleTime, Err: err}
	if c := a.conn; c != nil {
		switch f := c.failure.Load(); {
		case e.Class == ClassOther && f != nil:
			// net/http's own words for a connection that failed under
			// the request ("force closed" on HTTP/2): the failure says why.
			e.Class, e.Err = f.Class, &dueTo{err: err, cause: f.Err}
		case e.Class == ClassOther && c.eof.Load():
			e.Class = ClassPeerClosed // net/http's "server closed idle connection"
		}
		e.Written = c.nwritten.Load() - a.written0
		e.readBack = c.nread.Load() - a.read0
		e.Age = time.Duration(mono() - c.created)
		e.Addr = remote(c.nc)
		e.diedIdle = a.info.WasIdle && e.readBack == 0 && c.gap.Load() > 0 && c.nread.Load() == c.gapR.Load()
	}
	return e
}
