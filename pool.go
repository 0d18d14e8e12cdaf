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

// noDial is a canceled context: see acquireSlot. Every pool shares it.
var noDial = func() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}()

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
// open while the pool is in use. A Pool is safe for concurrent use.
type Pool struct {
	s  *poolSettings
	pp *puddle.Pool[*pconn]
	k  consumer

	closing   atomic.Bool
	closeOnce sync.Once // its later callers wait for the first
	closeErr  error

	// open holds every open connection, idle or held: puddle lists only
	// idle ones, and Close must revoke the held ones. mu also orders the
	// start of upkeep's goroutine against Close.
	mu       sync.Mutex
	open     map[*pconn]struct{}
	stopWork context.CancelFunc // ends the pings and dials of upkeep's goroutine; nil: none runs

	// Upkeep: the scheduler's fields (queued, due) are guarded by its
	// mutex; working says a visit or its goroutine runs.
	queued   int   // index in the scheduler's heap; -1: not queued
	due      int64 // mono time of the next visit
	working  atomic.Bool
	refill   refill // touched by the visit or goroutine that holds working
	upkeepWG sync.WaitGroup

	// used is the mono time of the pool's last checkout, kept coarsely
	// (see noteUse), or -t-1 once upkeep let the pool rest after a
	// checkout at t: one word, so that a checkout and upkeep's decision
	// to rest cannot miss each other.
	used atomic.Int64

	dials, dialErrors, untracked, revoked, rounds atomic.Int64
}

// A pconn is one pooled connection: what puddle does not keep of it. Its
// fields belong to whoever holds it in puddle (the pool's mutex orders the
// handovers); state is the exception, read by Close to revoke handles
// never returned.
type pconn struct {
	p       *Pool
	res     *puddle.Resource[*pconn] // puddle's handle of it, set at its first checkout: Close revokes through it
	nc      net.Conn                 // as handed out: PoolConfig.Wrap's, else as dialed
	dialed  net.Conn                 // as dialed: a TLS layer on the tracked conn shows here
	tc      *Conn                    // the tracked conn under it (seen through TLS); nil when no Dialer dialed it
	created int64                    // mono time of the dial: a slot is redialed in place
	lastUse int64                    // mono time of its last checkout or ping: puddle's clock is not kept (ReleaseUnused)
	seen    int64                    // mono time of its last visit by upkeep
	life    int64                    // its lifetime, jitter applied; 0: none
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
	p := &Pool{s: s, open: map[*pconn]struct{}{}}
	p.used.Store(mono()) // a new pool counts as used: MinIdle opens at once
	p.k.init("pool", s.observer, s.dialer, cfg.RetryBudget)
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
	p.open[e] = struct{}{}
	p.mu.Unlock()
	return e, nil
}

// dialInto dials a connection into e, resetting its history.
func (p *Pool) dialInto(ctx context.Context, e *pconn) error {
	nc, err := p.s.dial(ctx)
	if err != nil {
		p.dialErrors.Add(1)
		return err
	}
	p.dials.Add(1)
	now := mono()
	e.nc, e.dialed, e.created, e.lastUse, e.seen, e.uses, e.life = nc, nc, now, now, now, 0, 0
	e.tc = Tracked(nc)
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
	if p.untracked.Add(1) == 1 {
		p.s.observer.emit(Event{Kind: EventUntracked, Source: "pool",
			Err: errors.New("rstpool: PoolConfig.Dial returned a connection no rstpool Dialer dialed: Acquire cannot peek at it and Do cannot count its bytes")})
	}
}

