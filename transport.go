package rstpool

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"net/http/httptrace"
	"sync"
	"time"
)

// Defaults a zero Transport applies.
const (
	// DefaultMaxBufferedBody is the largest request body without GetBody
	// that a Transport reads into memory so that a retry can send it
	// again: 64 KiB covers typical JSON and form posts; larger bodies are
	// streamed and never retried after a byte of them left.
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
	// no frame before the client pings it: a third of DefaultIdleTimeout,
	// so a silently dropped connection is found while it is still pooled.
	DefaultHTTP2PingAfter = 15 * time.Second

	// DefaultHTTP2PingTimeout is how long a ping may go unanswered before
	// the connection is closed.
	DefaultHTTP2PingTimeout = 5 * time.Second
)

// DefaultRetryMethods are the methods RFC 9110 (section 9.2.2) and the
// QUERY method define as idempotent: repeating one has the effect of
// sending it once.
var DefaultRetryMethods = []string{"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE", "QUERY"}

// Transport is an http.RoundTripper for HTTP/1.1 and HTTP/2 that dials
// through a Dialer, keeps connections below every hop's idle timeout,
// learns a destination's idle timeout from the resets it causes, and
// retries a request that failed on a reused connection once, on a new
// connection, when that cannot duplicate it (see RetryReason).
//
// The zero value is usable. A Transport must not be copied after first
// use and is safe for concurrent use. Its fields must not change after
// the first request.
type Transport struct {
	// Base is the transport requests go through. Nil: a transport like
	// net/http's DefaultTransport that dials through Dialer, with its
	// IdleConnTimeout set to the Dialer's idle limit, HTTP/2 health pings
	// and ExpectContinueTimeout set. Non-nil: Base is cloned, never
	// modified; the clone dials through Dialer (its DialContext is
	// replaced), its IdleConnTimeout is lowered to the Dialer's idle
	// limit, and HTTP2 pings and ExpectContinueTimeout are set when zero.
	// DialTLSContext is kept: connections it makes are not tracked.
	Base *http.Transport

	// Dialer dials every connection. Nil: a zero Dialer (its defaults).
	Dialer *Dialer

	// RetryMethods are the methods retried after a failure that may have
	// reached the server. Nil: DefaultRetryMethods. A request carrying an
	// Idempotency-Key or X-Idempotency-Key header counts as idempotent
	// whatever its method.
	RetryMethods []string

	// MaxBufferedBody is the largest request body without GetBody that is
	// buffered so it can be replayed. Zero: DefaultMaxBufferedBody.
	// Negative: never buffer (such requests are never retried).
	MaxBufferedBody int64

	// ExpectContinueBody is the body size above which requests send
	// "Expect: 100-continue"; bodies of unknown length count as large when
	// they are not buffered. Zero: DefaultExpectContinueBody. Negative:
	// never added.
	ExpectContinueBody int64

	// HTTP2PingAfter and HTTP2PingTimeout set the HTTP/2 health check
	// (http.HTTP2Config SendPingTimeout and PingTimeout) when Base has no
	// HTTP2 config. Zero: DefaultHTTP2PingAfter and
	// DefaultHTTP2PingTimeout. A negative HTTP2PingAfter turns pings off.
	HTTP2PingAfter   time.Duration
	HTTP2PingTimeout time.Duration

	// LearnFloor is the smallest idle limit the Transport learns for a
	// destination (see Stats.LearnedIdle); idle gaps shorter than it are
	// not taken as a hop's timeout. Zero: DefaultLearnFloor. Negative: no
	// learning.
	LearnFloor time.Duration

	// Observer receives the Transport's events (retries, failures that
	// reach the caller, learned limits). Nil: the Dialer's Observer.
	Observer Observer

	once  sync.Once
	err   error           // a bad setting, reported by every RoundTrip
	rt    *http.Transport // the transport for first attempts
	fresh *http.Transport // the transport for retries: no keep-alive
	set   *settings       // the Dialer's resolved settings
	stats transportCounters
	learn learner
}

// RoundTrip sends the request, retrying it once on a new connection when
// the first attempt failed on a reused connection and the retry policy
// allows it. A failure is reported as a *ConnError wrapping the
// underlying error, unless no connection was involved.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if err := t.init(); err != nil {
		closeBody(req)
		return nil, err
	}
	t.stats.requests.Add(1)
	r, err := t.prepare(req)
	if err != nil {
		return nil, err
	}
	a := getAttempt()
	defer putAttempt(a)
	t.learn.prepare(a, r)
	resp, err := a.run(t.rt, r)
	t.noteFailure(r, a, err)
	if err == nil {
		return t.done(req, resp), nil
	}
	if reason := t.retryReason(r, a, err); reason != RetryNone {
		if resp, err = t.retry(r, a, reason); err == nil {
			return t.done(req, resp), nil
		}
	}
	err = a.wrap(err)
	t.stats.errors[Classify(err)].Add(1)
	return nil, err
}

// done gives the caller's request back in the response, as net/http does.
func (t *Transport) done(req *http.Request, resp *http.Response) *http.Response {
	resp.Request = req
	return resp
}

