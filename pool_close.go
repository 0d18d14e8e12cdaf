package rstpool

import (
	"context"
	"fmt"
	"time"
)

// Close stops handing out connections, stops upkeep, waits until every
// checked-out connection is returned or ctx ends, then closes every
// connection. Connections still checked out when ctx ends are closed under
// their holders (their later Release or Destroy does nothing) and Close
// returns ctx's error. When Close returns, the pool holds no goroutine and
// no file descriptor. Calling Close again waits for the first call and
// returns its result.
func (p *Pool) Close(ctx context.Context) error {
	p.closeOnce.Do(func() {
		p.closing.Store(true)
		if p.stopUpkeep != nil {
			p.stopUpkeep()
			<-p.upkeepDone
		}
		p.closeErr = p.drain(ctx)
		p.pp.Close()
		close(p.closed)
	})
	<-p.closed
	return p.closeErr
}

// drain waits for the checked-out connections, revoking them when ctx
// ends. Close is rare: it polls rather than make every Release signal.
func (p *Pool) drain(ctx context.Context) error {
	t := time.NewTicker(time.Millisecond)
	defer t.Stop()
	for p.pp.Stat().AcquiredResources() > 0 {
		select {
		case <-t.C:
		case <-ctx.Done():
			p.revokeAll()
			return fmt.Errorf("rstpool: closing the pool with connections still in use: %w", ctx.Err())
		}
	}
	return nil
}

// revokeAll closes every connection still checked out. An Acquire may be
// between taking its slot and publishing its handle, or checking a
// connection: the loop catches it a moment later, or it returns the slot
// itself on seeing the pool closing.
func (p *Pool) revokeAll() {
	for p.pp.Stat().AcquiredResources() > 0 {
		p.revokeHeld()
		time.Sleep(time.Millisecond)
	}
}

func (p *Pool) revokeHeld() {
	held := map[*pconn]uint64{}
	p.mu.Lock()
	for e := range p.conns {
		if s := e.state.Load(); s&stateMask == handleOut {
			held[e] = s
		}
	}
	p.mu.Unlock()
	for e, s := range held {
		e.revoke(s)
	}
}
