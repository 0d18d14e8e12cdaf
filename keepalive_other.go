//go:build !linux

package rstpool

import (
	"context"
	"syscall"
	"time"
)

// withUserTimeout leaves the Control functions as they are: only Linux has
// TCP_USER_TIMEOUT, so UserTimeout is ignored here.
func withUserTimeout(control func(network, address string, c syscall.RawConn) error,
	controlCtx func(ctx context.Context, network, address string, c syscall.RawConn) error,
	_ time.Duration) (func(string, string, syscall.RawConn) error, func(context.Context, string, string, syscall.RawConn) error) {
	return control, controlCtx
}
