package rstpool

import (
	"context"
	"database/sql/driver"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rstpool/rstpool/internal/rule"
)

// WrapConnector returns a driver.Connector whose connections are checked at
// checkout, for use with sql.OpenDB. The driver behind c must dial through
// d: pgx's stdlib with ConnConfig.DialFunc set to d.DialContext (or
// rstpgx.OpenDB), go-sql-driver/mysql with mysql.RegisterDialContext. A
// connection its driver did not dial through an rstpool Dialer (with the
// context Connect received) makes Connect fail with a *ConfigError: nothing
// could be checked.
//
// At checkout (ResetSession, which database/sql calls before it reuses a
// connection) the checkout rule retires a connection that outlived d's idle
// limit or lifetime, or whose peer a peek finds gone, with
// driver.ErrBadConn, and pings it through the driver (driver.Pinger) when a
// peek cannot know: data pending, no peek on this platform, or idle beyond
// DefaultPingAfter. database/sql then closes it through the driver, which
// says goodbye to the server (pgx's Terminate, MySQL's COM_QUIT), takes
// another, and after two bad ones a new one, so the caller sees no error.
// A connection the caller holds (a transaction, a sql.Conn, a LISTEN) is
// never checked until it is handed out again.
//
// Each statement is a piece of work of its own, on a connection held or
// not: ConnError.Written counts from its start. A statement that failed
// before a byte of it left (the connection's count of bytes written did
// not move) is returned as an error that matches driver.ErrBadConn and
// still wraps the original, so database/sql retries it on another
// connection. No other error is changed. A connect whose new connection
// was reset before the server answered (a proxy with no healthy upstream,
// an overflowing accept queue) is retried like a refused connect, within
// the Dialer's RefusedRetry.
//
// The connections expose every context interface of database/sql/driver
// (QueryerContext, ExecerContext, ConnPrepareContext, ConnBeginTx, Pinger,
// SessionResetter, Validator, NamedValueChecker). Where the driver's
// connection lacks one, the wrapper falls back exactly as database/sql
// would without it: to the legacy Queryer/Execer, else driver.ErrSkip (so
// database/sql prepares a statement); to Prepare and Begin (default
// options only); a nil Ping; driver.ErrSkip from CheckNamedValue.
//
// A nil d means a zero Dialer. Settings of d that cannot work make Connect
// fail with a *ConfigError. Set db.SetConnMaxIdleTime as well if idle
// connections should also be closed in the background: the checkout keeps
// stale connections from reaching callers either way.
func WrapConnector(c driver.Connector, d *Dialer) driver.Connector {
	if d == nil {
		d = &Dialer{}
	}
	return &connector{inner: c, dialer: d}
}

// connector is the driver.Connector WrapConnector returns.
type connector struct {
	inner  driver.Connector
	dialer *Dialer

	once      sync.Once
	err       error
	k         consumer
	lim       rule.Limits // d's limits at checkout
	untracked atomic.Int64
}

// init resolves the Dialer's settings into the checkout rule's limits.
func (c *connector) init() error {
	c.once.Do(func() {
		s, err := c.dialer.settings()
		if err != nil {
			c.err = err
			return
		}
		c.k.init("sql", s.observer, s, RetryBudget{})
		c.lim = rule.Limits{IdleLimit: s.idleLimit, Lifetime: s.maxLifetime, PeekAfter: 0,
			PingAfter: DefaultPingAfter, PingReadsPending: true}
	})
	return c.err
}

// errUntracked is the ConfigError of a driver that did not dial through
// the Dialer.
var errUntracked = &ConfigError{Field: "WrapConnector",
	Msg: "got a connection no rstpool Dialer dialed: make the driver dial through it (pgx: ConnConfig.DialFunc = d.DialContext; go-sql-driver/mysql: RegisterDialContext) with the context it is given"}

