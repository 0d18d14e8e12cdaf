package rstpool

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/puddle/v2"
	"github.com/rstpool/rstpool/internal/rule"
)

// upkeep is the process's one background upkeep of pools: a heap of the
// pools keyed by when each is next due, and one timer set to the earliest.
// At rest it holds no goroutine: the timer's function runs the pools that
// are due, one after another, and sets the timer again. A visit peeks and
// retires inline (microseconds); a ping or a dial runs in a goroutine of
// the pool's own, so that a slow peer delays no other pool.
var upkeep scheduler

type scheduler struct {
	mu    sync.Mutex
	queue []*Pool // a heap on Pool.due
	timer *time.Timer
	at    int64 // mono time the timer is set for; 0: not set
}

// schedule queues p to be visited at the mono time at, or moves it
// sooner. A pool already queued for an earlier time stays there: an
// Acquire may wake it while it is being visited (see noteUse), and the
// visit's own next time must not put the wake off.
func (s *scheduler) schedule(p *Pool, at int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p.closing.Load() || (p.queued >= 0 && p.due <= at) {
		return
	}
	p.due = at
	if p.queued < 0 {
		p.queued = len(s.queue)
		s.queue = append(s.queue, p)
	}
	s.fix(p.queued)
	if s.at == 0 || at < s.at {
		s.arm(at)
	}
}

// remove takes p off the queue.
func (s *scheduler) remove(p *Pool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if i := p.queued; i >= 0 {
		s.take(i)
		if i < len(s.queue) {
			s.fix(i)
		}
	}
}

// arm sets the timer for at; s.mu is held.
func (s *scheduler) arm(at int64) {
	s.at = at
	d := time.Duration(at - mono())
	if s.timer == nil {
		s.timer = time.AfterFunc(d, s.run)
		return
	}
	s.timer.Reset(d)
}

// run visits the pools that are due, then sets the timer for the next.
func (s *scheduler) run() {
	for {
		s.mu.Lock()
		now := mono()
		if len(s.queue) == 0 {
			s.at = 0
			s.mu.Unlock()
			return
		}
		p := s.queue[0]
		if p.due > now {
			s.arm(p.due)
			s.mu.Unlock()
			return
		}
		s.take(0)
		s.down(0)
		s.mu.Unlock()
		if next := p.visit(now); next > 0 {
			s.schedule(p, next)
		}
	}
}

// The heap's operations, on s.queue by Pool.due; s.mu is held.

// take moves the pool at i to the end and off the queue, clearing the
// slot it leaves: a closed pool must not stay reachable from the process's
// upkeep.
func (s *scheduler) take(i int) {
	last := len(s.queue) - 1
	s.swap(i, last)
	s.queue[last].queued = -1
	s.queue[last] = nil
	s.queue = s.queue[:last]
}

func (s *scheduler) swap(i, j int) {
	q := s.queue
	q[i], q[j] = q[j], q[i]
	q[i].queued, q[j].queued = i, j
}

func (s *scheduler) fix(i int) {
	if !s.up(i) {
		s.down(i)
	}
}

func (s *scheduler) up(i int) bool {
	moved := false
	for i > 0 {
		parent := (i - 1) / 2
		if s.queue[parent].due <= s.queue[i].due {
			break
		}
		s.swap(i, parent)
		i, moved = parent, true
	}
	return moved
}

func (s *scheduler) down(i int) {
	for n := len(s.queue); ; {
		least, l, r := i, 2*i+1, 2*i+2
		if l < n && s.queue[l].due < s.queue[least].due {
			least = l
		}
		if r < n && s.queue[r].due < s.queue[least].due {
			least = r
		}
		if least == i {
			return
		}
		s.swap(i, least)
		i = least
	}
}

// startUpkeep queues the pool's first visit, at once (to open MinIdle),
// unless upkeep is off.
func (p *Pool) startUpkeep() {
	p.queued = -1
	if p.s.upkeepInterval < 0 {
		return
	}
	upkeep.schedule(p, mono())
}

