package rstpool

import (
	"context"
	"net"
	"runtime"
	"time"

	"github.com/rstpool/rstpool/internal/rule"
)

// Defaults a zero PoolConfig applies, beyond those it takes from its Dialer.
const (
	// DefaultPingAfter is the idleness beyond which a checkout pings a
	// connection (Pool with a Ping, WrapConnector, rstpgx) even though a
	// peek found it alive. A peek sees a FIN or an RST at once; what it
	// cannot see is a peer that vanished without either (a black hole, a
	// host that lost power), which TCP keepalive reports within
	// DefaultKeepAliveIdle. Pinging past that point costs one round trip
	// per long idle period.
	DefaultPingAfter = DefaultKeepAliveIdle

	// DefaultPingTimeout bounds one ping. A loopback or in-zone round trip
	// takes well under a millisecond; a peer slower than a second is
	// treated as gone.
	DefaultPingTimeout = time.Second

	// DefaultUpkeepInterval is the longest an idle connection goes without
	// a visit of background upkeep, a peek for a FIN or an RST: a
	// connection whose peer closed it sits in CLOSE_WAIT at most this long,
	// and a process with 10,000 idle pools spends about 0.1 % of a core on
	// the visits. Idle limits, lifetimes and keepalive pings are visited
	// when they are due, not on this period.
	DefaultUpkeepInterval = 30 * time.Second

	// DefaultUpkeepPings bounds the pings one visit of a pool sends, so that
	// a visit's cost stays bounded however many connections sit idle. The
	// rest wait for the next visit; peeks, a microsecond each, are not
	// bounded.
	DefaultUpkeepPings = 32
)

// zeroDialer is the Dialer of pools configured without one. A zero
// Dialer's settings are the same for every pool, so they share one copy
// of them: with 10,000 pools, a copy each would cost 6 MB.
var zeroDialer Dialer

// maxRefillBackoff caps the pause between refills of MinIdle while dials
// fail: the server is down, and a pool must not hammer it.
const maxRefillBackoff = 30 * time.Second

