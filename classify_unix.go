//go:build !windows

package rstpool

import "syscall"

// errnoClass maps the errors a Unix socket reports.
func errnoClass(errno syscall.Errno) Class {
	switch errno {
	case syscall.ECONNRESET, syscall.ECONNABORTED:
		return ClassReset
	case syscall.ECONNREFUSED:
		return ClassRefused
	case syscall.EPIPE, syscall.ESHUTDOWN:
		return ClassBrokenPipe
	case syscall.ETIMEDOUT:
		return ClassTimeout
	case syscall.EHOSTUNREACH, syscall.ENETUNREACH, syscall.EHOSTDOWN, syscall.ENETDOWN:
		return ClassUnreachable
	case syscall.ENOTCONN:
		return ClassPeerClosed
	}
	return ClassNone
}
