package rstpool

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/puddle/v2"
	"github.com/rstpool/rstpool/internal/rule"
)

// ErrPoolClosed is returned by Acquire and Do once Close has begun.
var ErrPoolClosed = errors.New("rstpool: pool is closed")

// maxStale is how many idle connections one Acquire inspects and discards
// before it dials a fresh one in the slot of the last: after a server
// restart every idle connection is dead, and trying them all would cost a
// caller MaxSize checks.
const maxStale = 3

// A Pool is a pool of validated connections, for protocols that have no
// pool of their own (line protocols, RESP, memcached, custom binary RPC),
// built on github.com/jackc/puddle/v2. Acquire hands out only connections
// that pass its checks, cheapest first; Do adds the retry rule; background
// upkeep closes expired connections, pings idle ones and keeps MinIdle
// open. A Pool is safe for concurrent use.
type Pool struct {
	s  *poolSettings
	pp *puddle.Pool[*pconn]

	closing   atomic.Bool
	closeOnce sync.Once
	closed    chan struct{}
	closeErr  error

	mu    sync.Mutex // guards conns
	conns map[*pconn]struct{}

	noDial context.Context // canceled: see acquireSlot

	stopUpkeep context.CancelFunc
	upkeepDone chan struct{}

	stats  poolCounters
	budget budget
}

// A pconn is one pooled connection. Its fields belong to whoever holds it
// in puddle (the pool's mutex orders the handovers); state is the
// exception, read by Close to revoke handles never returned.
type pconn struct {
	p       *Pool
	res     *puddle.Resource[*pconn] // set at its first checkout
	nc      net.Conn                 // as handed out: PoolConfig.Wrap's, else as dialed
	tc      *Conn                    // the tracked conn under it (seen through TLS); nil when no Dialer dialed it
	created int64                    // mono time of the dial
	life    int64                    // its lifetime, jitter applied; 0: none
	lastUse int64                    // mono time of its last checkout or ping (or Release, untracked)
	uses    int64                    // checkouts
	state   atomic.Uint64
}

// NewPool checks cfg and returns a pool. It dials nothing itself: upkeep
// opens MinIdle connections in the background and Acquire the others.
// A setting that cannot work is a *ConfigError naming the field.
func NewPool(cfg PoolConfig) (*Pool, error) {
	s, err := cfg.settings()
	if err != nil {
		return nil, err
	}
	p := &Pool{s: s, closed: make(chan struct{}), conns: map[*pconn]struct{}{}}
	p.budget.set(cfg.RetryBudget)
	var cancel context.CancelFunc
	p.noDial, cancel = context.WithCancel(context.Background())
	cancel()
	p.pp, err = puddle.NewPool(&puddle.Config[*pconn]{Constructor: p.construct, Destructor: p.destruct, MaxSize: s.maxSize})
	if err != nil {
		return nil, fmt.Errorf("rstpool: %w", err)
	}
	p.startUpkeep()
	return p, nil
}

func (p *Pool) construct(ctx context.Context) (*pconn, error) {
	if err := ctx.Err(); err != nil {
		return nil, err // TryAcquire in acquireSlot found no idle connection
	}
	e := &pconn{p: p}
	e.state.Store(handleReturned)
	if err := p.dialInto(ctx, e); err != nil {
		return nil, err
	}
	p.mu.Lock()
	p.conns[e] = struct{}{}
	p.mu.Unlock()
	return e, nil
}

// dialInto dials a connection into e, resetting its history.
func (p *Pool) dialInto(ctx context.Context, e *pconn) error {
	nc, err := p.s.dial(ctx)
	if err != nil {
		p.stats.dialErrors.Add(1)
		return err
	}
	p.stats.dials.Add(1)
	now := mono()
	e.nc, e.created, e.lastUse, e.uses, e.life = nc, now, now, 0, 0
	e.tc = tracked(nc)
	if e.tc == nil {
		p.noteUntracked()
	}
	if life := p.s.maxLifetime; life > 0 {
		if p.s.jitter > 0 {
			life -= rand.N(p.s.jitter)
		}
		e.life = int64(life)
	}
	if p.s.wrap != nil {
		e.nc = p.s.wrap(nc)
	}
	return nil
}

// noteUntracked counts a connection no Dialer dialed, and reports the first.
func (p *Pool) noteUntracked() {
	if p.stats.untracked.Add(1) == 1 {
		p.s.observer.emit(Event{Kind: EventUntracked, Source: "pool",
			Err: errors.New("rstpool: PoolConfig.Dial returned a connection no rstpool Dialer dialed: Acquire cannot peek at it and Do cannot count its bytes")})
	}
}

func (p *Pool) destruct(e *pconn) {
	_ = e.nc.Close()
	p.mu.Lock()
	delete(p.conns, e)
	p.mu.Unlock()
}

