//go:build !linux

package rstpool

import (
	"net"
	"testing"
)

// forgetSilently needs Linux's TCP_REPAIR: elsewhere the test skips.
func forgetSilently(t *testing.T, c net.Conn) {
	t.Helper()
	_ = c
	t.Skip("TCP_REPAIR is Linux's")
}