// retry runs the second and last attempt on a new connection.
func (t *Transport) retry(r *http.Request, a *attempt, reason RetryReason) (*http.Response, error) {
	r2, err := rewind(r)
	if err != nil {
		return nil, err
	}
	t.stats.retries[reason].Add(1)
	a.reset()
	return a.run(t.fresh, r2)
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
	if s, err = t.dialer().settings(); err != nil {
		return nil, nil, nil, err
	}
	t.learn.floor = orDefault(t.LearnFloor, DefaultLearnFloor)
	t.learn.base = s.idleLimit
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
		rt.HTTP2 = t.http2Config()
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

func (t *Transport) http2Config() *http.HTTP2Config {
	after := orDefault(t.HTTP2PingAfter, DefaultHTTP2PingAfter)
	if after < 0 {
		return nil
	}
	return &http.HTTP2Config{
		SendPingTimeout: after,
		PingTimeout:     orDefault(t.HTTP2PingTimeout, DefaultHTTP2PingTimeout),
	}
}

// dial dials with the idle limit learned for the destination, if any.
func (t *Transport) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	d := t.dialer()
	if limit, ok := t.learn.limit(addr); ok {
		dd := *d
		dd.IdleTimeout = limit
		d = &dd
	}
	return d.DialContext(ctx, network, addr)
}

// trackedConn finds the *Conn behind a connection net/http reports.
func trackedConn(nc net.Conn) *Conn {
	for i := 0; i < 4 && nc != nil; i++ {
		switch c := nc.(type) {
		case *Conn:
			return c
		case *tls.Conn:
			nc = c.NetConn()
		default:
			return nil
		}
	}
	return nil
}

// An attempt records, through an httptrace.ClientTrace, the connection one
// attempt of a request used. Attempts are pooled: the trace's hook is bound
// once.
type attempt struct {
	// trace is bound to the attempt once and never written again:
	// net/http reads it after RoundTrip returns (PutIdleConn).
	trace *httptrace.ClientTrace

	conn     *Conn // the tracked connection, when there is one
	info     httptrace.GotConnInfo
	conns    int   // connections the attempt got: more than one means net/http retried
	written0 int64 // conn's bytes written when the attempt got it
	read0    int64
	prev     httptrace.GotConnInfo // the connection before the last, when conns > 1
	prevConn *Conn

	// learnedIdle is the idle limit learned for the request's
	// destination, zero when none.
	learnedIdle time.Duration
}

var attempts = sync.Pool{New: func() any {
	a := &attempt{}
	a.trace = &httptrace.ClientTrace{GotConn: a.onGotConn}
	return a
}}

func getAttempt() *attempt { return attempts.Get().(*attempt) }

func putAttempt(a *attempt) {
	a.reset()
	attempts.Put(a)
}

func (a *attempt) reset() {
	tr := a.trace
	*a = attempt{trace: tr}
}

// run sends r through rt, tracing the connection it gets.
func (a *attempt) run(rt http.RoundTripper, r *http.Request) (*http.Response, error) {
	tr := a.trace
	if httptrace.ContextClientTrace(r.Context()) != nil {
		// Composing with the caller's trace rewrites the hooks: use a
		// trace of this request's own.
		tr = &httptrace.ClientTrace{GotConn: a.onGotConn}
	}
	ctx := httptrace.WithClientTrace(r.Context(), tr)
	return rt.RoundTrip(r.WithContext(ctx))
}

func (a *attempt) onGotConn(info httptrace.GotConnInfo) {
	if a.conns > 0 {
		a.prev, a.prevConn = a.info, a.conn
	}
	a.conns++
	a.info = info
	a.info.Conn = nil
	a.conn = trackedConn(info.Conn)
	if a.conn == nil {
		return
	}
	if !info.Reused || a.conn.uses.Load() == 0 {
		a.conn.MarkUsed() // the dial's own checkout
	}
	if info.Reused {
		a.conn.MarkUsed()
	}
	a.written0 = a.conn.nwritten.Load()
	a.read0 = a.conn.nread.Load()
	a.applyLearned()
}

// reused reports whether the attempt's connection had served a request or
// waited in the idle pool: either way it may have died while it waited.
func (a *attempt) reused() bool { return a.conns > 0 && (a.info.Reused || a.info.WasIdle) }

// wroteNothing reports whether the attempt put no byte on its connection.
// Unknown (an untracked connection) counts as written.
func (a *attempt) wroteNothing() bool {
	return a.conn != nil && a.conn.nwritten.Load() == a.written0
}

// wrap returns err as a *ConnError: the tracked connection's own error when
// err carries one, else err with what the attempt knows of its connection.
func (a *attempt) wrap(err error) error {
	var ce *ConnError
	if errors.As(err, &ce) || a.conns == 0 {
		return err
	}
	e := &ConnError{Op: "read", Class: Classify(err), Reused: a.info.Reused, Idle: a.info.IdleTime, Err: err}
	if c := a.conn; c != nil {
		if e.Class == ClassOther && c.eof.Load() {
			e.Class = ClassPeerClosed // net/http's "server closed idle connection"
		}
		e.Written = c.nwritten.Load() - a.written0
		e.readBack = c.nread.Load() - a.read0
		e.Age = time.Duration(mono() - c.created)
		e.Addr = remote(c.nc)
		e.afterIdle = a.info.WasIdle && a.info.IdleTime >= c.pol.validateAfter
	}
	return e
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		_ = req.Body.Close()
	}
}
