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
	w0 := c.begin(ctx)
	var s driver.Stmt
	var err error
	if p, ok := c.inner.(driver.ConnPrepareContext); ok {
		s, err = p.PrepareContext(ctx, query)
	} else if err = ctx.Err(); err == nil {
		s, err = c.inner.Prepare(query)
	}
	if err != nil {
		return nil, c.badIfSafe(err, w0)
	}
	return c.stmt(s), nil
}

// BeginTx starts a transaction through the driver. A driver without
// ConnBeginTx supports only the default isolation level, read-write.
func (c *sqlConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	w0 := c.begin(ctx)
	if b, ok := c.inner.(driver.ConnBeginTx); ok {
		tx, err := b.BeginTx(ctx, opts)
		return tx, c.badIfSafe(err, w0)
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
	return tx, c.badIfSafe(err, w0)
}

// QueryContext runs a query through the driver's QueryerContext, else its
// legacy Queryer, else returns driver.ErrSkip.
func (c *sqlConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	w0 := c.begin(ctx)
	if q, ok := c.inner.(driver.QueryerContext); ok {
		rows, err := q.QueryContext(ctx, query, args)
		return rows, c.badIfSafe(err, w0)
	}
	//lint:ignore SA1019 the legacy fallback database/sql itself uses
	q, ok := c.inner.(driver.Queryer)
	if !ok {
		return nil, driver.ErrSkip
	}
	rows, err := legacy(ctx, args, func(v []driver.Value) (driver.Rows, error) { return q.Query(query, v) })
	return rows, c.badIfSafe(err, w0)
}

// ExecContext runs a statement through the driver's ExecerContext, else
// its legacy Execer, else returns driver.ErrSkip.
func (c *sqlConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	w0 := c.begin(ctx)
	if e, ok := c.inner.(driver.ExecerContext); ok {
		res, err := e.ExecContext(ctx, query, args)
		return res, c.badIfSafe(err, w0)
	}
	//lint:ignore SA1019 the legacy fallback database/sql itself uses
	e, ok := c.inner.(driver.Execer)
	if !ok {
		return nil, driver.ErrSkip
	}
	res, err := legacy(ctx, args, func(v []driver.Value) (driver.Result, error) { return e.Exec(query, v) })
	return res, c.badIfSafe(err, w0)
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
		w0 := c.begin(ctx)
		return c.badIfSafe(p.Ping(ctx), w0)
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