// visit is one visit of upkeep to the pool at now: it takes the idle
// connections (AcquireAllIdle), hands back untouched those with nothing
// due, peeks at the others and closes those the checkout rule retires,
// and leaves to a goroutine the pings due (at most UpkeepPings) and the
// dials MinIdle needs. It returns when the pool is next due; 0 when the
// pool's goroutine will queue it, or the pool is closing.
func (p *Pool) visit(now int64) int64 {
	if p.closing.Load() || !p.working.CompareAndSwap(false, true) {
		return 0
	}
	p.rounds.Add(1)
	next := now + int64(p.s.upkeepInterval)
	var pings []*puddle.Resource[*pconn]
	closed := int32(0)
	for _, res := range p.pp.AcquireAllIdle() {
		e := res.Value()
		if due := p.dueOf(e); due > now {
			next = min(next, due)
			res.ReleaseUnused()
			continue
		}
		var c checkout
		p.checkoutOf(&c, res, &p.s.upkeepLimits, now)
		e.seen = now
		switch v := c.judge(); {
		case v.Retires():
			p.k.retire(v, &c)
			res.Destroy()
			closed++
		case v == rule.Ping && len(pings) < p.s.upkeepPings:
			pings = append(pings, res)
		default:
			next = min(next, p.dueOf(e))
			res.ReleaseUnused()
		}
	}
	if len(pings) == 0 && !p.refill.due(p, now) {
		p.working.Store(false)
		return p.nextVisit(next, now, closed)
	}
	ctx, ok := p.startWork()
	if !ok {
		for _, res := range pings {
			res.ReleaseUnused()
		}
		return 0
	}
	go p.work(ctx, pings)
	return 0
}

// startWork readies the context of upkeep's goroutine, unless Close has
// begun. Close sets closing before it takes mu, so either it sees the
// goroutine (and cancels and waits for it) or the goroutine never starts.
// The context lives only as long as the goroutine: an idle pool holds
// none.
func (p *Pool) startWork() (context.Context, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closing.Load() {
		return nil, false
	}
	ctx, cancel := context.WithCancel(context.Background())
	p.stopWork = cancel
	p.upkeepWG.Add(1)
	return ctx, true
}

// endWork cancels the goroutine's context and forgets it.
func (p *Pool) endWork() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stopWork()
	p.stopWork = nil
}

// dueOf returns when something of the idle connection e is next due: its
// peek (UpkeepInterval after the last visit), its idle limit, its lifetime,
// its keepalive ping.
func (p *Pool) dueOf(e *pconn) int64 {
	last := e.lastUse
	if e.tc != nil {
		last = max(last, e.tc.lastActive())
	}
	due := e.seen + int64(p.s.upkeepInterval)
	if p.s.idleTimeout > 0 {
		due = min(due, last+int64(p.s.idleTimeout))
	}
	if e.life > 0 {
		due = min(due, e.created+e.life)
	}
	if p.s.keepAliveInterval > 0 {
		due = min(due, last+int64(p.s.keepAliveInterval))
	}
	return due
}

// work pings the connections due one and refills MinIdle, then queues the
// pool's next visit.
func (p *Pool) work(ctx context.Context, pings []*puddle.Resource[*pconn]) {
	defer p.upkeepWG.Done()
	for _, res := range pings {
		e := res.Value()
		if err := e.ping(ctx); err != nil {
			if ctx.Err() == nil {
				var c checkout
				p.checkoutOf(&c, res, &p.s.upkeepLimits, mono())
				p.k.retire(rule.RetirePingFailed, &c)
			}
			res.Destroy()
			continue
		}
		res.ReleaseUnused()
	}
	p.refill.run(ctx, p)
	p.endWork()
	p.working.Store(false)
	now := mono()
	upkeep.schedule(p, min(now+int64(p.s.upkeepInterval), p.refill.next(p, now)))
}

