package rstpool

import (
	"context"
	"sync/atomic"
)

// A dialSlot receives the *Conn a Dialer returns, so that a wrapper whose
// driver dials internally (database/sql connectors) can find the tracked
// connection behind the driver's connection.
type dialSlot struct{ conn atomic.Pointer[Conn] }

type dialSlotKey struct{}

// withDialSlot returns a context whose dials through a Dialer record their
// connection in the returned slot.
func withDialSlot(ctx context.Context) (context.Context, *dialSlot) {
	s := &dialSlot{}
	return context.WithValue(ctx, dialSlotKey{}, s), s
}

func noteDialed(ctx context.Context, c *Conn) {
	if s, ok := ctx.Value(dialSlotKey{}).(*dialSlot); ok {
		s.conn.Store(c)
	}
}
