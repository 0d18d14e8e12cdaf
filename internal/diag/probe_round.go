package diag

import (
	"bufio"
	"context"
	"net"
	"time"

	"github.com/rstpool/rstpool"
)

// rounds runs a probe's rounds and counts the connections they use.
type rounds struct {
	cfg      ProbeConfig
	proto    protocol
	start    time.Time
	used     int
	reported bounds
	lastAt   time.Time
}

// run idles a first round of connections geometrically spaced up to Max,
// then refines between the last alive and the first dead.
func (r *rounds) run(ctx context.Context) (bounds, error) {
	b, err := r.round(ctx, 1, geometric(r.cfg.Min, r.cfg.Max, min(r.cfg.Conns/2, 8)), bounds{})
	if err != nil || b.end == EndNone || b.tight() || r.cfg.Conns-r.used <= 0 {
		return b, err
	}
	b2, err := r.round(ctx, 2, linear(b.alive, b.dead, r.cfg.Conns-r.used), b)
	b.merge(b2)
	return b, err
}

// A probeConn is one idling connection of a round and when to check it.
type probeConn struct {
	c       net.Conn
	tc      *rstpool.Conn // c, for the peek; nil if the dial returned another type
	br      *bufio.Reader
	idleAt  time.Time     // end of its first exchange
	checkAt time.Duration // idle duration at which it is checked
	lastOK  time.Duration // idle duration of its last good peek
}

// round idles one connection per duration and returns the bounds it
// observed; when ctx ends first, the bounds so far and ctx's error. It
// closes every connection it opened. base is what earlier rounds found.
func (r *rounds) round(ctx context.Context, n int, durations []time.Duration, base bounds) (bounds, error) {
	conns, err := r.open(ctx, durations)
	defer func() {
		for _, p := range conns {
			p.c.Close()
		}
	}()
	var b bounds
	if err != nil {
		return b, err
	}
	live := conns
	for len(live) > 0 {
		if err := sleepUntilNext(ctx, live); err != nil {
			b.alive = max(b.alive, longestQuiet(live))
			return b, err
		}
		var done bool
		live, done = checkRound(r.cfg, r.proto, live, &b)
		r.report(n, base, b, live)
		if done {
			break
		}
	}
	return b, nil
}

func (r *rounds) open(ctx context.Context, durations []time.Duration) ([]*probeConn, error) {
	var out []*probeConn
	d := probeDialer(r.cfg.Dialer)
	for _, idle := range durations {
		c, err := d.DialContext(ctx, "tcp", r.cfg.Addr)
		if err != nil {
			return out, dialError(err)
		}
		r.used++
		tc, _ := c.(*rstpool.Conn)
		p := &probeConn{c: c, tc: tc, br: bufio.NewReader(c), checkAt: idle}
		out = append(out, p)
		// One exchange first: a pooled connection idles after a request,
		// and many servers apply their idle timeout only between requests.
		if err := exchange(r.cfg, r.proto.first, p); err != nil {
			return out, &wrapped{msg: "first exchange with " + r.cfg.Addr + ": " + err.Error(), err: err}
		}
		p.idleAt = time.Now()
	}
	return out, nil
}

// report calls Progress with the bracket so far when it changed, and at
// least every second.
func (r *rounds) report(n int, base, b bounds, live []*probeConn) {
	if r.cfg.Progress == nil {
		return
	}
	m := base
	m.merge(bounds{alive: max(b.alive, longestQuiet(live)), dead: b.dead, end: b.end})
	if m.end == r.reported.end && m.dead == r.reported.dead && time.Since(r.lastAt) < time.Second {
		return
	}
	r.reported, r.lastAt = m, time.Now()
	r.cfg.Progress(ProbeProgress{Round: n, Alive: m.alive, Dead: m.dead, Idling: len(live), Elapsed: time.Since(r.start)})
}

// longestQuiet is the longest idle time at which a live connection was
// last seen without an end.
func longestQuiet(live []*probeConn) time.Duration {
	var d time.Duration
	for _, p := range live {
		d = max(d, p.lastOK)
	}
	return d
}

func exchange(cfg ProbeConfig, f func(net.Conn, *bufio.Reader) error, p *probeConn) error {
	if err := p.c.SetDeadline(time.Now().Add(cfg.Wait)); err != nil {
		return err
	}
	return f(p.c, p.br)
}

// sleepUntilNext sleeps until the earliest active check or the next peek:
// peeks come every 2% of the idle time so far, between 2ms and 1s.
func sleepUntilNext(ctx context.Context, live []*probeConn) error {
	now := time.Now()
	oldest := now.Sub(live[0].idleAt)
	wait := min(max(oldest/50, 2*time.Millisecond), time.Second)
	for _, p := range live {
		wait = min(wait, p.checkAt-now.Sub(p.idleAt))
	}
	t := time.NewTimer(max(wait, 0))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// checkRound peeks every live connection and checks those whose time has
// come (with the protocol's exchange, or the peek alone when it has none).
// It returns the connections still idling, and done when a flow was seen
// to end.
func checkRound(cfg ProbeConfig, proto protocol, live []*probeConn, b *bounds) ([]*probeConn, bool) {
	var next []*probeConn
	for _, p := range live {
		idle := time.Since(p.idleAt)
		if p.tc != nil {
			if err := peek(p.tc); err != nil {
				b.alive, b.dead, b.end = max(b.alive, p.lastOK), idle, endOf(err)
				return nil, true
			}
			p.lastOK = idle
		}
		if idle < p.checkAt {
			next = append(next, p)
			continue
		}
		if proto.again != nil {
			if err := exchange(cfg, proto.again, p); err != nil {
				b.dead, b.end = idle, endOf(err)
				return nil, true
			}
		}
		b.alive = max(b.alive, idle)
	}
	return next, false
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
// the peer closed (errPeerFIN) or reset it (the reset error); nil when it
// looks alive or the platform cannot tell.
func peek(c *rstpool.Conn) error {
	h, err := c.Check()
	if h == rstpool.HealthClosed {
		return errPeerFIN
	}
	return err // the reset, or why the check failed; nil when it may be alive
}
