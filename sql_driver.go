package rstpool

import (
	"context"
	"database/sql/driver"
	"errors"
)

// The context interfaces a wrapped connection always exposes; each falls
// back as database/sql would when the driver's connection lacks it.
var (
	_ driver.QueryerContext     = (*sqlConn)(nil)
	_ driver.ExecerContext      = (*sqlConn)(nil)
	_ driver.ConnPrepareContext = (*sqlConn)(nil)
	_ driver.ConnBeginTx        = (*sqlConn)(nil)
	_ driver.Pinger             = (*sqlConn)(nil)
	_ driver.SessionResetter    = (*sqlConn)(nil)
	_ driver.Validator          = (*sqlConn)(nil)
	_ driver.NamedValueChecker  = (*sqlConn)(nil)
)

// Prepare prepares a statement.
func (c *sqlConn) Prepare(query string) (driver.Stmt, error) {
	return c.PrepareContext(context.Background(), query)
}

// Begin starts a transaction.
//
// Deprecated: database/sql calls BeginTx.
func (c *sqlConn) Begin() (driver.Tx, error) {
	return c.BeginTx(context.Background(), driver.TxOptions{})
}

// PrepareContext prepares a statement through the driver.
func (c *sqlConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	from := c.begin(ctx)
	var s driver.Stmt
	var err error
	if p, ok := c.inner.(driver.ConnPrepareContext); ok {
		s, err = p.PrepareContext(ctx, query)
	} else if err = ctx.Err(); err == nil {
		s, err = c.inner.Prepare(query)
	}
	if err != nil {
		return nil, c.badIfSafe(err, from)
	}
	return c.stmt(s), nil
}

