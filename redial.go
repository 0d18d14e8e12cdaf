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
// the RefusedRetry budget and ctx.
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
// the evidence that the destination is down, not restarting. The budget
// runs from the first refusal of the destination's current run of
// refusals, whichever dial it came from, so that callers whose deadlines
// are shorter than RefusedRetry still add up to the evidence. Refused
// retries take nothing from a RetryBudget: a refusal costs the server
// nothing (its kernel answers), the down state bounds an outage to one
// budget, and a restart met by many connects at once must not fail most of
// them, which would send them back together.
func (r *redial) dial(ctx context.Context) (c net.Conn, exhausted bool, err error) {
	wait := refusedBackoffMin
	for {
		c, err = r.nd.DialContext(ctx, r.network, r.addr)
		if err == nil || r.budget <= 0 || Classify(err) != ClassRefused {
			return c, false, err
		}
		if r.dst == nil {
			r.dst = destinationFor(r.key)
		}
		deadline := r.dst.refused(time.Now(), r.budget).Add(r.budget)
		sleep := wait/2 + rand.N(wait/2+1)
		switch {
		case time.Now().Add(sleep).After(deadline):
			return nil, true, err
		case r.dst.isDown():
			return nil, false, err // another dial found it down meanwhile
		}
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
