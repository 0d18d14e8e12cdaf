package rstpool

import (
	"context"
	"crypto/tls"
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
// learns a destination's idle timeout from consistent evidence (reused
// connections that died after an idle gap, when no blip explains them and
// no connection answered after a gap as long), and retries a failed
// request once, on a new connection, by the rule every rstpool consumer
// applies: a connection failure, before any byte of the response arrived,
// when nothing of the request was written or the request is idempotent
// (see RetryReason), within the RetryBudget. A request whose new
// connection was reset before a byte of it left is retried like a refused
// connect, within the Dialer's RefusedRetry.
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
	// send the whole body again: the copy, then what was not read yet.
	// Nothing is read ahead: a body is streamed as net/http streams it, and
	// one of which more than this was read is not retried. Zero:
	// DefaultMaxBufferedBody. Negative: keep no copy.
	MaxBufferedBody int64

	// ExpectContinueBody is the body size above which requests of known
	// length send "Expect: 100-continue". A server that answers 417
	// (Expectation Failed) gets the request again without it, and a
	// destination that let the wait for its 100 Continue run out gets no
	// expectation for a while: the wait is paid once, not per upload.
	// While the first upload to a destination finds out whether it
	// answers, the uploads beside it are sent without. Zero:
	// DefaultExpectContinueBody. Negative: never added.
	ExpectContinueBody int64

	// LearnFloor is the shortest idle gap the Transport takes as evidence
	// of a hop's idle timeout (see TransportStats.LearnedIdle): a reused
	// connection found dead after a shorter gap is taken as part of a
	// blip. Zero: DefaultLearnFloor. Negative: no learning.
	LearnFloor time.Duration

	// Observer receives the Transport's events (retries, retries denied,
	// failures that reach the caller, learned limits). Nil: the Dialer's
	// Observer.
	Observer Observer

	once   sync.Once
	err    error           // a bad setting, reported by every RoundTrip
	rt     *http.Transport // the transport for first attempts
	fresh  *http.Transport // the transport for retries: no keep-alive
	dialer *Dialer         // Dialer, or a zero one of the Transport's own
	k      consumer
	learn  learner
	expect expectations
}

// maxAttempts bounds the attempts of one request: a retry, or the
// redials of connections reset before the request left, within the
// Dialer's RefusedRetry.
const maxAttempts = 16

// RoundTrip sends the request, and sends it once more on a new connection
// when the first attempt failed and the retry rule and budget allow it
// (twice, for an idempotent request whose retry a blip still under way
// reset on arrival; see the package documentation). A
// failure is reported as a *ConnError wrapping the underlying error,
// unless no connection was involved.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if err := t.init(); err != nil {
		closeBody(req)
		return nil, err
	}
	t.k.begin()
	dst := &destName{r: req}
	r, rb, probe := t.prepare(req, dst)
	if probe {
		defer t.expect.done(dst)
	}
	if rb != nil {
		defer rb.finish()
	}
	a := getAttempt()
	defer putAttempt(a)
	idem := t.idempotent(r)
	a.limit, a.explore = t.learn.limitFor(dst, idem)
	rt := t.rt
	var d decision
	ran := false // an attempt's work may have reached the server
	for attempt := 0; ; attempt++ {
		resp, err := a.run(rt, r)
		if err != nil {
			err = a.wrap(err)
		}
		t.learnFrom(a, dst, err)
		if err == nil {
			t.expect.learn(a, dst, t.rt.ExpectContinueTimeout)
			if r2 := t.expectFailed(req, r, rb, resp, dst); r2 != nil && attempt < maxAttempts {
				r, a.limit, a.explore = r2, 0, 0
				a.reset()
				continue
			}
			t.k.succeeded(d)
			resp.Request = req // as net/http does
			return resp, nil
		}
		d = t.k.next(r.Context(), d, a.failure(r, rb, err, ran, idem), attempt)
		ran = ran || d.reason == RetryIdempotent
		var r2 *http.Request
		if d.reason != RetryNone && attempt < maxAttempts {
			r2, _ = rewind(r, rb)
		}
		if r2 == nil || !sleepCtx(r.Context(), d.wait) {
			t.k.unspent(d)
			err = callerFirst(r.Context(), err)
			t.k.surface(err, dst.String())
			return nil, err
		}
		r, rt = r2, t.fresh
		a.reset()
	}
}

