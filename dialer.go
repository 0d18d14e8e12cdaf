package rstpool

import (
	"context"
	"net"
	"strings"
	"time"
	"unsafe"
)

// Defaults a zero Dialer applies. Each is chosen against the published idle
// timeouts of common hops (see Presets).
const (
	// DefaultIdleTimeout is the idle limit when no Chain is declared: three
	// quarters of AWS ALB's 60 s, the smallest idle timeout among the common
	// load balancers and proxies (nginx 75 s, Go's own Transport 90 s).
	DefaultIdleTimeout = 45 * time.Second

	// DefaultKeepAliveIdle is the quiet time before the first keepalive
	// probe: well below the smallest common middlebox idle timeout (Azure
	// LB 4 min; stateful firewalls are often set to 60 s), so flow state
	// is refreshed twice within such a timeout.
	DefaultKeepAliveIdle = 30 * time.Second

	// DefaultKeepAliveInterval is the time between unanswered probes.
	DefaultKeepAliveInterval = 10 * time.Second

	// DefaultKeepAliveCount is how many unanswered probes declare the peer
	// dead: with the defaults above, a dead peer of an idle connection is
	// detected within 60 s instead of Linux's 2 h 11 min.
	DefaultKeepAliveCount = 3

	// DefaultPeekAfter is how long a connection must have been quiet
	// before a Write peeks at its socket. A connection busy at more than 100
	// requests a second never pays the check; an idle one pays about a
	// microsecond once per idle period. Every hop idle timeout is
	// measured in seconds, far above it.
	DefaultPeekAfter = 10 * time.Millisecond

	// DefaultDialTimeout bounds a connect, as net/http's DefaultTransport
	// does; Linux's own SYN retries take over two minutes.
	DefaultDialTimeout = 30 * time.Second

	// DefaultRefusedRetry is how long a refused connect is retried with
	// jittered backoff: it covers a process restart (PostgreSQL and
	// MariaDB restart in one to two seconds here) and still reports a real
	// outage within seconds.
	DefaultRefusedRetry = 3 * time.Second
)

// defaultRefusedBackoff spaces refused connects: it starts short because a
// restarting server usually listens again within a second, doubles up to a
// cap, and draws each wait at random below its step (full jitter), so that
// the clients a restart refused together come back spread out.
var defaultRefusedBackoff = Backoff{Base: 25 * time.Millisecond, Cap: 250 * time.Millisecond}