// A PoolConfig configures a Pool. The zero value of every field but Addr
// (or Dial) is usable and applies the documented default. For durations,
// zero means the default and a negative value turns the feature off,
// unless the field says otherwise. NewPool does not modify the PoolConfig.
type PoolConfig struct {
	// Network is the network to dial Addr on. Zero: "tcp".
	Network string

	// Addr is the address the pool dials. Required unless Dial is set.
	Addr string

	// Dialer dials Addr when Dial is nil. Nil: a zero Dialer. Its idle
	// limit and lifetime (derived from its Chain) are the defaults of
	// IdleTimeout and MaxLifetime even when Dial is set.
	Dialer *Dialer

	// Dial, if set, opens the pool's connections instead of Dialer. A
	// connection with no *Conn under it (see Tracked) still works, but the
	// pool can only apply the lifetime, idle and ping checks to it: it
	// cannot peek at its socket, and Do knows whether a request was written
	// only from a *ConnError. A *tls.Conn over a Dialer's *Conn is peeked
	// at through it: bytes waiting under TLS may be the server's session
	// tickets, so they are pinged through (with a Ping) or left alone, never
	// taken for a stream out of step.
	Dial func(ctx context.Context) (net.Conn, error)

	// MaxSize is the most connections the pool holds, idle and in use.
	// Zero: the larger of 4 and runtime.NumCPU(), as pgxpool.
	MaxSize int32

	// MinIdle is how many idle connections upkeep keeps open while the
	// pool is in use, dialing with backoff while dials fail. Zero: none.
	// At most MaxSize. Upkeep opens them at NewPool, and replaces those
	// closed or checked out at its next visit of the pool (at the latest
	// an UpkeepInterval later).
	//
	// A pool that handed out no connection for a whole IdleTimeout rests:
	// its idle connections still close at the limit, but are not replaced,
	// since each replacement would only expire unused in turn (a dial per
	// IdleTimeout, about 70 µs of the client's CPU on loopback: 1.5 % of a
	// core for 10,000 pools at the default limit). Its next Acquire dials
	// its own connection, as without MinIdle, and upkeep refills MinIdle at
	// once. Without an idle limit, or with KeepAliveInterval (a ping keeps
	// an idle connection for a round trip), a pool never rests: MinIdle is
	// kept whether the pool is used or not.
	MinIdle int32

	// IdleTimeout is the longest a connection may stay in the pool
	// without traffic (a request or a ping) before the pool closes it;
	// it is checked at every Acquire, not only by upkeep. Zero: the
	// Dialer's idle limit (from its Chain, else DefaultIdleTimeout).
	// Negative: no limit.
	IdleTimeout time.Duration

	// MaxLifetime is the longest a connection may live. Zero: the
	// Dialer's (its Chain's hard cap, else none). Negative: no limit.
	MaxLifetime time.Duration

	// LifetimeJitter spreads the end of connections' lives so that they
	// are not all replaced at once: each connection's lifetime is
	// MaxLifetime shortened by a random duration below LifetimeJitter.
	// Jitter only ever shortens, so no connection outlives a hop's hard
	// cap. Zero: a tenth of MaxLifetime. Negative: none. Ignored without
	// MaxLifetime.
	LifetimeJitter time.Duration

	// Ping sends the protocol's cheapest request on c and reads the
	// answer. The pool sets c's deadline to ctx's around the call. Nil:
	// the pool never pings and relies on the lifetime and idle limits and
	// the peek.
	Ping func(ctx context.Context, c net.Conn) error

	// Wrap, if set, is called once for each new connection, after it is
	// dialed; the pool then hands out the net.Conn it returns (to Do's fn,
	// PooledConn.Conn and Ping) for the connection's whole life, and closes
	// it to retire the connection. Embed the connection in a type of your
	// own that holds what the protocol keeps per connection (a
	// bufio.Reader, a parser), and give it a Close that says goodbye (a
	// QUIT) if the protocol has one. Nil: the dialed connection itself.
	Wrap func(c net.Conn) net.Conn

	// PingTimeout bounds one ping. Zero: DefaultPingTimeout.
	PingTimeout time.Duration

	// PingAfter is the idleness beyond which Acquire pings a connection
	// before handing it out. Zero: DefaultPingAfter. Negative: Acquire
	// pings only when a peek cannot tell. Ignored without Ping.
	PingAfter time.Duration

	// PeekAfter is the idleness beyond which Acquire peeks at a *Conn's
	// socket (about a microsecond) before handing it out. Zero:
	// DefaultPeekAfter, the window after which a *Conn checks itself.
	// Negative: Acquire never peeks (upkeep still does).
	PeekAfter time.Duration

	// KeepAliveInterval makes upkeep ping connections idle for that long,
	// which keeps them open through hops that reap idle connections and
	// resets the pool's own idle clock: a connection kept alive lives
	// until MaxLifetime. It must be below IdleTimeout. Zero: no keepalive
	// pings. Requires Ping.
	KeepAliveInterval time.Duration

	// UpkeepInterval is the longest an idle connection goes without a visit
	// of background upkeep, which peeks at it. Upkeep is one for the whole
	// process, and visits a pool when something of it is due: a peek, an
	// idle limit or a lifetime ending, a keepalive ping, a MinIdle refill;
	// at rest it costs no goroutine and no ticker per pool. Zero:
	// DefaultUpkeepInterval, at most IdleTimeout. Negative: no background
	// upkeep (the checks at Acquire still run).
	UpkeepInterval time.Duration

	// UpkeepPings bounds the pings one upkeep visit sends. Zero:
	// DefaultUpkeepPings.
	UpkeepPings int

	// RetryBudget bounds Do's retries (see RetryBudget). Zero: the
	// defaults.
	RetryBudget RetryBudget

	// Observer receives the pool's events (retirements, dead connections
	// caught, retries, failures that reach the caller). Nil: the Dialer's
	// Observer.
	Observer Observer
}

