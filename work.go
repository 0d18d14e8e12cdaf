package rstpool

import (
	"context"
	"net"
	"sync"

	"github.com/rstpool/rstpool/internal/handout"
)

func init() {
	handout.Checkout = func(ctx context.Context, nc net.Conn) {
		c := tracked(nc)
		if c != nil {
			c.checkout()
		}
		noteHandout(ctx, c, nc)
	}
	handout.Connecting = func(ctx context.Context) {
		if w := workIn(ctx); w != nil {
			w.connecting()
		}
	}
	handout.Down = func(network, addr string) bool {
		d := lookupDestination(destinationKey(network, addr))
		return d != nil && d.isDown()
	}
}

// A work is the accounting of one call of Retry: every connection that a
// consumer (Transport, Pool, WrapConnector, rstpgx) hands out under its
// context, with the bytes that connection had written at the handout. It
// proves "nothing of the work left" across several steps and connections,
// which no single error can: a step that failed before its first byte says
// nothing of the steps before it.
type work struct {
	mu     sync.Mutex
	events int  // handouts and connects seen
	blind  bool // a handout of a connection whose bytes cannot be counted
	conns  []handed
}

type handed struct {
	c  *Conn
	w0 int64
}

type workKey struct{}

func withWork(ctx context.Context) (context.Context, *work) {
	w := &work{}
	return context.WithValue(ctx, workKey{}, w), w
}

func workIn(ctx context.Context) *work {
	w, _ := ctx.Value(workKey{}).(*work)
	return w
}

// noteHandout records in ctx's work, if any, that a consumer hands out nc,
// whose tracked connection is c (nil: untracked). Handing out the same
// connection again keeps its first count.
func noteHandout(ctx context.Context, c *Conn, nc net.Conn) {
	w := workIn(ctx)
	if w == nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.events++
	if c == nil {
		w.blind = w.blind || nc != nil
		return
	}
	for _, h := range w.conns {
		if h.c == c {
			return
		}
	}
	w.conns = append(w.conns, handed{c: c, w0: c.nwritten.Load()})
}

func (w *work) connecting() {
	w.mu.Lock()
	w.events++
	w.mu.Unlock()
}

// nothingLeft reports whether the work provably sent no byte: a consumer
// saw every connection it used, each of them tracked, and none wrote.
func (w *work) nothingLeft() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.events == 0 || w.blind {
		return false // the client is not one of ours, or a connection cannot be counted
	}
	for _, h := range w.conns {
		if h.c.writtenSince(h.w0) != 0 {
			return false
		}
	}
	return true
}
