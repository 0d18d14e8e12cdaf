package rstpool

import (
	"context"
	"net"
	"strings"
	"time"
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

	// DefaultValidateAfter is how long a connection must have been quiet
	// before a Write checks it. A connection busy at more than 100
	// requests a second never pays the check; an idle one pays about a
	// microsecond once per idle period. Every hop idle timeout is
	// measured in seconds, far above it.
	DefaultValidateAfter = 10 * time.Millisecond

	// DefaultDialTimeout bounds a connect, as net/http's DefaultTransport
	// does; Linux's own SYN retries take over two minutes.
	DefaultDialTimeout = 30 * time.Second

	// DefaultRefusedRetry is how long a refused connect is retried with
	// jittered backoff: it covers a process restart (PostgreSQL and
	// MariaDB restart in one to two seconds here) and still reports a real
	// outage within seconds.
	DefaultRefusedRetry = 3 * time.Second
)

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

	// ValidateAfter is how long a connection must be quiet before a Write
	// peeks at its socket first. Zero: DefaultValidateAfter. Negative:
	// never peek; a Write fails first only when a Read already returned
	// the peer's FIN.
	ValidateAfter time.Duration

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
	// backoff, within the context's deadline. Zero: DefaultRefusedRetry.
	// Negative: a refusal is reported at once.
	RefusedRetry time.Duration

	// Observer, if set, receives the events of this Dialer's connects and
	// of the consumers built on it (Transport, Pool, WrapConnector, rstpgx)
	// that have no Observer of their own. See Event.
	Observer Observer
}

// Dial connects to the address on the named network.
func (d *Dialer) Dial(network, addr string) (net.Conn, error) {
	return d.DialContext(context.Background(), network, addr)
}

// DialContext connects to the address on the named network and returns a
// *Conn. A failure is a *ConnError with Op "dial".
//
// A refused connect is retried with jittered backoff for RefusedRetry. A
// destination whose connects were refused for that whole budget is down,
// for every Dialer in the process: further dials to it fail at once with a
// refused *ConnError whose cause is CauseDown, until a single probe dial
// (one at a time, jittered, backing off to 2 s) connects again. So a
// driver's own connect retries cost one budget per outage, not one each;
// a restart shorter than the budget still surfaces nothing.
func (d *Dialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	s, err := d.settings()
	if err != nil {
		return nil, err
	}
	start := time.Now()
	nc, err := s.dial(ctx, network, addr, d.Observer)
	var ce *ConnError
	if err != nil {
		ce = &ConnError{Op: "dial", Class: Classify(err), Err: err, Addr: addr}
	}
	if o := d.Observer; o != nil {
		e := Event{Kind: EventDial, Source: "dialer", Addr: addr, Duration: time.Since(start)}
		if ce != nil {
			e.Class, e.Cause, e.Err = ce.Class, ce.Cause(), err
		}
		o(e)
	}
	if ce != nil {
		return nil, ce
	}
	c := newConn(nc, s.validateAfter, s.peek)
	noteDialed(ctx, c)
	return c, nil
}

// policy is what a Dialer's consumers apply, resolved once per dial: the
// limits at checkout and the quiet spell after which a Conn checks itself.
type policy struct {
	idleLimit     time.Duration // <= 0: none
	maxLifetime   time.Duration // <= 0: none
	validateAfter time.Duration // quiet time after which a Write checks first
	peek          bool          // check the socket, not only what a read saw
}

// settings are a Dialer's fields with defaults resolved and checked.
type settings struct {
	policy
	net          net.Dialer
	keepAlive    net.KeepAliveConfig
	userTimeout  time.Duration // <= 0: not set
	refusedRetry time.Duration // <= 0: none
}

// dial connects through the destination's state: it fails at once when
// the destination is down (but for the one probe), and takes it down when
// its refusals outlast the budget, or up when a connect succeeds.
func (s *settings) dial(ctx context.Context, network, addr string, o Observer) (net.Conn, error) {
	r := &redial{nd: s.netDialer(network), network: network, addr: addr,
		key: destinationKey(network, addr), budget: s.refusedRetry, observer: o}
	probe := false
	if r.dst = lookupDestination(r.key); r.dst != nil {
		var err error
		if probe, err = r.dst.admit(addr, time.Now()); err != nil {
			return nil, err
		}
		if probe {
			r.budget = 0 // a probe is one connect
		}
	}
	c, exhausted, err := r.dial(ctx)
	if dst := r.dst; dst != nil {
		s.settle(dst, r, probe, exhausted, err, o)
	}
	return c, err
}

// settle records what a dial learned about its destination.
func (s *settings) settle(dst *destination, r *redial, probe, exhausted bool, err error, o Observer) {
	now := time.Now()
	switch {
	case err == nil:
		if down := dst.markUp(now); down > 0 {
			o.emit(Event{Kind: EventUp, Source: "dialer", Addr: r.addr, Duration: down})
		}
		dst.forget(r.key)
	case probe:
		dst.probeFailed(now)
	case exhausted && dst.markDown(now, err):
		o.emit(Event{Kind: EventDown, Source: "dialer", Addr: r.addr, Class: ClassRefused, Cause: CauseNotListening, Err: err})
	}
}

// netDialer is the net.Dialer for one connect: the Dialer's keepalive and
// user timeout on TCP.
func (s *settings) netDialer(network string) *net.Dialer {
	nd := s.net
	if isTCP(network) {
		nd.KeepAliveConfig = s.keepAlive
		nd.KeepAlive = -1
		if !s.keepAlive.Enable {
			nd.KeepAliveConfig = net.KeepAliveConfig{}
		}
		nd.Control, nd.ControlContext = withUserTimeout(s.net.Control, s.net.ControlContext, s.userTimeout)
	}
	return &nd
}

func isTCP(network string) bool { return strings.HasPrefix(network, "tcp") }

// Limits returns the idle limit and maximum lifetime the Dialer's
// connections enforce, defaults resolved; zero means no limit. Pools that
// keep their own idle timers (pgxpool, go-redis, database/sql) take them
// from here. The error is the one DialContext would return.
func (d *Dialer) Limits() (idle, lifetime time.Duration, err error) {
	s, err := d.settings()
	if err != nil {
		return 0, 0, err
	}
	return max(s.idleLimit, 0), max(s.maxLifetime, 0), nil
}