// A Dialer connects like a net.Dialer and returns tracked connections
// (*Conn) that carry TCP keepalive and TCP_USER_TIMEOUT settings, check
// themselves before the first write after a quiet period, and report every
// failure as a *ConnError.
//
// The zero value is usable and applies the documented defaults. For each
// duration field, zero means its default and a negative value turns the
// feature off. A Dialer is not modified by dialing and is safe for
// concurrent use; bad settings make DialContext return an error that names
// the field.
type Dialer struct {
	// NetDialer, if set, is copied for each connect: its Timeout,
	// Deadline, LocalAddr, Resolver, Control and ControlContext apply; its
	// KeepAlive and KeepAliveConfig are replaced by the fields below. Nil
	// means a net.Dialer with Timeout DefaultDialTimeout.
	NetDialer *net.Dialer

	// Chain declares the hops between the client and the server. The
	// client's own connection ends at the first hop that Terminates it; the
	// hops up to there give the defaults: IdleTimeout Chain.ClientIdleTimeout,
	// KeepAliveIdle Chain.KeepAliveIdle (for the interval in force) and
	// MaxLifetime Chain.MaxLifetime. An IdleTimeout, KeepAliveIdle or
	// MaxLifetime set here that the chain does not allow (a hop on the
	// client's connection would reap or cap it first) is an error; a
	// derived value never is.
	Chain Chain

	// IdleTimeout is the longest a connection may sit idle before the
	// consumer that hands it out (Transport, Pool, WrapConnector, rstpgx)
	// retires it at checkout; a connection a caller holds is never retired
	// under it. Limits reports it to pools with their own idle timers. Zero: Chain.ClientIdleTimeout (DefaultIdleTimeout without
	// a chain). Negative: no limit, an error when a hop on the client's
	// connection reaps idle connections.
	IdleTimeout time.Duration

	// MaxLifetime is the longest a connection may live before the consumer
	// that hands it out retires it at checkout. Zero: Chain.MaxLifetime, the
	// smallest hard cap on the client's own connection, else no limit (no
	// common hop caps connection age). Negative: no limit.
	MaxLifetime time.Duration

	// PeekAfter is how long a connection must be quiet before a Write
	// peeks at its socket first. Zero: DefaultPeekAfter. Negative: never
	// peek.
	PeekAfter time.Duration

	// KeepAliveIdle is the quiet time before the first TCP keepalive
	// probe, a whole number of seconds. Zero: DefaultKeepAliveIdle, lowered
	// in whole seconds to keep the chain's middleboxes fresh (see
	// Chain.KeepAliveIdle). Negative: keepalive off.
	KeepAliveIdle time.Duration

	// KeepAliveInterval is the time between keepalive probes, a whole
	// number of seconds. Zero: DefaultKeepAliveInterval. Ignored when
	// keepalive is off.
	KeepAliveInterval time.Duration

	// KeepAliveCount is how many unanswered probes close the connection,
	// at most 127. Zero: DefaultKeepAliveCount. Ignored when keepalive is
	// off.
	KeepAliveCount int

	// UserTimeout is TCP_USER_TIMEOUT (Linux): how long sent data may stay
	// unacknowledged, and an idle connection's probes unanswered, before
	// the kernel closes the connection with ETIMEDOUT. It bounds a silent
	// black hole. It must exceed KeepAliveIdle + KeepAliveInterval, or one
	// lost probe would kill a healthy connection. Zero: KeepAliveIdle +
	// KeepAliveInterval × KeepAliveCount (the moment keepalive itself would
	// give up; 60 s with the defaults), or 60 s with keepalive off.
	// Negative: not set. Ignored on other systems.
	UserTimeout time.Duration

	// RefusedRetry is how long a refused connect is retried with jittered
	// backoff (RefusedBackoff), within the context's deadline, counted from
	// the first failed connect of the destination's current run of
	// failures, whichever Dialer of the process saw it. A destination whose
	// connects failed for this long is down for this Dialer (see
	// DialContext). Zero: DefaultRefusedRetry. Negative: a refusal is
	// reported at once and a destination is never down.
	RefusedRetry time.Duration

	// RefusedBackoff spaces the retries of a refused connect, and of work
	// whose new connection was reset before its first answer. Zero: 25 ms
	// doubling up to 250 ms, full jitter. The dials of the process that
	// wait to retry one destination share what each retry learns: a step
	// that ends within 10 ms of another dial's connect waits another step
	// instead, and when a connect succeeds the waiting dials go evenly
	// over as long as the run of failed connects lasted (at most 250 ms):
	// the first of each Dialer first, then the others in the order they
	// began to wait.
	RefusedBackoff Backoff

	// Observer, if set, receives the events of this Dialer's connects and
	// of the consumers built on it (Transport, Pool, WrapConnector, rstpgx)
	// that have no Observer of their own. See Event.
	Observer Observer

	// resolved is the *settings of the fields, resolved at the first use
	// (see settings); read and written atomically.
	resolved unsafe.Pointer
}

// Dial connects to the address on the named network.
func (d *Dialer) Dial(network, addr string) (net.Conn, error) {
	return d.DialContext(context.Background(), network, addr)
}

