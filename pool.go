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

	stats poolCounters
}

// A pconn is one pooled connection. Its fields belong to whoever holds it
// in puddle (the pool's mutex orders the handovers); state is the
// exception, read by Close to revoke handles never returned.
type pconn struct {
	p       *Pool
	res     *puddle.Resource[*pconn] // set at its first checkout
	nc      net.Conn
	tc      *Conn // nc as a tracked conn; nil when Dial returned something else
	created int64 // mono time of the dial
	expires int64 // mono time its lifetime ends; 0: never
	lastUse int64 // mono time of its last checkout or ping (or Release, untracked)
	uses    int64 // checkouts
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
	e.nc, e.created, e.lastUse, e.uses, e.expires = nc, now, now, 0, 0
	e.tc, _ = nc.(*Conn)
	if life := p.s.maxLifetime; life > 0 {
		if p.s.jitter > 0 {
			life -= rand.N(p.s.jitter)
		}
		e.expires = now + int64(life)
	}
	return nil
}

func (p *Pool) destruct(e *pconn) {
	_ = e.nc.Close()
	p.mu.Lock()
	delete(p.conns, e)
	p.mu.Unlock()
}

// Acquire returns a connection that passed the checks, cheapest first: its
// lifetime, its idle limit, a peek at its socket when it was idle beyond
// PeekAfter, and a Ping when it was idle beyond PingAfter. A connection
// that fails is closed and the next one tried; after maxStale failures the
// last slot is redialed. The caller must Release or Destroy the returned
// handle.
//
// The peek's verdicts: alive passes; a FIN or an RST closes the
// connection; unsolicited data closes it too, even with a Ping: in a
// request-response protocol it is either the last words of a server that is
// closing, or the unread tail of an earlier answer, and a ping would read
// those bytes as its own answer and leave the stream out of step. When the
// peek cannot tell (other systems, or the check failed), the Ping decides.
func (p *Pool) Acquire(ctx context.Context) (PooledConn, error) {
	for try := 1; ; try++ {
		res, err := p.acquireSlot(ctx)
		if err != nil {
			return PooledConn{}, err
		}
		e := res.Value()
		now := checkout(e)
		c := p.vet(ctx, e, now)
		if c == retainIt {
			return p.handOut(res, now)
		}
		if try < maxStale {
			p.retire(res, c)
			continue
		}
		p.stats.count(c)
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
		now := checkout(e)
		c := p.vet(ctx, e, now)
		if c == retainIt {
			return p.handOut(res, now)
		}
		p.stats.count(c)
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
	return p.handOut(res, checkout(e))
}

// checkout reads the clock once for the whole Acquire, records the
// checkout on a tracked connection (MarkUsed) and returns the time.
func checkout(e *pconn) (now int64) {
	now = mono()
	if e.tc != nil {
		e.tc.markUsedAt(now)
	}
	return now
}

// idleSince returns how long e has seen no checkout, ping or traffic.
func (e *pconn) idleSince(now int64) time.Duration {
	last := e.lastUse
	if e.tc != nil {
		last = max(last, e.tc.lastActive())
	}
	return time.Duration(now - last)
}

// vet runs the checks of Acquire on e and returns why e must go, or
// retainIt.
func (p *Pool) vet(ctx context.Context, e *pconn, now int64) cause {
	idle := e.idleSince(now)
	if c := p.expired(e, now, idle); c != retainIt {
		return c
	}
	unsure := false
	if e.tc != nil && p.s.peekAfter >= 0 && idle >= p.s.peekAfter {
		var c cause
		if c, unsure = peek(e.tc); c != retainIt {
			return c
		}
	}
	if p.s.ping != nil && (unsure || (p.s.pingAfter >= 0 && idle >= p.s.pingAfter)) {
		if p.ping(ctx, e) != nil {
			return causePingFailed
		}
	}
	return retainIt
}

// expired checks the lifetime, then the idle limit.
func (p *Pool) expired(e *pconn, now int64, idle time.Duration) cause {
	switch {
	case e.expires > 0 && now >= e.expires:
		return causeLifetime
	case p.s.idleTimeout > 0 && idle >= p.s.idleTimeout:
		return causeIdle
	}
	return retainIt
}

// peek asks the socket whether the peer is still there. unsure reports
// that the peek could not tell and a ping should.
func peek(c *Conn) (_ cause, unsure bool) {
	h, err := c.Check()
	switch h {
	case HealthAlive:
		return retainIt, false
	case HealthClosed, HealthReset:
		return causePeerClosed, false
	case HealthPending:
		return causeUnsolicited, false
	}
	if err != nil { // the check failed: the socket is closed or broken
		return causePeerClosed, false
	}
	return retainIt, true
}

// ping runs the configured Ping on e within PingTimeout.
func (p *Pool) ping(ctx context.Context, e *pconn) error {
	ctx, cancel := context.WithTimeout(ctx, p.s.pingTimeout)
	defer cancel()
	dl, _ := ctx.Deadline()
	if err := e.nc.SetDeadline(dl); err != nil {
		return err
	}
	err := p.s.ping(ctx, e.nc)
	if err == nil {
		err = e.nc.SetDeadline(time.Time{})
	}
	if err == nil {
		e.lastUse = mono()
	}
	return err
}

// retire closes the connection in res and counts why.
func (p *Pool) retire(res *puddle.Resource[*pconn], c cause) {
	p.stats.count(c)
	res.Destroy()
}