// failure is what the retry rule needs to know of the attempt that failed
// with err; ran says an attempt before it may have reached the server.
func (a *attempt) failure(r *http.Request, rb *replayBody, err error, ran, idempotent bool) failure {
	shook := a.conns == 0 && a.shook.Load() // the connection failed before net/http handed it out
	return failure{
		err: err, retried: ran, callerDone: r.Context().Err() != nil, waited: a.info.WasIdle,
		connFailure: (a.conns > 0 || shook || connErrorOf(err) != nil) && !isDialError(err) && connFailure(err),
		replayable:  replayable(r, rb), nothingLeft: shook || a.wroteNothing(err), answered: a.answered(), idempotent: idempotent,
		handshake: shook, fresh: a.conns == 0 || a.conns == 1 && !a.info.Reused,
	}
}

// callerFirst returns err so that it matches the caller's context error
// when the caller gave up: whatever the connection met as it was torn down
// (a closed body pipe, a reset), the caller's reason wins, as the dial's
// does. The failure stays in the message.
func callerFirst(ctx context.Context, err error) error {
	cerr := ctx.Err()
	if cerr == nil || errors.Is(err, cerr) {
		return err
	}
	e := &ConnError{Op: "read"}
	if errors.As(err, &e) {
		c := *e
		e = &c
	}
	e.Class, e.Err = Classify(cerr), &gaveUp{ctx: cerr, last: err}
	return e
}

// isDialError reports a failed dial: the Dialer already retried a refusal
// within RefusedRetry, and net/http a dial for a request it retried.
func isDialError(err error) bool {
	ce := connErrorOf(err)
	return ce != nil && ce.Op == "dial"
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

// learnFrom gives the learner what an attempt showed: a reused connection
// that answered after an idle gap, one that died after it (the attempt's
// own, or the one net/http gave up before it), or a failure that is no
// evidence of an idle timeout.
func (t *Transport) learnFrom(a *attempt, dst *destName, err error) {
	if a.retired > 0 {
		t.k.retired(rule.RetireIdleLimit, a.retired, dst.String())
	}
	if t.learn.floor < 0 {
		return
	}
	if a.explored {
		t.learn.explored(dst)
	}
	if c := a.prevConn; a.conns > 1 && c != nil {
		if f := c.failure.Load(); f != nil {
			t.learnFailure(dst, f, c)
		}
	}
	switch {
	case err == nil:
		if a.info.Reused && a.info.WasIdle {
			t.learn.answered(dst, a.info.IdleTime)
		}
	case a.conns > 0:
		if ce := connErrorOf(err); ce != nil {
			t.learnFailure(dst, ce, a.conn)
		} else {
			t.learn.noise(dst)
		}
	}
}

// learnFailure takes a failure as evidence: an idle death when a reused
// connection gave nothing back after sitting idle, else noise. A
// connection dies once, however many requests it carried (HTTP/2): only
// the first of its failures to arrive here counts (c, nil when untracked).
func (t *Transport) learnFailure(dst *destName, e *ConnError, c *Conn) {
	switch {
	case e.Op == "validate" && e.Class == ClassCanceled:
		// retired by the client: no news
	case e.Reused && e.quietDeath:
		if c == nil || c.learned.CompareAndSwap(false, true) {
			t.learn.died(dst, e.Idle)
		}
	case connFailure(e):
		t.learn.noise(dst)
	}
}

// CloseIdleConnections closes the idle connections of the transport.
func (t *Transport) CloseIdleConnections() {
	if t.init() == nil {
		t.rt.CloseIdleConnections()
	}
}

func (t *Transport) init() error {
	t.once.Do(func() { t.err = t.build() })
	return t.err
}

// build makes the two transports from Base and the Dialer's settings.
func (t *Transport) build() error {
	t.dialer = t.Dialer
	if t.dialer == nil {
		t.dialer = &zeroDialer
	}
	s, err := t.dialer.settings()
	if err != nil {
		return err
	}
	if err = t.RetryBudget.check("Transport.RetryBudget"); err != nil {
		return err
	}
	o := t.Observer
	if o == nil {
		o = s.observer
	}
	t.k.init("transport", o, s, t.RetryBudget)
	t.learn.init(orDefault(t.LearnFloor, DefaultLearnFloor), s.idleLimit, o)
	rt := t.newBase()
	if t.Base != nil {
		rt = t.Base.Clone()
	}
	rt.DialContext = t.dialer.DialContext
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
	t.rt, t.fresh = rt, rt.Clone()
	t.fresh.DisableKeepAlives = true
	return nil
}

// newBase is net/http's DefaultTransport without its dialer.
func (t *Transport) newBase() *http.Transport {
	return &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		MaxIdleConns:        100,
		TLSHandshakeTimeout: 10 * time.Second,
	}
}