// Acquire returns a connection that passed the checkout rule, cheapest
// first: its lifetime, its idle limit, a peek at its socket when it was
// idle beyond PeekAfter, and a Ping when it was idle beyond PingAfter or
// the peek could not tell. A connection that fails is closed and the next
// one tried; after maxStale failures the last slot is redialed. The caller
// must Release or Destroy the returned handle.
//
// The peek's verdicts: alive passes; a FIN or an RST closes the
// connection; bytes nobody asked for close it too, even with a Ping: in a
// request-response protocol they are either the last words of a server
// that is closing, or the unread tail of an earlier answer, and a ping
// would read them as its own answer and leave the stream out of step.
func (p *Pool) Acquire(ctx context.Context) (PooledConn, error) {
	for try := 1; ; try++ {
		res, err := p.acquireSlot(ctx)
		if err != nil {
			return PooledConn{}, err
		}
		e := res.Value()
		now := mono()
		c := p.vet(ctx, e, now)
		if c == retainIt {
			return p.handOut(ctx, res, now)
		}
		if try < maxStale {
			p.retire(res, c, now)
			continue
		}
		p.count(e, c, now)
		return p.redial(ctx, res)
	}
}

func (p *Pool) acquireSlot(ctx context.Context) (*puddle.Resource[*pconn], error) {
	if p.closing.Load() {
		return nil, ErrPoolClosed
	}
	select {
	case <-ctx.Done(): // puddle counts the canceled acquire
	default:
		// An idle connection, without the two clock reads that puddle's
		// Acquire spends on its wait statistics. With none idle but room
		// left, TryAcquire dials in the background with the context it
		// is given: noDial is canceled, so construct declines at once.
		if res, err := p.pp.TryAcquire(p.noDial); err == nil {
			return res, nil
		}
	}
	res, err := p.pp.Acquire(ctx)
	if err != nil && errors.Is(err, puddle.ErrClosedPool) {
		return nil, fmt.Errorf("%w: %w", ErrPoolClosed, err)
	}
	return res, err
}

// acquireFresh returns a connection never handed out before: a new one
// that upkeep or a concurrent Acquire dialed, or one redialed in the slot
// of an idle one.
func (p *Pool) acquireFresh(ctx context.Context) (PooledConn, error) {
	res, err := p.acquireSlot(ctx)
	if err != nil {
		return PooledConn{}, err
	}
	if e := res.Value(); e.uses == 0 {
		now := mono()
		c := p.vet(ctx, e, now)
		if c == retainIt {
			return p.handOut(ctx, res, now)
		}
		p.count(e, c, now)
	}
	return p.redial(ctx, res)
}

// redial replaces the connection in res with a new one, keeping the slot.
func (p *Pool) redial(ctx context.Context, res *puddle.Resource[*pconn]) (PooledConn, error) {
	e := res.Value()
	_ = e.nc.Close()
	if err := p.dialInto(ctx, e); err != nil {
		res.Destroy()
		return PooledConn{}, err
	}
	return p.handOut(ctx, res, mono())
}

// idleSince returns how long e has seen no checkout, ping or traffic.
func (e *pconn) idleSince(now int64) time.Duration {
	last := e.lastUse
	if e.tc != nil {
		last = max(last, e.tc.lastActive())
	}
	return time.Duration(now - last)
}

// facts returns what the checkout rule needs to know of e at now.
func (e *pconn) facts(now int64) rule.Conn {
	idle := e.idleSince(now)
	if e.tc == nil {
		return rule.Conn{Idle: idle, Age: time.Duration(now - e.created)}
	}
	f := e.tc.facts(now, idle)
	f.Age = time.Duration(now - e.created)
	return f
}

// verdict applies the checkout rule to e at now under lim, with e's own
// (jittered) lifetime: Acquire's limits or upkeep's.
func (p *Pool) verdict(e *pconn, now int64, lim rule.Limits) rule.Verdict {
	lim.Lifetime = time.Duration(e.life)
	return rule.Checkout(e.facts(now), lim, e.health)
}

// vet applies the checkout rule of Acquire to e and returns why e must go,
// or retainIt; it pings e when the rule says so.
func (p *Pool) vet(ctx context.Context, e *pconn, now int64) cause {
	switch v := p.verdict(e, now, p.s.acquireLimits); {
	case v.Retires():
		return retireCause(v)
	case v == rule.Ping && p.ping(ctx, e) != nil:
		return causePingFailed
	}
	return retainIt
}

func (e *pconn) health() rule.Health { return e.tc.health() }

// ping runs the configured Ping on e within PingTimeout, and within ctx:
// when ctx ends, the connection's deadline ends the ping at once.
func (p *Pool) ping(ctx context.Context, e *pconn) error {
	ctx, cancel := context.WithTimeout(ctx, p.s.pingTimeout)
	defer cancel()
	dl, _ := ctx.Deadline()
	if err := e.nc.SetDeadline(dl); err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() { _ = e.nc.SetDeadline(time.Unix(1, 0)) })
	err := p.s.ping(ctx, e.nc)
	if !stop() && err == nil {
		err = ctx.Err()
	}
	if err == nil {
		err = e.nc.SetDeadline(time.Time{})
	}
	if err == nil {
		e.lastUse = mono()
	}
	return err
}

// retire closes the connection in res and counts why.
func (p *Pool) retire(res *puddle.Resource[*pconn], c cause, now int64) {
	p.count(res.Value(), c, now)
	res.Destroy()
}

// count counts a retirement of e and reports it.
func (p *Pool) count(e *pconn, c cause, now int64) {
	p.stats.count(c)
	if o := p.s.observer; o != nil {
		retireEvent(o, "pool", c, e.idleSince(now), remote(e.nc))
	}
}
