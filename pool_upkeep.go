package rstpool

import (
	"context"
	"fmt"
	"time"

	"github.com/rstpool/rstpool/internal/rule"
)

// startUpkeep starts the pool's one background goroutine, unless upkeep is
// off.
func (p *Pool) startUpkeep() {
	if p.s.upkeepInterval < 0 {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	p.stopUpkeep, p.upkeepDone = cancel, make(chan struct{})
	go p.upkeepLoop(ctx)
}

// upkeepLoop runs a round at once (to open MinIdle), then every
// UpkeepInterval until Close.
func (p *Pool) upkeepLoop(ctx context.Context) {
	defer close(p.upkeepDone)
	t := time.NewTicker(p.s.upkeepInterval)
	defer t.Stop()
	var r refill
	for {
		p.upkeepRound(ctx, &r)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// upkeepRound checks every idle connection once, as pgxpool does: it takes
// them all (AcquireAllIdle), closes those the checkout rule retires (a peek
// each), hands the others back untouched (ReleaseUnused) but for at most
// UpkeepPings due a ping, pings those, then refills MinIdle. Its cost is a
// peek per idle connection plus a bounded number of pings and dials.
func (p *Pool) upkeepRound(ctx context.Context, r *refill) {
	p.rounds.Add(1)
	pings := p.s.upkeepPings
	lim := p.s.upkeepLimits
	for _, res := range p.pp.AcquireAllIdle() {
		lim.CanPing = p.s.ping != nil && pings > 0
		switch v, err := p.checkout(ctx, res, lim); {
		case err != nil:
			res.Destroy()
		case v == rule.Ping:
			pings--
			res.ReleaseUnused()
		default:
			res.ReleaseUnused()
		}
	}
	p.refillMinIdle(ctx, r)
}

// refill paces the dials that keep MinIdle open: after a failed dial it
// waits, doubling the pause up to maxRefillBackoff, so that a server that
// is down or restarting is not hammered.
type refill struct {
	notBefore time.Time
	backoff   time.Duration
}

// maxRefillDials bounds the dials of one upkeep round.
const maxRefillDials = 4

func (p *Pool) refillMinIdle(ctx context.Context, r *refill) {
	if p.s.minIdle == 0 || time.Now().Before(r.notBefore) {
		return
	}
	st := p.pp.Stat()
	need := min(p.s.minIdle-st.IdleResources()-st.ConstructingResources(), p.s.maxSize-st.TotalResources(), maxRefillDials)
	for range need {
		if err := p.dialIdle(ctx); err != nil {
			r.backoff = min(max(2*r.backoff, p.s.upkeepInterval), maxRefillBackoff)
			r.notBefore = time.Now().Add(r.backoff)
			return
		}
		r.backoff = 0
	}
}

// dialIdle opens one connection straight into the idle pool, giving the
// dial at most the upkeep interval (and at least 100 ms) so that a round
// stays short.
func (p *Pool) dialIdle(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, max(p.s.upkeepInterval, 100*time.Millisecond))
	defer cancel()
	return p.pp.CreateResource(ctx)
}

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
	for e := range p.open {
		if s := e.state.Load(); s&stateMask == handleOut {
			held[e] = s
		}
	}
	p.mu.Unlock()
	for e, s := range held {
		e.revoke(s)
	}
}

// revoke closes e under the holder of checkout state, which its holder
// never returned; it does nothing if the holder returned it meanwhile.
func (e *pconn) revoke(state uint64) {
	if !e.state.CompareAndSwap(state, state&^stateMask|handleRevoked) {
		return
	}
	_ = e.nc.Close()
	e.res.Hijack()
	e.p.mu.Lock()
	delete(e.p.open, e)
	e.p.mu.Unlock()
	e.p.revoked.Add(1)
}
