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
	if err == nil || c.checkouts == 0 || errors.Is(err, driver.ErrBadConn) {
		return err
	}
	if safeToRetry(err) {
		return badConn(err)
	}
	return err
}

// safeToRetry reports whether err says the request never left: a
// *ConnError with nothing written, or a driver's own mark (pgconn's
// SafeToRetry method).
func safeToRetry(err error) bool {
	var ce *ConnError
	if errors.As(err, &ce) && ce.NothingWritten() {
		return true
	}
	var s interface{ SafeToRetry() bool }
	return errors.As(err, &s) && s.SafeToRetry()
}