// DialContext connects to the address on the named network and returns a
// *Conn. A failure is a *ConnError with Op "dial"; when ctx ended first,
// it wraps ctx's error, whatever the connects before met.
//
// A refused connect, or one answered by a reset, is retried with jittered
// backoff (RefusedBackoff) for RefusedRetry, counted from the first failed
// connect of the destination's run of failures, whichever Dialer of the
// process saw it; so is work whose new connection was reset before its
// first answer, by the consumer that handed the connection out. The process
// keeps those runs as facts, shared by every Dialer; each Dialer decides
// from its own RefusedRetry what a run means for it. A destination whose
// connects failed for a whole RefusedRetry is down for this Dialer: a
// further dial connects once, as a net.Dialer's would, and a refusal fails
// it at once with a refused *ConnError whose cause is CauseDown, without
// waiting out the budget again; a destination that is back is used again
// by the first dial after its return. Any connect to it that succeeds,
// this Dialer's or another's (a health checker's that closes it unread),
// lets dials go until the next failure. A restart shorter than
// RefusedRetry surfaces nothing, and a health checker with a short
// RefusedRetry does not make the destination down for a service beside it
// with a long one.
func (d *Dialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	s, err := d.settings()
	if err != nil {
		return nil, err
	}
	noteConnecting(ctx)
	start := time.Now()
	nc, err := s.dial(ctx, destKey{network, addr})
	var ce *ConnError
	if err != nil {
		ce = dialError(err, addr)
	}
	if o := s.observer; o != nil {
		e := Event{Kind: EventDial, Source: "dialer", Addr: addr, Duration: time.Since(start)}
		if ce != nil {
			e.Class, e.Cause, e.Err = ce.Class, ce.Cause(), ce.Err
		}
		o(e)
	}
	if ce != nil {
		return nil, ce
	}
	c := newConn(nc, s.peekAfter, s.peek)
	c.dialed = destKey{network, addr}
	noteDialed(ctx, c)
	return c, nil
}

// dialError is the *ConnError of a failed dial: a destination down is a
// refusal (CauseDown), whatever its last failure was.
func dialError(err error, addr string) *ConnError {
	e := &ConnError{Op: "dial", Class: Classify(err), Err: err, Addr: addr}
	if isDown(err) {
		e.Class = ClassRefused
	}
	return e
}

// dial connects through the destination's facts: retrying refusals when
// the destination is not down for this Dialer, with one connect when it
// is; then it records what the connect learned.
func (s *settings) dial(ctx context.Context, k destKey) (net.Conn, error) {
	dst := destinations.lookup(k)
	probe, since := false, time.Time{}
	if dst != nil {
		probe, since = dst.admit(time.Now(), s.refusedRetry)
	}
	c, err := s.connect(ctx, k, dst, probe)
	if dst == nil && err == nil {
		return c, nil
	}
	if dst == nil {
		dst = destinations.lookup(k)
	}
	if dst != nil {
		s.settle(dst, probe, err)
	}
	if probe && err != nil && refusedConnect(err) {
		err = &downError{addr: k.addr, since: since, err: err}
	}
	return c, err
}

// connect connects, retrying a refusal after the Dialer's backoff until
// the run of failures is RefusedRetry old, the destination is down for
// this Dialer, or ctx ends. A probe is one connect.
func (s *settings) connect(ctx context.Context, k destKey, dst *destination, probe bool) (net.Conn, error) {
	nd := s.netDialer(k.network)
	var t turn
	for attempt := 0; ; attempt++ {
		c, err := nd.DialContext(ctx, k.network, k.addr)
		if err == nil || probe || s.refusedRetry <= 0 || !refusedConnect(err) {
			return c, err
		}
		if dst == nil {
			dst = destinations.entry(k, time.Now())
		}
		now := time.Now()
		deadline := dst.refused(now, err).Add(s.refusedRetry)
		if !now.Before(deadline) {
			return nil, err // the run outlasted the budget: down for this Dialer
		}
		wait := min(s.refusedBackoff.Next(attempt), deadline.Sub(now))
		s.observer.emit(Event{Kind: EventDialRetry, Source: "dialer", Addr: k.addr, Duration: wait, Err: err})
		dst.queue(&t, s)
		if attempt, err = s.awaitRetry(ctx, dst, t, attempt, wait, now, deadline, err); err != nil {
			return nil, err
		}
	}
}

