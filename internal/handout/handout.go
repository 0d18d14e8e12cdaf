// Package handout lets the modules of this repository (rstpgx) report to
// package rstpool that they hand a connection out, without rstpool
// exporting that protocol. Package rstpool sets the functions in its init;
// they are never nil once it is imported.
package handout

import (
	"context"
	"net"
)

var (
	// Checkout records that a consumer hands nc out for a piece of work
	// under ctx: ConnError.Written counts from here, and rstpool.Retry
	// counts nc's bytes as the work's.
	Checkout func(ctx context.Context, nc net.Conn)

	// Connecting records that a consumer opens a new connection for the
	// work under ctx.
	Connecting func(ctx context.Context)

	// Down reports whether the Dialers of this process hold addr down:
	// its connects were refused for a whole RefusedRetry budget, and dials
	// to it fail at once until a probe connects.
	Down func(network, addr string) bool
)