// A destName is the host:port net/http dials for a request without a
// proxy, named once, when first needed.
type destName struct {
	r *http.Request
	s string
}

func (d *destName) String() string {
	if d.s == "" {
		d.s = requestAddr(d.r)
	}
	return d.s
}

// requestAddr is the host:port net/http dials for r without a proxy.
func requestAddr(r *http.Request) string {
	host, port := r.URL.Hostname(), r.URL.Port()
	if port == "" {
		port = "80"
		if r.URL.Scheme == "https" {
			port = "443"
		}
	}
	return net.JoinHostPort(host, port)
}

// An attempt records, through an httptrace.ClientTrace, the connection one
// attempt of a request used, and counts from its checkout. Attempts are
// pooled: the trace's hooks are bound once.
type attempt struct {
	// trace is bound to the attempt once and never written again:
	// net/http reads it after RoundTrip returns (PutIdleConn). traced is
	// context.Background with trace, likewise bound once: a request
	// without a context of its own is sent with it, and the attempt
	// allocates no context for it.
	trace  *httptrace.ClientTrace
	traced context.Context

	ctx      context.Context // the request's, for Retry's accounting
	conn     *Conn           // the tracked connection, when there is one
	info     httptrace.GotConnInfo
	conns    int  // connections the attempt got: more than one means net/http retried
	from     mark // conn's counts when the attempt got it
	prevConn *Conn
	// Set by net/http's goroutines, which may outlive RoundTrip's return.
	firstByte atomic.Int64 // mono time the first byte of the response arrived; 0: none
	waited100 atomic.Int64 // mono time the wait for 100 Continue began; 0: none
	got100    atomic.Bool
	shook     atomic.Bool // a TLS handshake for the attempt failed: the request never left

	// limit is the idle limit learned for the request's destination, zero
	// when none; explore, when not zero, lets a connection idle at least
	// that long past it.
	limit, explore time.Duration
	explored       bool
	retired        time.Duration // the idle time of a connection it retired at handout; 0: none
}

// dueTo is net/http's error for a connection that failed under a request,
// with the failure that explains it; errors.Is and errors.As see both.
type dueTo struct{ err, cause error }

func (e *dueTo) Error() string   { return e.err.Error() + " (after " + e.cause.Error() + ")" }
func (e *dueTo) Unwrap() []error { return []error{e.err, e.cause} }

var attempts = sync.Pool{New: func() any {
	a := &attempt{}
	a.trace = a.newTrace()
	a.traced = httptrace.WithClientTrace(context.Background(), a.trace)
	return a
}}

func (a *attempt) newTrace() *httptrace.ClientTrace {
	return &httptrace.ClientTrace{
		GotConn: a.onGotConn, GotFirstResponseByte: a.onFirstByte,
		Wait100Continue: a.onWait100, Got100Continue: a.onGot100,
		TLSHandshakeDone: a.onHandshake,
	}
}

func (a *attempt) onFirstByte() { a.firstByte.Store(max(mono(), 1)) }
func (a *attempt) onWait100()   { a.waited100.Store(max(mono(), 1)) }
func (a *attempt) onGot100()    { a.got100.Store(true) }

// onHandshake records a TLS handshake that failed under the attempt: a new
// connection reset or closed before its first answer, with nothing of the
// request sent.
func (a *attempt) onHandshake(_ tls.ConnectionState, err error) {
	if err != nil && connFailure(err) {
		a.shook.Store(true)
	}
}
func getAttempt() *attempt        { return attempts.Get().(*attempt) }
func (a *attempt) answered() bool { return a.firstByte.Load() != 0 }
func putAttempt(a *attempt)       { a.reset(); a.limit, a.explore = 0, 0; attempts.Put(a) }

