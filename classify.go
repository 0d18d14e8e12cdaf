package rstpool

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"os"
	"syscall"
)

// A Class names the kind of a network failure in terms of what happened on
// the wire, whatever client or protocol reported it.
type Class uint8

// The classes of failure, from the most to the least specific.
const (
	ClassNone        Class = iota // no error
	ClassReset                    // an RST arrived on an established connection (ECONNRESET)
	ClassRefused                  // an RST answered the SYN: nothing listens (ECONNREFUSED)
	ClassBrokenPipe               // a write after the connection was already reset or shut (EPIPE)
	ClassPeerClosed               // the peer closed in order (FIN, EOF) or ended the session
	ClassTimeout                  // a deadline, keepalive or user timeout expired without an answer
	ClassCanceled                 // the caller gave up: context canceled, connection closed locally
	ClassUnreachable              // no route to the host or network
	ClassDNS                      // the name did not resolve
	ClassTLS                      // the TLS handshake or a record failed
	ClassOther                    // any other error
)

var classNames = [...]string{
	ClassNone:        "none",
	ClassReset:       "reset",
	ClassRefused:     "refused",
	ClassBrokenPipe:  "broken-pipe",
	ClassPeerClosed:  "peer-closed",
	ClassTimeout:     "timeout",
	ClassCanceled:    "canceled",
	ClassUnreachable: "unreachable",
	ClassDNS:         "dns",
	ClassTLS:         "tls",
	ClassOther:       "other",
}

// String returns the class's name: "none", "reset", "refused",
// "broken-pipe", "peer-closed", "timeout", "canceled", "unreachable",
// "dns", "tls" or "other".
func (c Class) String() string {
	if int(c) < len(classNames) {
		return classNames[c]
	}
	return "other"
}

// peerEnded reports whether the class is the connection's end by its
// peer or a hop: a reset, a close, or a write into a closed connection.
func (c Class) peerEnded() bool {
	switch c {
	case ClassReset, ClassPeerClosed, ClassBrokenPipe:
		return true
	}
	return false
}

// Classify returns the class of err. It walks the whole chain of wrapped
// errors (*url.Error, *net.OpError, *os.SyscallError, *ConnError,
// fmt.Errorf("%w"), errors.Join) and never looks at error strings.
//
// The most specific evidence wins: the class already recorded in a
// *ConnError, then an errno, then DNS and TLS errors, then a database
// session end reported through an SQLState() string method, then context
// cancellation and deadlines, then end of stream. A local close
// (net.ErrClosed) and a retirement by the client's own policy (ErrIdleLimit,
// ErrMaxLifetime) are ClassCanceled: the connection ended on this side, not
// by the peer.
func Classify(err error) Class {
	if err == nil {
		return ClassNone
	}
	for _, step := range classifiers {
		if c := step(err); c != ClassNone {
			return c
		}
	}
	return ClassOther
}

var classifiers = [...]func(error) Class{
	classifyConnError,
	classifyErrno,
	classifyDNS,
	classifyTLS,
	classifySQLState,
	classifySentinel,
	classifyNetTimeout,
}

func classifyConnError(err error) Class {
	if ce := connErrorOf(err); ce != nil && ce.Class != ClassNone {
		return ce.Class
	}
	return ClassNone
}

func classifyErrno(err error) Class {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errnoClass(errno)
	}
	return ClassNone
}

func classifyDNS(err error) Class {
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return ClassDNS
	}
	return ClassNone
}

func classifyTLS(err error) Class {
	var (
		rh      tls.RecordHeaderError
		alert   tls.AlertError
		verify  *tls.CertificateVerificationError
		unknown x509.UnknownAuthorityError
		host    x509.HostnameError
		invalid x509.CertificateInvalidError
	)
	switch {
	case errors.As(err, &rh), errors.As(err, &alert), errors.As(err, &verify),
		errors.As(err, &unknown), errors.As(err, &host), errors.As(err, &invalid), tlsAlert(err):
		return ClassTLS
	}
	return ClassNone
}

// tlsAlert reports whether err is a TLS alert: crypto/tls reports an alert
// received from the peer as a *net.OpError with Op "remote error", and one
// it sent as "local error", around an unexported type.
func tlsAlert(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && (op.Op == "remote error" || op.Op == "local error")
}

// sqlStater is implemented by database errors that carry an SQLSTATE code,
// such as pgconn.PgError, without rstpool importing their drivers.
type sqlStater interface{ SQLState() string }

func classifySQLState(err error) Class {
	var s sqlStater
	if !errors.As(err, &s) {
		return ClassNone
	}
	return sqlStateClass(s.SQLState())
}

// sqlStateClass maps the SQLSTATE codes with which a server ends a session.
func sqlStateClass(code string) Class {
	switch code {
	case "57P01", "57P02", "57P05", "25P03": // admin/crash shutdown, idle session/transaction timeout
		return ClassPeerClosed
	case "57P03", "08001", "08004": // cannot connect now, unable to establish, rejected
		return ClassRefused
	}
	if len(code) == 5 && code[:2] == "08" { // connection exception
		return ClassPeerClosed
	}
	return ClassNone
}

func classifySentinel(err error) Class {
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, net.ErrClosed),
		errors.Is(err, ErrIdleLimit), errors.Is(err, ErrMaxLifetime):
		return ClassCanceled // ended on this side, not by the peer
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded):
		return ClassTimeout
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, ErrPeerClosed):
		return ClassPeerClosed
	}
	return ClassNone
}

func classifyNetTimeout(err error) Class {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return ClassTimeout
	}
	return ClassNone
}
