package rstpool

import (
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

// badIfSafe turns err into a driver.ErrBadConn when repeating the request
// on another connection cannot run it twice: the connection was reused and
// the failure provably came before the request left. Every other error is
// returned as is.
func (c *sqlConn) badIfSafe(err error) error {
	if err == nil {
		return nil
	}
	err = c.explain(err)
	if c.checkouts == 0 || errors.Is(err, driver.ErrBadConn) {
		return err
	}
	if nothingSent(err) {
		return badConn(err)
	}
	return err
}

// explain attaches the tracked connection's failure to a driver error that
// does not carry it, so that Classify, errors.Is(err, syscall.ECONNRESET)
// and ConnError.Cause work on it too.
func (c *sqlConn) explain(err error) error {
	var ce *ConnError
	if c.tracked == nil || errors.As(err, &ce) {
		return err
	}
	if f := c.tracked.Failure(); f != nil {
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
