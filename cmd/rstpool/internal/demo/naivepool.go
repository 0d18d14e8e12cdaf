package demo

import (
	"context"
	"net"
	"sync"
)

// A naivePool is the pool a protocol client without rstpool typically has:
// it hands out the most recently returned idle connection without checking
// it, dials when none is idle, closes a connection that failed and never
// retries. It is the baseline of the database leg.
type naivePool struct {
	dial func(ctx context.Context) (net.Conn, error)

	mu   sync.Mutex
	idle []net.Conn
}

// do runs fn on a pooled connection, counting in *conns the connections
// used (always one).
func (p *naivePool) do(ctx context.Context, fn func(net.Conn) error, conns *int32) error {
	c, err := p.get(ctx)
	if err != nil {
		return err
	}
	*conns++
	if err := fn(c); err != nil {
		_ = c.Close()
		return err
	}
	p.mu.Lock()
	p.idle = append(p.idle, c)
	p.mu.Unlock()
	return nil
}

func (p *naivePool) get(ctx context.Context) (net.Conn, error) {
	p.mu.Lock()
	if n := len(p.idle); n > 0 {
		c := p.idle[n-1]
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		return c, nil
	}
	p.mu.Unlock()
	return p.dial(ctx)
}

// close closes the idle connections.
func (p *naivePool) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.idle {
		_ = c.Close()
	}
	p.idle = nil
}
