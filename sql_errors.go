package rstpool

import (
	"context"
	"database/sql/driver"
	"errors"
)

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

// begin starts a statement: it counts the connection as the work's in
// ctx (see Retry) and returns the bytes written so far.
func (c *sqlConn) begin(ctx context.Context) int64 {
	if w := workIn(ctx); w != nil {
		noteHandout(ctx, c.tracked, c.tracked)
	}
	return c.tracked.nwritten.Load()
}

// badIfSafe turns err into a driver.ErrBadConn when repeating the statement
// on another connection cannot run it twice: not a byte of it left since
// it began (w0). Every other error is returned as is, with the
// connection's failure attached when the driver replaced it.
func (c *sqlConn) badIfSafe(err error, w0 int64) error {
	if err == nil {
		return nil
	}
	err = c.explain(err)
	if errors.Is(err, driver.ErrBadConn) || c.tracked.writtenSince(w0) != 0 || !connFailure(err) {
		return err
	}
	return badConn(err)
}

// explain attaches the tracked connection's failure to a driver error that
// does not carry it, so that Classify, errors.Is(err, syscall.ECONNRESET)
// and ConnError.Cause work on it too.
func (c *sqlConn) explain(err error) error {
	var ce *ConnError
	if errors.As(err, &ce) {
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
