package rstpool

import (
	"context"
	"math/rand/v2"
	"net"
	"time"
)

// Backoff between refused connects: it starts short because a restarting
// server usually listens again within a second, and doubles up to a cap.
const (
	refusedBackoffMin = 25 * time.Millisecond
	refusedBackoffMax = 400 * time.Millisecond
)

// A redial is one DialContext's connects to one address: the first, and
// the retries of a refused one with jittered exponential backoff within
// the RefusedRetry budget, the destination's retry budget and ctx.
type redial struct {
	nd       *net.Dialer
	network  string
	addr     string
	key      string
	budget   time.Duration // <= 0: a refusal is final
	observer Observer
	dst      *destination // nil until the address refuses
}

// dial connects. exhausted reports that refusals lasted the whole budget:
// the evidence that the destination is down, not restarting. A dial that
// has to retry takes one token of the destination's retry budget for its
// whole backoff, and gives it back if it connects: a restart ridden out
// costs nothing, an outage costs at most a budget of retrying dials.
func (r *redial) dial(ctx context.Context) (c net.Conn, exhausted bool, err error) {
	deadline := time.Now().Add(r.budget)
	wait := refusedBackoffMin
	retrying := false
	for {
		c, err = r.nd.DialContext(ctx, r.network, r.addr)
		if err == nil || r.budget <= 0 || Classify(err) != ClassRefused {
			if err == nil && retrying {
				r.dst.budget.refund()
			}
			return c, false, err
		}
		if r.dst == nil {
			r.dst = destinationFor(r.key)
		}
		sleep := wait/2 + rand.N(wait/2+1)
		switch {
		case time.Now().Add(sleep).After(deadline):
			return nil, true, err
		case r.dst.isDown():
			return nil, false, err // another dial found it down meanwhile
		case !retrying && !r.dst.budget.withdraw():
			r.observer.emit(Event{Kind: EventRetryDenied, Source: "dialer", Addr: r.addr, Reason: "refused", Err: err})
			return nil, false, err
		}
		retrying = true
		r.observer.emit(Event{Kind: EventDialRetry, Source: "dialer", Addr: r.addr, Duration: sleep, Err: err})
		if !sleepCtx(ctx, sleep) {
			return nil, false, err
		}
		wait = min(wait*2, refusedBackoffMax)
	}
}

// sleepCtx waits d or until ctx is done; it reports whether it waited d.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