// poolSettings is a PoolConfig with defaults resolved and checked.
type poolSettings struct {
	dial              func(ctx context.Context) (net.Conn, error)
	maxSize, minIdle  int32
	idleTimeout       time.Duration // <= 0: none
	maxLifetime       time.Duration // <= 0: none
	jitter            time.Duration // <= 0: none
	ping              func(ctx context.Context, c net.Conn) error
	wrap              func(c net.Conn) net.Conn
	pingTimeout       time.Duration
	pingAfter         time.Duration // < 0: only when a peek cannot tell
	peekAfter         time.Duration // < 0: never at Acquire
	keepAliveInterval time.Duration // <= 0: none
	upkeepInterval    time.Duration // < 0: no upkeep
	restAfter         time.Duration // unused this long, the pool stops refilling MinIdle; 0: never
	upkeepPings       int
	observer          Observer
	dialer            *settings // the Dialer's: how to wait out a connect reset
	addr              string    // PoolConfig.Addr, for events

	// The checkout rule's limits at Acquire and in upkeep.
	acquireLimits, upkeepLimits rule.Limits
}

func (cfg *PoolConfig) settings() (*poolSettings, error) {
	s := &poolSettings{ping: cfg.Ping, wrap: cfg.Wrap, addr: cfg.Addr}
	steps := [...]func(*poolSettings) error{cfg.dialSettings, cfg.sizes, cfg.lifetimes, cfg.checks, cfg.upkeep}
	for _, step := range steps {
		if err := step(s); err != nil {
			return nil, err
		}
	}
	if err := cfg.RetryBudget.check("PoolConfig.RetryBudget"); err != nil {
		return nil, err
	}
	s.limits()
	return s, nil
}

// limits sets the checkout rule's limits: at Acquire, a peek after
// PeekAfter and a ping after PingAfter; in upkeep, always a peek, and a
// ping when the keepalive interval is due.
func (s *poolSettings) limits() {
	s.acquireLimits = rule.Limits{IdleLimit: s.idleTimeout, PeekAfter: s.peekAfter, PingAfter: s.pingAfter, CanPing: s.ping != nil}
	s.upkeepLimits = rule.Limits{IdleLimit: s.idleTimeout, PeekAfter: 0, PingAfter: -1, CanPing: s.ping != nil}
	if s.keepAliveInterval > 0 {
		s.upkeepLimits.PingAfter = s.keepAliveInterval
	}
}

// dialSettings resolves the dial function and the limits the Dialer
// implies.
func (cfg *PoolConfig) dialSettings(s *poolSettings) error {
	d := cfg.Dialer
	if d == nil {
		d = &zeroDialer
	}
	ds, err := d.settings()
	if err != nil {
		return err
	}
	s.observer, s.dialer = cfg.Observer, ds
	if s.observer == nil {
		s.observer = ds.observer
	}
	s.idleTimeout, s.maxLifetime = ds.idleLimit, ds.maxLifetime
	if cfg.IdleTimeout > 0 && len(d.Chain) > 0 {
		if err := d.Chain.Check(cfg.IdleTimeout); err != nil {
			return configErr("PoolConfig.IdleTimeout", "%s outlives the Dialer's chain: %v", cfg.IdleTimeout, err)
		}
	}
	s.dial = cfg.Dial
	if s.dial != nil {
		return nil
	}
	if cfg.Addr == "" {
		return configErr("PoolConfig.Addr", "is required when Dial is nil")
	}
	network, addr := cfg.Network, cfg.Addr // not cfg: the closure would keep a copy of it all
	if network == "" {
		network = "tcp"
	}
	s.dial = func(ctx context.Context) (net.Conn, error) { return d.DialContext(ctx, network, addr) }
	return nil
}