func (a *attempt) reset() {
	a.ctx, a.conn, a.info, a.conns, a.from, a.prevConn, a.explored, a.retired = nil, nil, httptrace.GotConnInfo{}, 0, mark{}, nil, false, 0
	a.firstByte.Store(0)
	a.waited100.Store(0)
	a.got100.Store(false)
	a.shook.Store(false)
}

// run sends r through rt, tracing the connection it gets.
func (a *attempt) run(rt http.RoundTripper, r *http.Request) (*http.Response, error) {
	a.ctx = r.Context()
	var ctx context.Context
	switch {
	case a.ctx == context.Background():
		// The same context as the one made below, made once: it holds
		// nothing but the trace, which is the attempt's for good.
		ctx = a.traced
	case httptrace.ContextClientTrace(a.ctx) != nil:
		// Composing with the caller's trace rewrites the hooks: use a
		// trace of this request's own.
		ctx = httptrace.WithClientTrace(a.ctx, a.newTrace())
	default:
		ctx = httptrace.WithClientTrace(a.ctx, a.trace)
	}
	return rt.RoundTrip(r.WithContext(ctx))
}

// onGotConn is the attempt's checkout: it retires an idle connection that
// outlived the learned limit (its first write then fails with nothing
// written, and net/http takes another) unless the request explores past
// it, starts the piece of work, and counts the connection's bytes from
// here.
func (a *attempt) onGotConn(info httptrace.GotConnInfo) {
	if a.conns > 0 {
		a.prevConn = a.conn
	}
	a.conns++
	a.info = info
	a.info.Conn = nil
	a.conn = Tracked(info.Conn)
	if a.conn == nil {
		noteHandout(a.ctx, nil, info.Conn)
		return
	}
	if info.WasIdle && a.limit > 0 && info.IdleTime >= a.limit {
		if a.explore > 0 && info.IdleTime >= a.explore {
			a.explored = true
		} else {
			a.conn.retire(ErrIdleLimit)
			a.retired = info.IdleTime
		}
	}
	if !info.Reused || info.WasIdle {
		// A new piece of work begins. An HTTP/2 connection that other
		// requests are using keeps the mark of the earliest of them, so
		// that its errors never undercount what left.
		handOut(a.ctx, a.conn, info.Conn)
	} else {
		noteHandout(a.ctx, a.conn, info.Conn)
	}
	a.from = a.conn.mark()
}

// wroteNothing reports whether the attempt put no byte on its connection
// before err: by the attempt's own count, or by the connection's error,
// counted when it failed (a TLS close_notify written on the way out is
// not the request). Unknown (an untracked connection) counts as written.
func (a *attempt) wroteNothing(err error) bool {
	if a.conn == nil {
		return false
	}
	if !a.conn.wroteSince(a.from) {
		return true
	}
	ce := connErrorOf(err)
	return ce != nil && ce.NothingWritten()
}

// wrap returns err as a *ConnError: the tracked connection's own error when
// err carries one, else the connection's first failure (net/http replaces
// it with words of its own: "force closed" on HTTP/2, "server closed idle
// connection"), counted from the attempt's checkout.
func (a *attempt) wrap(err error) error {
	if a.conns == 0 || connErrorOf(err) != nil {
		return err
	}
	c := a.conn
	if c == nil {
		return &ConnError{Op: "read", Class: Classify(err), Reused: a.info.Reused, Idle: a.info.IdleTime, Err: err}
	}
	e := c.errorSince("read", err, a.from, a.info.Reused)
	switch f := c.failure.Load(); {
	case e.Class == ClassOther && f != nil:
		e.Class, e.Err = f.Class, &dueTo{err: err, cause: f.Err}
		e.Op, e.quietDeath, e.diedIdle, e.connectReset, e.untouched = f.Op, f.quietDeath, f.diedIdle, f.connectReset, f.untouched
	case e.Class == ClassOther && c.eof.Load():
		e.Class = ClassPeerClosed // net/http's "server closed idle connection"
	}
	if e.Idle == 0 {
		e.Idle = a.info.IdleTime
	}
	return e
}