// noteUse records a checkout at now for the rest of an unused pool (see
// rests), and wakes upkeep if the pool rested: it refills MinIdle at
// once. Only a checkout a sixteenth of the rest period after the last one
// recorded writes: a busy pool's checkouts share a word they only read.
func (p *Pool) noteUse(now int64) {
	if last := p.used.Load(); last >= 0 && now-last < int64(p.s.restAfter)/16 {
		return
	}
	if p.used.Swap(now) < 0 {
		upkeep.schedule(p, mono())
	}
}

// rests reports whether the pool rests at now: it handed out no connection
// for a whole restAfter (its idle limit), so upkeep does not refill
// MinIdle, whose connections would only expire again unused. Its next
// checkout ends the rest (noteUse).
func (p *Pool) rests(now int64) bool {
	if p.s.restAfter <= 0 {
		return false
	}
	last := p.used.Load()
	if last < 0 {
		return true
	}
	return now-last >= int64(p.s.restAfter) && p.used.CompareAndSwap(last, -last-1)
}

// parkRecheck is how soon a resting pool is visited again when it holds
// only the connections its visit closed: puddle closes them in goroutines
// of its own, and counts them until they are closed.
const parkRecheck = 100 * time.Millisecond

// nextVisit returns when a visit that found nothing to do visits the pool
// next: never (0) when the pool rests and holds no connection, idle, in
// use or being dialed, since nothing of it is due until a checkout wakes
// it; soon when it holds only the closed connections still closing, to
// leave the queue then. The visit calls it after giving up working: a
// checkout that woke the pool before then is seen here, and one after
// finds the pool free to visit.
func (p *Pool) nextVisit(next, now int64, closed int32) int64 {
	if p.used.Load() >= 0 {
		return next
	}
	switch total := p.pp.Stat().TotalResources(); {
	case total == 0:
		return 0
	case total <= closed:
		return min(next, now+int64(parkRecheck))
	}
	return next
}

// refill paces the dials that keep MinIdle open: after a failed dial it
// waits, doubling the pause up to maxRefillBackoff, so that a server that
// is down or restarting is not hammered.
type refill struct {
	notBefore int64 // mono time
	backoff   time.Duration
}

// maxRefillDials bounds the dials of one visit.
const maxRefillDials = 4

// need is how many connections MinIdle lacks: none while the pool rests.
func (r *refill) need(p *Pool, now int64) int32 {
	if p.s.minIdle == 0 || p.rests(now) {
		return 0
	}
	st := p.pp.Stat()
	return min(p.s.minIdle-st.IdleResources()-st.ConstructingResources(), p.s.maxSize-st.TotalResources(), maxRefillDials)
}

// due reports whether MinIdle lacks connections and no backoff holds.
func (r *refill) due(p *Pool, now int64) bool { return now >= r.notBefore && r.need(p, now) > 0 }

// next returns when the refill is next due, or a time far away.
func (r *refill) next(p *Pool, now int64) int64 {
	if r.need(p, now) <= 0 {
		return now + int64(time.Hour)
	}
	return max(r.notBefore, now)
}

func (r *refill) run(ctx context.Context, p *Pool) {
	if !r.due(p, mono()) {
		return
	}
	for range r.need(p, mono()) {
		if err := p.dialIdle(ctx); err != nil {
			r.backoff = min(max(2*r.backoff, p.s.upkeepInterval/8, 5*time.Millisecond), maxRefillBackoff)
			r.notBefore = mono() + int64(r.backoff)
			return
		}
		r.backoff = 0
	}
}

// dialIdle opens one connection straight into the idle pool, giving the
// dial at most the upkeep interval (and at least 100 ms).
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
		upkeep.remove(p)
		p.mu.Lock()
		if p.stopWork != nil {
			p.stopWork()
		}
		p.mu.Unlock()
		p.upkeepWG.Wait()
		p.closeErr = p.drain(ctx)
		p.pp.Close()
	})
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