func (cfg *PoolConfig) sizes(s *poolSettings) error {
	s.maxSize = cfg.MaxSize
	if s.maxSize == 0 {
		s.maxSize = int32(max(4, runtime.NumCPU()))
	}
	switch {
	case s.maxSize < 0:
		return configErr("PoolConfig.MaxSize", "%d must not be negative", cfg.MaxSize)
	case cfg.MinIdle < 0 || cfg.MinIdle > s.maxSize:
		return configErr("PoolConfig.MinIdle", "%d must be between 0 and MaxSize (%d)", cfg.MinIdle, s.maxSize)
	}
	s.minIdle = cfg.MinIdle
	return nil
}

// lifetimes resolves the idle timeout, lifetime and jitter; s holds the
// Dialer's values as defaults.
func (cfg *PoolConfig) lifetimes(s *poolSettings) error {
	if cfg.IdleTimeout != 0 {
		s.idleTimeout = cfg.IdleTimeout
	}
	if cfg.MaxLifetime != 0 {
		s.maxLifetime = cfg.MaxLifetime
	}
	s.jitter = cfg.LifetimeJitter
	if s.jitter == 0 {
		s.jitter = s.maxLifetime / 10
	}
	if s.maxLifetime > 0 && s.jitter >= s.maxLifetime {
		return configErr("PoolConfig.LifetimeJitter", "%s must be below MaxLifetime (%s)", cfg.LifetimeJitter, s.maxLifetime)
	}
	return nil
}

func (cfg *PoolConfig) checks(s *poolSettings) error {
	s.pingTimeout = orDefault(cfg.PingTimeout, DefaultPingTimeout)
	s.pingAfter = orDefault(cfg.PingAfter, DefaultPingAfter)
	s.peekAfter = orDefault(cfg.PeekAfter, DefaultPeekAfter)
	s.keepAliveInterval = cfg.KeepAliveInterval
	switch {
	case s.pingTimeout < 0:
		return configErr("PoolConfig.PingTimeout", "%s must not be negative", cfg.PingTimeout)
	case s.keepAliveInterval < 0:
		return configErr("PoolConfig.KeepAliveInterval", "%s must not be negative (zero turns keepalive off)", cfg.KeepAliveInterval)
	case s.keepAliveInterval > 0 && cfg.Ping == nil:
		return configErr("PoolConfig.KeepAliveInterval", "%s needs a Ping to send", cfg.KeepAliveInterval)
	case s.keepAliveInterval > 0 && s.idleTimeout > 0 && s.keepAliveInterval >= s.idleTimeout:
		return configErr("PoolConfig.KeepAliveInterval", "%s must be below IdleTimeout (%s), or connections expire before their ping",
			cfg.KeepAliveInterval, s.idleTimeout)
	}
	return nil
}

func (cfg *PoolConfig) upkeep(s *poolSettings) error {
	s.upkeepPings = cfg.UpkeepPings
	if s.upkeepPings == 0 {
		s.upkeepPings = DefaultUpkeepPings
	}
	if s.upkeepPings < 0 {
		return configErr("PoolConfig.UpkeepPings", "%d must not be negative", cfg.UpkeepPings)
	}
	s.upkeepInterval = cfg.UpkeepInterval
	if s.upkeepInterval == 0 {
		s.upkeepInterval = DefaultUpkeepInterval
		if s.idleTimeout > 0 {
			s.upkeepInterval = min(s.upkeepInterval, s.idleTimeout)
		}
		s.upkeepInterval = max(s.upkeepInterval, time.Millisecond)
	}
	// An unused pool rests only where MinIdle would churn: its connections
	// expire while idle, and no keepalive ping keeps them.
	if s.minIdle > 0 && s.idleTimeout > 0 && s.keepAliveInterval <= 0 && s.upkeepInterval > 0 {
		s.restAfter = s.idleTimeout
	}
	return nil
}
