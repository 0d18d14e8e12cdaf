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

// dialRefusedRetry connects, retrying a refused connect with jittered
// exponential backoff until budget is spent or ctx is done. Any other
// failure is returned at once. The last refusal is returned when the budget
// runs out, so the caller sees ClassRefused promptly.
func dialRefusedRetry(ctx context.Context, nd *net.Dialer, network, addr string, budget time.Duration) (net.Conn, error) {
	deadline := time.Now().Add(budget)
	wait := refusedBackoffMin
	for {
		c, err := nd.DialContext(ctx, network, addr)
		if err == nil || budget <= 0 || Classify(err) != ClassRefused {
			return c, err
		}
		sleep := wait/2 + rand.N(wait/2+1)
		if time.Now().Add(sleep).After(deadline) {
			return nil, err
		}
		t := time.NewTimer(sleep)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, err
		case <-t.C:
		}
		wait = min(wait*2, refusedBackoffMax)
	}
}