// BeginTx starts a transaction through the driver. A driver without
// ConnBeginTx supports only the default isolation level, read-write.
func (c *sqlConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	from := c.begin(ctx)
	if b, ok := c.inner.(driver.ConnBeginTx); ok {
		tx, err := b.BeginTx(ctx, opts)
		return tx, c.badIfSafe(err, from)
	}
	if opts.Isolation != 0 {
		return nil, errors.New("rstpool: driver does not support non-default isolation level")
	}
	if opts.ReadOnly {
		return nil, errors.New("rstpool: driver does not support read-only transactions")
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	//lint:ignore SA1019 the fallback database/sql itself uses
	tx, err := c.inner.Begin()
	return tx, c.badIfSafe(err, from)
}

// QueryContext runs a query through the driver's QueryerContext, else its
// legacy Queryer, else returns driver.ErrSkip.
func (c *sqlConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	from := c.begin(ctx)
	if q, ok := c.inner.(driver.QueryerContext); ok {
		rows, err := q.QueryContext(ctx, query, args)
		return rows, c.badIfSafe(err, from)
	}
	//lint:ignore SA1019 the legacy fallback database/sql itself uses
	q, ok := c.inner.(driver.Queryer)
	if !ok {
		return nil, driver.ErrSkip
	}
	rows, err := legacy(ctx, args, func(v []driver.Value) (driver.Rows, error) { return q.Query(query, v) })
	return rows, c.badIfSafe(err, from)
}

// ExecContext runs a statement through the driver's ExecerContext, else
// its legacy Execer, else returns driver.ErrSkip.
func (c *sqlConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	from := c.begin(ctx)
	if e, ok := c.inner.(driver.ExecerContext); ok {
		res, err := e.ExecContext(ctx, query, args)
		return res, c.badIfSafe(err, from)
	}
	//lint:ignore SA1019 the legacy fallback database/sql itself uses
	e, ok := c.inner.(driver.Execer)
	if !ok {
		return nil, driver.ErrSkip
	}
	res, err := legacy(ctx, args, func(v []driver.Value) (driver.Result, error) { return e.Exec(query, v) })
	return res, c.badIfSafe(err, from)
}

// legacy calls a driver's pre-context interface as database/sql does:
// positional arguments only, and not once ctx is done.
func legacy[T any](ctx context.Context, args []driver.NamedValue, call func([]driver.Value) (T, error)) (T, error) {
	var zero T
	vals, err := namedToValues(args)
	if err != nil {
		return zero, err
	}
	if err := ctx.Err(); err != nil {
		return zero, err
	}
	return call(vals)
}

// Ping pings through the driver; without a Pinger it succeeds, as
// database/sql's own Ping does.
func (c *sqlConn) Ping(ctx context.Context) error {
	if p, ok := c.inner.(driver.Pinger); ok {
		from := c.begin(ctx)
		return c.badIfSafe(p.Ping(ctx), from)
	}
	return nil
}

// CheckNamedValue defers to the driver's checker, or returns driver.ErrSkip
// so that database/sql applies its default conversion.
func (c *sqlConn) CheckNamedValue(nv *driver.NamedValue) error {
	if n, ok := c.inner.(driver.NamedValueChecker); ok {
		return n.CheckNamedValue(nv)
	}
	return driver.ErrSkip
}

// namedToValues converts arguments for a legacy Queryer or Execer, which
// cannot take names.
func namedToValues(args []driver.NamedValue) ([]driver.Value, error) {
	vals := make([]driver.Value, len(args))
	for i, a := range args {
		if a.Name != "" {
			return nil, errors.New("rstpool: driver does not support the use of Named Parameters")
		}
		vals[i] = a.Value
	}
	return vals, nil
}

// sqlStmt is a driver's prepared statement on a wrapped connection: its
// failures carry the connection's failure, and one that failed before a
// byte of it left is a driver.ErrBadConn, as for the connection's own
// calls. go-sql-driver/mysql prepares every query with arguments, so most
// of its traffic runs here.
type sqlStmt struct {
	inner driver.Stmt
	c     *sqlConn
}

// sqlStmtCC is a sqlStmt whose driver statement converts its own columns
// (driver.ColumnConverter): database/sql asks the wrapper exactly what it
// would ask the driver.
type sqlStmtCC struct{ *sqlStmt }

// ColumnConverter returns the driver's converter for column idx.
func (s sqlStmtCC) ColumnConverter(idx int) driver.ValueConverter {
	//lint:ignore SA1019 database/sql still consults it
	return s.inner.(driver.ColumnConverter).ColumnConverter(idx)
}

// stmt wraps a statement the driver prepared.
func (c *sqlConn) stmt(s driver.Stmt) driver.Stmt {
	w := &sqlStmt{inner: s, c: c}
	//lint:ignore SA1019 database/sql still consults it
	if _, ok := s.(driver.ColumnConverter); ok {
		return sqlStmtCC{w}
	}
	return w
}

// Close closes the driver's statement.
func (s *sqlStmt) Close() error { return s.inner.Close() }

// NumInput returns the driver's count of placeholders.
func (s *sqlStmt) NumInput() int { return s.inner.NumInput() }

// Exec runs the statement.
//
// Deprecated: database/sql calls ExecContext.
func (s *sqlStmt) Exec(args []driver.Value) (driver.Result, error) {
	from := s.c.tracked.mark()
	r, err := s.inner.Exec(args)
	return r, s.c.badIfSafe(err, from)
}

// Query runs the statement.
//
// Deprecated: database/sql calls QueryContext.
func (s *sqlStmt) Query(args []driver.Value) (driver.Rows, error) {
	from := s.c.tracked.mark()
	r, err := s.inner.Query(args)
	return r, s.c.badIfSafe(err, from)
}

// ExecContext runs the statement through the driver's StmtExecContext,
// else its legacy Exec, as database/sql would.
func (s *sqlStmt) ExecContext(ctx context.Context, args []driver.NamedValue) (driver.Result, error) {
	from := s.c.begin(ctx)
	if e, ok := s.inner.(driver.StmtExecContext); ok {
		r, err := e.ExecContext(ctx, args)
		return r, s.c.badIfSafe(err, from)
	}
	//lint:ignore SA1019 the legacy fallback database/sql itself uses
	r, err := legacy(ctx, args, s.inner.Exec)
	return r, s.c.badIfSafe(err, from)
}

// QueryContext runs the statement through the driver's StmtQueryContext,
// else its legacy Query, as database/sql would.
func (s *sqlStmt) QueryContext(ctx context.Context, args []driver.NamedValue) (driver.Rows, error) {
	from := s.c.begin(ctx)
	if q, ok := s.inner.(driver.StmtQueryContext); ok {
		r, err := q.QueryContext(ctx, args)
		return r, s.c.badIfSafe(err, from)
	}
	//lint:ignore SA1019 the legacy fallback database/sql itself uses
	r, err := legacy(ctx, args, s.inner.Query)
	return r, s.c.badIfSafe(err, from)
}

// CheckNamedValue defers to the statement's checker, else to the
// connection's, as database/sql does.
func (s *sqlStmt) CheckNamedValue(nv *driver.NamedValue) error {
	if n, ok := s.inner.(driver.NamedValueChecker); ok {
		return n.CheckNamedValue(nv)
	}
	return s.c.CheckNamedValue(nv)
}

// A badConnError tells database/sql to retry on another connection
// (errors.Is(err, driver.ErrBadConn)) while keeping the original error for
// errors.Is, errors.As and Classify.
type badConnError struct{ err error }

func badConn(err error) error { return &badConnError{err: err} }

func (e *badConnError) Error() string {
	return driver.ErrBadConn.Error() + ": " + e.err.Error()
}

// Unwrap returns the original error.
func (e *badConnError) Unwrap() error { return e.err }

// Is matches driver.ErrBadConn.
func (e *badConnError) Is(target error) bool { return target == driver.ErrBadConn }

// begin starts a statement, a piece of work of its own: ConnError.Written
// counts from here, Retry counts the connection as the work's in ctx, and
// badIfSafe asks whether a byte left since the mark it returns.
func (c *sqlConn) begin(ctx context.Context) mark {
	c.tracked.begin()
	noteHandout(ctx, c.tracked, c.tracked)
	return c.tracked.mark()
}

// badIfSafe turns err into a driver.ErrBadConn when repeating the statement
// on another connection cannot run it twice: not a byte of it left since
// it began (from), or the connection was gone while it sat idle before
// the statement, and the peer took none of it (its kernel answered with a
// reset, acknowledging nothing). Every other error is returned as is, with
// the connection's failure attached when the driver replaced it.
func (c *sqlConn) badIfSafe(err error, from mark) error {
	if err == nil {
		return nil
	}
	err = c.explain(err)
	if errors.Is(err, driver.ErrBadConn) || !connFailure(err) {
		return err
	}
	if c.tracked.wroteSince(from) && !c.tracked.diedIdle() {
		return err
	}
	return badConn(err)
}

// explain attaches the tracked connection's failure to a driver error that
// does not carry it, so that Classify, errors.Is(err, syscall.ECONNRESET)
// and ConnError.Cause work on it too.
func (c *sqlConn) explain(err error) error {
	if connErrorOf(err) != nil {
		return err
	}
	if f := c.tracked.failed(); f != nil {
		return &driverConnError{err: err, conn: f}
	}
	return err
}

// A driverConnError is a driver's error with the connection failure behind
// it; errors.Is and errors.As see both.
type driverConnError struct {
	err  error
	conn *ConnError
}

func (e *driverConnError) Error() string   { return e.err.Error() + " (" + e.conn.Error() + ")" }
func (e *driverConnError) Unwrap() []error { return []error{e.err, e.conn} }
