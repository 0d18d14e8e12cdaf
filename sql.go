package rstpool

import (
	"context"
	"database/sql/driver"
	"errors"
	"io"
	"time"
)

// PingAfterIdle is how long a database connection may sit idle before its
// checkout pings it even though the peek found it alive. A peek sees a FIN
// or an RST at once; what it cannot see is a peer that vanished without
// either (a black hole, a host that lost power), which TCP keepalive
// reports within DefaultKeepAliveIdle. Pinging past that point costs one
// round trip per long idle period; pgx pings after 1 s, go-sql-driver/mysql
// never.
const PingAfterIdle = DefaultKeepAliveIdle

// WrapConnector returns a driver.Connector whose connections are checked at
// checkout, for use with sql.OpenDB. The driver behind c must dial through
// d: pgx's stdlib with ConnConfig.DialFunc set to d.DialContext,
// go-sql-driver/mysql with mysql.RegisterDialContext.
//
// Each connection learns which *Conn its driver dialed, and at checkout
// (ResetSession, which database/sql calls before it reuses a connection)
// retires it with driver.ErrBadConn when it outlived d's idle limit or
// lifetime or when a peek finds the peer gone, and pings it through the
// driver (driver.Pinger) when a peek cannot know: data pending, the platform
// cannot peek, or idle beyond PingAfterIdle. database/sql then takes
// another connection, and after two bad ones a new one, so the caller sees
// no error.
//
// A failure of a reused connection that provably happened before the
// request left (a *ConnError with nothing written, or an error whose
// SafeToRetry method says so, as pgconn's do) is returned as an error that
// matches driver.ErrBadConn and still wraps the original, so database/sql
// retries it on another connection. No other error is changed.
//
// The connections expose every context interface of database/sql/driver
// (QueryerContext, ExecerContext, ConnPrepareContext, ConnBeginTx, Pinger,
// SessionResetter, Validator, NamedValueChecker). Where the driver's
// connection lacks one, the wrapper falls back exactly as database/sql
// would without it: to the legacy Queryer/Execer, else driver.ErrSkip (so
// database/sql prepares a statement); to Prepare and Begin (default
// options only); a nil Ping; driver.ErrSkip from CheckNamedValue.
//
// A nil d means a zero Dialer. Set db.SetConnMaxIdleTime as well if idle
// connections should also be closed in the background: the checkout check
// keeps stale connections from reaching callers either way.
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
}

// Connect opens a connection through the wrapped connector and finds the
// tracked connection its driver dialed.
func (c *connector) Connect(ctx context.Context) (driver.Conn, error) {
	if _, err := c.dialer.settings(); err != nil {
		return nil, err
	}
	ctx, slot := withDialSlot(ctx)
	inner, err := c.inner.Connect(ctx)
	if err != nil {
		return nil, err
	}
	tracked := slot.conn.Load()
	if tracked != nil {
		tracked.MarkUsed()
	}
	return &sqlConn{inner: inner, tracked: tracked}, nil
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

// sqlConn is the driver.Conn a wrapped connector returns.
type sqlConn struct {
	inner     driver.Conn
	tracked   *Conn // nil when the driver did not dial through the Dialer; it holds the limits
	checkouts int   // guarded by database/sql's per-connection lock
}

// ResetSession runs the checkout check, then the driver's own reset.
func (c *sqlConn) ResetSession(ctx context.Context) error {
	c.checkouts++
	if c.tracked != nil {
		now := mono()
		c.tracked.markUsedAt(now)
		if err := c.checkout(ctx, now); err != nil {
			return err
		}
	}
	if r, ok := c.inner.(driver.SessionResetter); ok {
		return c.badIfSafe(r.ResetSession(ctx))
	}
	return nil
}

// checkout retires the connection, or pings it, by what its history and a
// peek say, cheapest first: the tracked connection's own checks before a
// write, then the driver's ping where the peek cannot know.
func (c *sqlConn) checkout(ctx context.Context, now int64) error {
	idle := time.Duration(now - c.tracked.lastActive())
	if why := c.tracked.expired(now, idle); why != nil {
		return badConn(why)
	}
	h, err := c.tracked.Check()
	if why := goneErr(h, err); why != nil {
		return badConn(why)
	}
	if h == HealthAlive && idle < PingAfterIdle {
		return nil
	}
	return c.pingAtCheckout(ctx, h)
}

// pingAtCheckout asks the driver when the peek could not tell. Without a
// Pinger, pending data on a request-response protocol is taken as a broken
// connection: opening another is cheaper than an error.
func (c *sqlConn) pingAtCheckout(ctx context.Context, h Health) error {
	p, ok := c.inner.(driver.Pinger)
	if !ok {
		if h == HealthPending {
			return badConn(errPendingData)
		}
		return nil
	}
	if err := p.Ping(ctx); err != nil {
		if ctx.Err() != nil {
			return err
		}
		return badConn(err)
	}
	return nil
}

var errPendingData = errors.New("rstpool: unsolicited data pending on an idle database connection")

// IsValid reports whether the connection may go back to the pool.
func (c *sqlConn) IsValid() bool {
	if c.tracked != nil && c.tracked.eof.Load() {
		return false
	}
	if v, ok := c.inner.(driver.Validator); ok {
		return v.IsValid()
	}
	return true
}

// Close closes the driver's connection.
func (c *sqlConn) Close() error { return c.inner.Close() }

// Unwrap returns the driver's connection, for sql.Conn.Raw users.
func (c *sqlConn) Unwrap() driver.Conn { return c.inner }

// Tracked returns the tracked connection the driver dialed, or nil.
func (c *sqlConn) Tracked() *Conn { return c.tracked }
