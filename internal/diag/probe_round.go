package diag

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"time"

	"github.com/rstpool/rstpool"
)

// A probeConn is one idling connection of a round and when to check it.
type probeConn struct {
	c       net.Conn
	tc      *rstpool.Conn // c, for the peek; nil if the dial returned another type
	br      *bufio.Reader
	idleAt  time.Time     // end of its last exchange
	checkAt time.Duration // idle duration at which it is checked actively
	lastOK  time.Duration // idle duration of its last good peek
}

// probeRound idles one connection per duration and returns the bounds it
// observed. It closes every connection it opened.
func probeRound(ctx context.Context, cfg ProbeConfig, durations []time.Duration) (bounds, error) {
	conns, err := openProbes(ctx, cfg, durations)
	defer func() {
		for _, p := range conns {
			p.c.Close()
		}
	}()
	if err != nil {
		return bounds{}, err
	}
	var b bounds
	live := conns
	for len(live) > 0 {
		if err := sleepUntilNext(ctx, live); err != nil {
			return bounds{}, err
		}
		var done bool
		live, done = checkRound(cfg, live, &b)
		if done {
			return b, nil
		}
	}
	return b, nil
}

func openProbes(ctx context.Context, cfg ProbeConfig, durations []time.Duration) ([]*probeConn, error) {
	var out []*probeConn
	d := probeDialer(cfg.Dialer)
	for _, idle := range durations {
		c, err := d.DialContext(ctx, "tcp", cfg.Addr)
		if err != nil {
			return out, fmt.Errorf("probe: %w", err)
		}
		tc, _ := c.(*rstpool.Conn)
		p := &probeConn{c: c, tc: tc, br: bufio.NewReader(c), checkAt: idle}
		out = append(out, p)
		// One exchange first: a pooled connection idles after a request,
		// and some servers apply their idle timeout only between requests.
		if err := exchange(cfg, p); err != nil {
			return out, fmt.Errorf("probe: first exchange with %s: %w", cfg.Addr, err)
		}
		p.idleAt = time.Now()
	}
	return out, nil
}

func exchange(cfg ProbeConfig, p *probeConn) error {
	if err := p.c.SetDeadline(time.Now().Add(cfg.Wait)); err != nil {
		return err
	}
	return protocols[cfg.Proto](p.c, p.br)
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

// checkRound peeks every live connection and checks actively those whose
// time has come. It returns the connections still idling, and done when a
// flow was seen to end.
func checkRound(cfg ProbeConfig, live []*probeConn, b *bounds) ([]*probeConn, bool) {
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
		if err := exchange(cfg, p); err != nil {
			b.dead, b.end = idle, endOf(err)
			return nil, true
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
		IdleTimeout: -1, ValidateAfter: -1, RefusedRetry: -1}
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