func (p *Pool) destruct(e *pconn) {
	_ = e.nc.Close()
	p.mu.Lock()
	delete(p.open, e)
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
// Under TLS, bytes pending may be the record layer's own (session
// tickets): they are pinged through, or left alone without a Ping.
func (p *Pool) Acquire(ctx context.Context) (PooledConn, error) {
	for try := 1; ; try++ {
		res, err := p.acquireSlot(ctx)
		if err != nil {
			return PooledConn{}, err
		}
		if now, ok := p.checkout(ctx, res); ok {
			return p.handOut(ctx, res, now)
		}
		if try < maxStale {
			res.Destroy()
			continue
		}
		return p.redial(ctx, res)
	}
}

// checkout applies Acquire's checkout rule to the connection in res.
func (p *Pool) checkout(ctx context.Context, res *puddle.Resource[*pconn]) (int64, bool) {
	now := mono()
	var c checkout
	p.checkoutOf(&c, res, &p.s.acquireLimits, now)
	v, err := p.k.checkout(ctx, &c)
	if v == rule.Ping {
		now = mono()
	}
	return now, err == nil
}

// checkoutOf fills c with the connection in res at now as the checkout
// rule sees it, under lim (Acquire's limits or upkeep's) with its own,
// jittered, lifetime. It fills rather than returns: the record is copied
// on every Acquire otherwise.
func (p *Pool) checkoutOf(c *checkout, res *puddle.Resource[*pconn], lim *rule.Limits, now int64) {
	e := res.Value()
	c.limit = *lim
	c.limit.Lifetime = time.Duration(e.life)
	c.conn = e.tc
	if p.s.ping != nil {
		c.ping = e
	}
	last := e.lastUse
	if e.tc == nil {
		c.facts = rule.Conn{Idle: time.Duration(now - last)}
	} else {
		c.facts = e.tc.facts(now, time.Duration(now-max(last, e.tc.lastActive())), e.dialed)
	}
	c.facts.Age = time.Duration(now - e.created)
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
		// is given: noDial is canceled, so construct declines at once
		// (TestTryAcquireDialsNothing pins this).
		if res, err := p.pp.TryAcquire(noDial); err == nil {
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
	if res.Value().uses == 0 {
		if now, ok := p.checkout(ctx, res); ok {
			return p.handOut(ctx, res, now)
		}
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

// ping runs the configured Ping on e within PingTimeout, and within ctx:
// when ctx ends, the connection's deadline ends the ping at once.
func (e *pconn) ping(ctx context.Context) error {
	s := e.p.s
	ctx, cancel := context.WithTimeout(ctx, s.pingTimeout)
	defer cancel()
	dl, _ := ctx.Deadline()
	if err := e.nc.SetDeadline(dl); err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() { _ = e.nc.SetDeadline(time.Unix(1, 0)) })
	err := s.ping(ctx, e.nc)
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

// Do runs fn on a pooled connection and hands the connection back:
// released when fn returns nil, or when it returns an error without having
// read or written a byte (an application error before any I/O leaves the
// stream in step); destroyed when fn failed after I/O (the stream may be
// out of step) or panicked. Report a protocol-level answer that leaves the
// stream clean (a "not found") some other way than through fn's error.
//
// When fn failed because of its connection (a reset, a broken pipe, an end
// of stream), Do runs it once more on a connection never handed out before
// if nothing of the failed attempt left the client, or if the work is
// idempotent: the retry rule every rstpool consumer applies (see Retry).
// Nothing is known to have been sent only on a tracked connection (one a
// Dialer dialed, under TLS or not): on another, only idempotent work is
// retried. Do never retries an error of fn's own, nor once ctx is done,
// and retries once, but for a retry whose new connection the peer took
// and reset before a byte came back (a blip still under way: idempotent
// work gets one more pause); the last retry's error is returned.
func (p *Pool) Do(ctx context.Context, idempotent bool, fn func(net.Conn) error) error {
	p.k.begin()
	h, err := p.Acquire(ctx)
	if err != nil {
		p.k.surface(err, p.s.addr)
		return err
	}
	var d decision
	defer func() {
		if d.paid { // fn panicked during a retry
			p.k.spent(d)
		}
	}()
	ran := false // an attempt's work may have reached the server
	for attempt := 0; ; attempt++ {
		f, err := h.run(fn)
		if err == nil {
			p.k.succeeded(d)
			d = decision{}
			return nil
		}
		f.retried, f.callerDone, f.idempotent = ran, ctx.Err() != nil, idempotent
		ran = ran || !f.nothingLeft
		if d = p.k.next(ctx, d, f, attempt); d.reason == RetryNone || attempt >= maxAttempts || !sleepCtx(ctx, d.wait) {
			p.k.unspent(d)
			d = decision{}
			p.k.surface(err, p.s.addr)
			return err
		}
		if h, err = p.acquireFresh(ctx); err != nil {
			p.k.unspent(d)
			d = decision{}
			err = fmt.Errorf("rstpool: acquiring a connection to retry: %w", err)
			p.k.surface(err, p.s.addr)
			return err
		}
	}
}

// run calls fn on the handle's connection and hands the connection back.
// It returns what the retry rule needs to know of a failure.
func (h PooledConn) run(fn func(net.Conn) error) (failure, error) {
	tc := h.e.tc
	var from mark
	if tc != nil {
		from = tc.mark()
	}
	ok := false
	defer func() {
		if !ok {
			h.Destroy()
		}
	}()
	err := fn(h.e.nc)
	quiet := tc != nil && !tc.movedSince(from)
	f := failure{err: err, connFailure: connFailure(err), replayable: true, nothingLeft: quiet,
		waited: h.e.uses > 1 || time.Duration(h.e.lastUse-h.e.created) >= connectWait}
	if err == nil || (quiet && !f.connFailure) {
		ok = true
		h.Release()
	}
	return f, err
}

// A pconn's state word counts its checkouts in the bits above stateBits
// and says in the low bits where the current checkout stands, so that a
// handle (which carries the count of its checkout) can tell its own
// checkout from a later one without an allocation per Acquire.
const (
	handleOut      = iota + 1 // held by the caller
	handleReturned            // idle: Released, or never handed out
	handleRevoked             // closed by Pool.Close after its context expired

	stateBits = 2
	stateMask = 1<<stateBits - 1
)

// handOut gives res to the caller under a new checkout number, unless the
// pool began closing meanwhile. The checkout starts the caller's piece of
// work: the tracked connection counts Written from here, after any ping.
func (p *Pool) handOut(ctx context.Context, res *puddle.Resource[*pconn], now int64) (PooledConn, error) {
	if p.closing.Load() {
		res.Release()
		return PooledConn{}, ErrPoolClosed
	}
	e := res.Value()
	if e.res == nil {
		e.res = res // puddle keeps one Resource per value
	}
	e.lastUse = now
	e.uses++
	if p.s.restAfter > 0 {
		p.noteUse(now)
	}
	handOut(ctx, e.tc, e.nc)
	// From (n, returned) to (n+1, out) in one locked add, no load first.
	gen := e.state.Add(1<<stateBits+handleOut-handleReturned) &^ stateMask
	return PooledConn{e: e, gen: gen}, nil
}

// A PooledConn is a connection checked out of a Pool. Use Conn for I/O,
// then call exactly one of Release (the connection is in a clean state
// between requests) or Destroy (it saw an error, a timeout or a protocol
// error, or is otherwise out of step). Calling either twice, on the
// handle or a copy of it, panics. The zero PooledConn holds no connection.
type PooledConn struct {
	e   *pconn
	gen uint64 // the checkout, as the high bits of e.state
}

// Conn returns the connection: the one PoolConfig.Wrap returned for it,
// else the one dialed. It must not be used after Release or Destroy, and
// must not be closed by the caller: Destroy closes it.
func (h PooledConn) Conn() net.Conn { return h.e.nc }

// Reused reports whether the connection had been handed out before.
func (h PooledConn) Reused() bool { return h.e.uses > 1 }

// Release returns the connection to the pool for reuse.
func (h PooledConn) Release() {
	if !h.give("Release") {
		return
	}
	if h.e.tc == nil || h.e.tc.deadline.Load() {
		_ = h.e.nc.SetDeadline(time.Time{}) // the next holder starts without this one's deadline
	}
	if h.e.tc == nil {
		h.e.lastUse = mono() // an untracked conn's traffic is unknown: count it up to now
	}
	// The pool keeps its own idle clock (lastUse and the Conn's traffic)
	// and never reads puddle's: ReleaseUnused spares a clock read.
	h.e.res.ReleaseUnused()
}

// Destroy closes the connection and frees its slot: it is never reused.
// Hand back with Destroy every connection that saw an error, including a
// protocol error that may have left unread bytes behind.
func (h PooledConn) Destroy() {
	if !h.give("Destroy") {
		return
	}
	h.e.res.Destroy()
}

// give ends the handle's checkout. It reports false when Close already
// revoked it, and panics when it was already returned (or is a stale
// handle of an earlier checkout, or the zero PooledConn).
func (h PooledConn) give(op string) bool {
	if h.e != nil {
		if h.e.state.CompareAndSwap(h.gen|handleOut, h.gen|handleReturned) {
			return true
		}
		if h.e.state.Load() == h.gen|handleRevoked {
			return false
		}
	}
	panic("rstpool: PooledConn." + op + " called on a connection already released or destroyed")
}