// Connect opens a connection through the wrapped connector and finds the
// tracked connection its driver dialed. A connect whose connection was
// reset before the server answered is tried again after the Dialer's
// backoff, within its RefusedRetry.
func (c *connector) Connect(ctx context.Context) (driver.Conn, error) {
	if err := c.init(); err != nil {
		return nil, err
	}
	for attempt := 0; ; attempt++ {
		dctx, slot := withDialSlot(ctx)
		inner, err := c.inner.Connect(dctx)
		tc := slot.conn.Load()
		if err != nil {
			if !c.connectReset(ctx, tc, attempt) {
				return nil, err
			}
			continue
		}
		if tc == nil {
			_ = inner.Close()
			if c.untracked.Add(1) == 1 {
				c.k.observer.emit(Event{Kind: EventUntracked, Source: "sql", Err: errUntracked})
			}
			return nil, errUntracked
		}
		return &sqlConn{inner: inner, tracked: tc, conn: c}, nil
	}
}

// connectReset reports whether a failed connect's connection was reset or
// closed before the server answered, and waits out the Dialer's backoff
// before the connect goes again; false when it was not, when the run of
// failed connects outlasted RefusedRetry, or when ctx ended.
func (c *connector) connectReset(ctx context.Context, tc *Conn, attempt int) bool {
	if tc == nil || attempt >= maxAttempts {
		return false
	}
	if f := tc.failed(); f == nil || !f.untouched {
		return false
	}
	wait, ok := c.k.wait(rule.Redial, tc.dialed, attempt, false)
	return ok && sleepCtx(ctx, wait)
}

// Driver returns the wrapped connector's driver.
func (c *connector) Driver() driver.Driver { return c.inner.Driver() }

// Close closes the wrapped connector if it has a Close method; sql.DB.Close
// calls it.
func (c *connector) Close() error {
	if cl, ok := c.inner.(io.Closer); ok {
		return cl.Close()
	}
	return nil
}

// A dialSlot receives the *Conn a Dialer returns, so that a connector
// whose driver dials internally can find the tracked connection behind the
// driver's connection.
type dialSlot struct{ conn atomic.Pointer[Conn] }

type dialSlotKey struct{}

// withDialSlot returns a context whose dials through a Dialer record their
// connection in the returned slot.
func withDialSlot(ctx context.Context) (context.Context, *dialSlot) {
	s := &dialSlot{}
	return context.WithValue(ctx, dialSlotKey{}, s), s
}

func noteDialed(ctx context.Context, c *Conn) {
	if s, ok := ctx.Value(dialSlotKey{}).(*dialSlot); ok {
		s.conn.Store(c)
	}
}

// sqlConn is the driver.Conn a wrapped connector returns.
type sqlConn struct {
	inner   driver.Conn
	tracked *Conn
	conn    *connector
}

// ResetSession runs the checkout rule, then the driver's own reset.
func (c *sqlConn) ResetSession(ctx context.Context) error {
	if err := c.checkout(ctx); err != nil {
		return err
	}
	if r, ok := c.inner.(driver.SessionResetter); ok {
		if err := r.ResetSession(ctx); err != nil {
			return err
		}
	}
	noteHandout(ctx, c.tracked, c.tracked)
	return nil
}

// checkout applies the checkout rule: it retires the connection with
// driver.ErrBadConn, pings it through the driver, or keeps it.
func (c *sqlConn) checkout(ctx context.Context) error {
	now := mono()
	ck := checkout{
		facts: c.tracked.facts(now, time.Duration(now-c.tracked.lastActive()), c.tracked),
		limit: c.conn.lim, conn: c.tracked,
	}
	if _, ok := c.inner.(driver.Pinger); ok {
		ck.ping, ck.limit.CanPing = driverPing{c}, true
	}
	if _, err := c.conn.k.checkout(ctx, &ck); err != nil {
		if ctx.Err() != nil {
			return err
		}
		return badConn(err)
	}
	return nil
}

// IsValid reports whether the connection may go back to the pool.
func (c *sqlConn) IsValid() bool {
	if c.tracked.eof.Load() {
		return false
	}
	if v, ok := c.inner.(driver.Validator); ok {
		return v.IsValid()
	}
	return true
}

// Close closes the driver's connection, which says goodbye to the server.
func (c *sqlConn) Close() error { return c.inner.Close() }

// Unwrap returns the driver's connection, for sql.Conn.Raw users.
func (c *sqlConn) Unwrap() driver.Conn { return c.inner }

// driverPing pings through the driver's connection; as a pinger it holds
// one pointer-shaped value, so handing it over allocates nothing where a
// method value would.
type driverPing struct{ c *sqlConn }

func (p driverPing) ping(ctx context.Context) error { return p.c.inner.(driver.Pinger).Ping(ctx) }
