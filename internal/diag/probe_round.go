package diag

import (
	"context"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/rstpool/rstpool"
)

// openParallel bounds how many sessions a round opens at once.
const openParallel = 4

// farewellWait bounds the read of a closed session's farewell, while the
// other sessions wait for their next peek.
const farewellWait = 500 * time.Millisecond

// rounds runs a probe's rounds, keeps every session they opened (closed
// once their round ends) for the bounds, and counts them.
type rounds struct {
	cfg      ProbeConfig
	sessions *Sessions
	dialer   *rstpool.Dialer
	start    time.Time
	all      []*probeConn
	used     int
	farewell string
	reported bounds
	lastAt   time.Time
}

// run idles a first round of sessions geometrically spaced up to Max,
// then refines between the last alive and the first dead.
func (r *rounds) run(ctx context.Context) error {
	if err := r.round(ctx, 1, geometric(r.cfg.Min, r.cfg.Max, min(r.cfg.Conns/2, 8))); err != nil {
		return err
	}
	b := r.bounds()
	if b.end == EndNone || b.tight() || r.cfg.Conns-r.used <= 0 {
		return nil
	}
	return r.round(ctx, 2, linear(b.alive, b.dead, r.cfg.Conns-r.used))
}

// A probeConn is one idling session of a round and what was seen of it.
type probeConn struct {
	s       Session
	tc      *rstpool.Conn // s.Tracked()
	idleAt  time.Time     // end of its first exchange
	checkAt time.Duration // idle duration at which it is checked
	peeked  time.Duration // idle duration of its last good peek
	checked time.Duration // idle duration at which its check passed
	deadAt  time.Duration // idle duration at which its end was seen; zero: none
	end     End
}

// round idles one session per duration until each has been checked, has
// ended, or has idled past the shortest end seen; it closes every session
// it opened. When ctx ends first, it returns ctx's error.
func (r *rounds) round(ctx context.Context, n int, durations []time.Duration) error {
	conns, err := r.open(ctx, durations)
	r.all = append(r.all, conns...)
	defer func() {
		for _, p := range conns {
			p.s.Close()
		}
	}()
	if err != nil {
		return err
	}
	live := conns
	for len(live) > 0 {
		if err := sleepUntilNext(ctx, live); err != nil {
			return err
		}
		live = r.check(ctx, live)
		r.report(n, live)
	}
	return nil
}

// open opens one session per duration, at most openParallel at once, the
// i-th of k no sooner than i/k of the round's spread after the first. It
// returns the sessions opened and, when one failed, the first error.
func (r *rounds) open(ctx context.Context, durations []time.Duration) ([]*probeConn, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		out      []*probeConn
		firstErr error
	)
	sem := make(chan struct{}, openParallel)
	start, spread := time.Now(), min(r.cfg.Min, time.Second)
	for i, idle := range durations {
		at := start.Add(spread * time.Duration(i) / time.Duration(len(durations)))
		if sleepCtx(ctx, time.Until(at)) != nil || acquire(ctx, sem) != nil {
			break
		}
		r.used++
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			s, err := r.sessions.Open(ctx, r.dialer)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if firstErr == nil && ctx.Err() == nil {
					firstErr = err
				}
				cancel()
				return
			}
			out = append(out, &probeConn{s: s, tc: s.Tracked(), checkAt: idle, idleAt: time.Now()})
		}()
	}
	wg.Wait()
	if firstErr == nil {
		firstErr = ctx.Err() // the caller's: ours is cancelled only after an error
	}
	return out, firstErr
}