// awaitRetry waits out the backoff after the dial's connect failed at
// failed, wait first, a step at a time: until a step ends with the
// destination's retry due (see retryDue), or the destination is back and
// the dial's turn t comes. It returns the attempt whose step it ended in,
// or the error to return: last once the run outlasted the budget
// (deadline) and another dial's connect just failed, a *gaveUp when ctx
// ended.
func (s *settings) awaitRetry(ctx context.Context, dst *destination, t turn, attempt int, wait time.Duration, failed, deadline time.Time, last error) (int, error) {
	for {
		woken, ok := waitRetry(ctx, wait, t.w.back)
		if ok && woken {
			ok = sleepCtx(ctx, t.slot()) && sleepCtx(ctx, t.w.pace(time.Now()))
		}
		if !ok {
			return attempt, &gaveUp{ctx: ctx.Err(), last: last}
		}
		now := time.Now()
		switch {
		case woken || dst.retryDue(now, failed):
			return attempt, nil
		case !now.Before(deadline):
			return attempt, last
		}
		attempt++
		wait = min(s.refusedBackoff.Next(attempt), deadline.Sub(now))
	}
}

// settle records what a connect learned about its destination, and
// reports a destination down for this Dialer once its budget ran out.
func (s *settings) settle(dst *destination, probe bool, err error) {
	now := time.Now()
	switch {
	case probe:
		if err != nil && refusedConnect(err) {
			dst.refused(now, err)
		}
		dst.probeDone()
		if err != nil {
			return
		}
		fallthrough
	case err == nil:
		for _, r := range dst.connected(now) {
			r.s.observer.emit(Event{Kind: EventUp, Source: "dialer", Addr: dst.key.addr, Duration: now.Sub(r.since)})
		}
		destinations.forget(dst)
	case refusedConnect(err) && dst.reportDown(s, now):
		s.observer.emit(Event{Kind: EventDown, Source: "dialer", Addr: dst.key.addr, Class: ClassRefused, Cause: CauseNotListening, Err: err})
	}
}

// refusedConnect reports whether a connect was refused: nothing listened,
// or whatever accepted it reset it at once (a proxy without a healthy
// upstream, a listen queue overflowing under tcp_abort_on_overflow).
func refusedConnect(err error) bool {
	switch Classify(err) {
	case ClassRefused, ClassReset:
		return true
	}
	return false
}

// A gaveUp is the error of a dial whose context ended while it waited to
// retry a refused connect: the caller's reason, with the refusal it met
// in the message only, so that errors.Is(err, context.Canceled) holds and
// no caller retries a dial its own caller gave up.
type gaveUp struct {
	ctx  error
	last error
}

func (e *gaveUp) Error() string { return e.ctx.Error() + " (after " + e.last.Error() + ")" }
func (e *gaveUp) Unwrap() error { return e.ctx }

// netDialer is the net.Dialer for one connect: the Dialer's keepalive and
// user timeout on TCP.
func (s *settings) netDialer(network string) *net.Dialer {
	if !isTCP(network) {
		nd := s.net
		return &nd
	}
	return &s.tcp
}

func isTCP(network string) bool { return strings.HasPrefix(network, "tcp") }

// Limits returns the idle limit and maximum lifetime the consumers of the
// Dialer's connections enforce at checkout, defaults resolved; zero means
// no limit. Pools that keep their own idle timers (pgxpool, go-redis,
// database/sql) take them from here. The error is the one DialContext
// would return.
func (d *Dialer) Limits() (idle, lifetime time.Duration, err error) {
	s, err := d.settings()
	if err != nil {
		return 0, 0, err
	}
	return max(s.idleLimit, 0), max(s.maxLifetime, 0), nil
}

// Refused returns how the Dialer retries a refused connect, defaults
// resolved: for how long (zero when a refusal is final) and with which
// backoff. Clients that retry their own connects (rstpgx while PostgreSQL
// starts up) wait the same way. The error is the one DialContext would
// return.
func (d *Dialer) Refused() (budget time.Duration, b Backoff, err error) {
	s, err := d.settings()
	if err != nil {
		return 0, Backoff{}, err
	}
	return max(s.refusedRetry, 0), s.refusedBackoff, nil
}

// Down reports whether addr is down for this Dialer: its connects failed
// for at least RefusedRetry, lately enough that a dial would now fail at
// once but for a probe.
func (d *Dialer) Down(network, addr string) bool {
	s, err := d.settings()
	if err != nil {
		return false
	}
	dst := destinations.lookup(destKey{network, addr})
	if dst == nil {
		return false
	}
	dst.mu.Lock()
	defer dst.mu.Unlock()
	return dst.downFor(time.Now(), s.refusedRetry)
}
