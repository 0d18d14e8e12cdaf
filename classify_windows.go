//go:build windows

package rstpool

import (
	"syscall"

	"golang.org/x/sys/windows"
)

// errnoClass maps the errors a Windows socket reports: the WSA codes and
// the Win32 codes that overlapped I/O returns for the same events.
func errnoClass(errno syscall.Errno) Class {
	switch errno {
	case windows.WSAECONNRESET, windows.WSAECONNABORTED, windows.WSAENETRESET,
		windows.ERROR_NETNAME_DELETED, windows.ERROR_CONNECTION_ABORTED:
		return ClassReset
	case windows.WSAECONNREFUSED, windows.ERROR_CONNECTION_REFUSED:
		return ClassRefused
	case windows.WSAESHUTDOWN, windows.ERROR_BROKEN_PIPE, windows.ERROR_NO_DATA:
		return ClassBrokenPipe
	case windows.WSAETIMEDOUT, windows.ERROR_SEM_TIMEOUT:
		return ClassTimeout
	case windows.WSAEHOSTUNREACH, windows.WSAENETUNREACH, windows.WSAENETDOWN,
		windows.ERROR_HOST_UNREACHABLE, windows.ERROR_NETWORK_UNREACHABLE:
		return ClassUnreachable
	case windows.WSAENOTCONN:
		return ClassPeerClosed
	}
	// The syscall package's portable names (ECONNRESET …) are invented
	// Errno values on Windows; map them too.
	switch errno {
	case syscall.ECONNRESET, syscall.ECONNABORTED:
		return ClassReset
	case syscall.ECONNREFUSED:
		return ClassRefused
	case syscall.EPIPE:
		return ClassBrokenPipe
	case syscall.ETIMEDOUT:
		return ClassTimeout
	}
	return ClassNone
}
