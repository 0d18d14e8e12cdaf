package rstpool

import (
	"context"
	"database/sql/driver"
)

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
	w0 := s.c.tracked.nwritten.Load()
	r, err := s.inner.Exec(args)
	return r, s.c.badIfSafe(err, w0)
}

// Query runs the statement.
//
// Deprecated: database/sql calls QueryContext.
func (s *sqlStmt) Query(args []driver.Value) (driver.Rows, error) {
	w0 := s.c.tracked.nwritten.Load()
	r, err := s.inner.Query(args)
	return r, s.c.badIfSafe(err, w0)
}

// ExecContext runs the statement through the driver's StmtExecContext,
// else its legacy Exec, as database/sql would.
func (s *sqlStmt) ExecContext(ctx context.Context, args []driver.NamedValue) (driver.Result, error) {
	w0 := s.c.begin(ctx)
	if e, ok := s.inner.(driver.StmtExecContext); ok {
		r, err := e.ExecContext(ctx, args)
		return r, s.c.badIfSafe(err, w0)
	}
	//lint:ignore SA1019 the legacy fallback database/sql itself uses
	r, err := legacy(ctx, args, s.inner.Exec)
	return r, s.c.badIfSafe(err, w0)
}

// QueryContext runs the statement through the driver's StmtQueryContext,
// else its legacy Query, as database/sql would.
func (s *sqlStmt) QueryContext(ctx context.Context, args []driver.NamedValue) (driver.Rows, error) {
	w0 := s.c.begin(ctx)
	if q, ok := s.inner.(driver.StmtQueryContext); ok {
		r, err := q.QueryContext(ctx, args)
		return r, s.c.badIfSafe(err, w0)
	}
	//lint:ignore SA1019 the legacy fallback database/sql itself uses
	r, err := legacy(ctx, args, s.inner.Query)
	return r, s.c.badIfSafe(err, w0)
}

// CheckNamedValue defers to the statement's checker, else to the
// connection's, as database/sql does.
func (s *sqlStmt) CheckNamedValue(nv *driver.NamedValue) error {
	if n, ok := s.inner.(driver.NamedValueChecker); ok {
		return n.CheckNamedValue(nv)
	}
	return s.c.CheckNamedValue(nv)
}