func acquire(ctx context.Context, sem chan struct{}) error {
	select {
	case sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// check peeks every live session and checks those whose time has come. It
// returns the sessions still idling: those that have not ended, not been
// checked, and not idled past the shortest end seen (a later end would be
// longer).
func (r *rounds) check(ctx context.Context, live []*probeConn) []*probeConn {
	var next []*probeConn
	for _, p := range live {
		idle := time.Since(p.idleAt)
		if p.tc != nil {
			if err := peek(p.tc); err != nil {
				e, _ := endOf(err)
				r.ended(ctx, p, idle, e)
				continue
			}
			p.peeked = idle
		}
		if shortest := r.shortestEnd(); shortest > 0 && idle >= shortest {
			continue
		}
		if idle < p.checkAt {
			next = append(next, p)
			continue
		}
		if err := r.exchange(ctx, p); err != nil {
			if ctx.Err() != nil {
				return append(next, p) // interrupted, not ended: the round returns ctx's error
			}
			r.ended(ctx, p, idle, endOfSession(err, p.tc))
			continue
		}
		p.checked = idle
	}
	return next
}

func (r *rounds) exchange(ctx context.Context, p *probeConn) error {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.Wait)
	defer cancel()
	return p.s.Exchange(ctx)
}

// ended records that p was seen to end after idle, and what the server
// said when it ended with a FIN.
func (r *rounds) ended(ctx context.Context, p *probeConn, idle time.Duration, e End) {
	p.deadAt, p.end = idle, e
	if e != EndFIN || r.farewell != "" {
		return
	}
	// The FIN has arrived: whatever the server wrote is there to read.
	ctx, cancel := context.WithTimeout(ctx, min(r.cfg.Wait, farewellWait))
	defer cancel()
	r.farewell = p.s.Farewell(ctx)
}

// endOfSession maps a failed check to how the flow ended; when the error
// does not say (a driver's own error for a broken connection), the socket
// does.
func endOfSession(err error, tc *rstpool.Conn) End {
	e, known := endOf(err)
	if known || tc == nil {
		return e
	}
	switch h, _ := tc.Check(); h {
	case rstpool.HealthClosed:
		return EndFIN
	case rstpool.HealthReset:
		return EndRST
	}
	return e
}

// shortestEnd is the shortest idle after which a session was seen to end;
// zero when none was.
func (r *rounds) shortestEnd() time.Duration {
	var d time.Duration
	for _, p := range r.all {
		if p.end != EndNone && (d == 0 || p.deadAt < d) {
			d = p.deadAt
		}
	}
	return d
}

// bounds sums up every session seen: the shortest end, and the longest
// idle survived below and above it. A peek counts as survival unless the
// end was silent (a peek does not see a silent drop).
func (r *rounds) bounds() bounds {
	var b bounds
	for _, p := range r.all {
		if p.end != EndNone && (b.end == EndNone || p.deadAt < b.dead) {
			b.dead, b.end = p.deadAt, p.end
		}
	}
	for _, p := range r.all {
		ok := p.checked
		if b.end != EndSilent {
			ok = max(ok, p.peeked)
		}
		if b.end == EndNone || ok < b.dead {
			b.alive = max(b.alive, ok)
		} else {
			b.outlived = max(b.outlived, ok)
		}
	}
	return b
}

// report calls Progress with the bracket so far when it changed, and at
// least every second.
func (r *rounds) report(n int, live []*probeConn) {
	if r.cfg.Progress == nil {
		return
	}
	b := r.bounds()
	if b.end == r.reported.end && b.dead == r.reported.dead && time.Since(r.lastAt) < time.Second {
		return
	}
	r.reported, r.lastAt = b, time.Now()
	r.cfg.Progress(ProbeProgress{Round: n, Alive: b.alive, Dead: b.dead, Idling: len(live), Elapsed: time.Since(r.start)})
}

// sleepUntilNext sleeps until the earliest active check or the next peek:
// peeks come every 1% of the longest idle time so far, between 2ms and 1s.
func sleepUntilNext(ctx context.Context, live []*probeConn) error {
	now := time.Now()
	var oldest time.Duration
	for _, p := range live {
		oldest = max(oldest, now.Sub(p.idleAt))
	}
	wait := min(max(oldest/100, 2*time.Millisecond), time.Second)
	for _, p := range live {
		wait = min(wait, p.checkAt-now.Sub(p.idleAt))
	}
	return sleepCtx(ctx, max(wait, time.Millisecond))
}

// probeDialer dials through rstpool so that the probe peeks with the same
// check as every rstpool connection, and leaves the connections as a plain
// client would: no keepalive (its probes would refresh a middlebox's idle
// timer and hide the timeout being measured), no user timeout, no idle
// limit, no check before writes, no retry of refusals.
func probeDialer(nd *net.Dialer) *rstpool.Dialer {
	return &rstpool.Dialer{NetDialer: nd, KeepAliveIdle: -1, UserTimeout: -1,
		IdleTimeout: -1, PeekAfter: -1, RefusedRetry: -1}
}

// peek asks the connection's socket, without consuming anything, whether
// the peer closed (ErrPeerFIN) or reset it (the reset error); nil when it
// looks alive, or when the check could not tell.
func peek(c *rstpool.Conn) error {
	switch h, err := c.Check(); h {
	case rstpool.HealthClosed:
		return ErrPeerFIN
	case rstpool.HealthReset:
		if err == nil {
			err = syscall.ECONNRESET // the TCP state said so, with data pending
		}
		return err
	}
	return nil
}
