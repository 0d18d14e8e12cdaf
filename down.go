package rstpool

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"time"
)

// Pauses between the probe connects to a destination that is down: the
// first comes soon (a restart that outlasted RefusedRetry may be about to
// end), later ones back off, each jittered so that processes do not probe
// together.
const (
	probeWaitMin = 250 * time.Millisecond
	probeWaitMax = 2 * time.Second
)

// destinations holds, per network and address, what the Dialers of this
// process learned from refused connects: whether the destination is down,
// and the run of refusals under way. It is shared by every Dialer: a
// destination that refused for a whole RefusedRetry budget is down for all
// of them, so that the budget is spent once per outage, not once per driver
// retry. An entry exists only while the destination refuses.
var destinations sync.Map // string → *destination

// A destination is the refused-connect state of one address.
type destination struct {
	mu        sync.Mutex
	down      bool
	since     time.Time // when it went down
	last      error     // the refusal that took it down
	nextProbe time.Time
	probeWait time.Duration
	probing   bool
	// The run of refusals under way: when its first and latest came.
	runStart, runLast time.Time
}

func destinationKey(network, addr string) string { return network + "/" + addr }

// lookupDestination returns the entry of addr, or nil when none exists:
// the fast path of a dial to a destination that never refused.
func lookupDestination(key string) *destination {
	if v, ok := destinations.Load(key); ok {
		return v.(*destination)
	}
	return nil
}

// destinationFor returns the entry of addr, creating it.
func destinationFor(key string) *destination {
	v, _ := destinations.LoadOrStore(key, &destination{})
	return v.(*destination)
}

// admit decides whether a dial may go: at once when the destination is
// up; as the one probe when it is down and a probe is due; else not at
// all, with the error that says since when it is down.
func (d *destination) admit(addr string, now time.Time) (probe bool, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch {
	case !d.down:
		return false, nil
	case !d.probing && !now.Before(d.nextProbe):
		d.probing = true
		return true, nil
	}
	return false, &downError{addr: addr, since: d.since, err: d.last}
}

// isDown reports whether another dial took the destination down.
func (d *destination) isDown() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.down
}

// markDown records that a dial was refused for its whole budget; it
// reports whether this took the destination down.
func (d *destination) markDown(now time.Time, err error) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.down {
		return false
	}
	d.down, d.since, d.last, d.probeWait = true, now, err, probeWaitMin
	d.scheduleProbe(now)
	return true
}

// refused records a refusal at now and returns when the run of refusals
// it belongs to began, whichever dials they came from: refusals no more
// than gap apart make one run.
func (d *destination) refused(now time.Time, gap time.Duration) time.Time {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.runStart.IsZero() || now.Sub(d.runLast) > gap {
		d.runStart = now
	}
	d.runLast = now
	return d.runStart
}

// probeFailed schedules the next probe, later than this one.
func (d *destination) probeFailed(now time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.probing = false
	d.probeWait = min(2*d.probeWait, probeWaitMax)
	d.scheduleProbe(now)
}

func (d *destination) scheduleProbe(now time.Time) {
	d.nextProbe = now.Add(d.probeWait/2 + rand.N(d.probeWait/2+1))
}

// markUp records a connect that succeeded; it returns how long the
// destination had been down, zero when it was up.
func (d *destination) markUp(now time.Time) time.Duration {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.probing = false
	d.runStart = time.Time{}
	if !d.down {
		return 0
	}
	d.down = false
	return now.Sub(d.since)
}

// forget drops the entry of key once its destination is up: a destination
// that refuses no more costs nothing.
func (d *destination) forget(key string) {
	d.mu.Lock()
	idle := !d.down && !d.probing
	d.mu.Unlock()
	if idle {
		destinations.CompareAndDelete(key, d)
	}
}

// A downError is why a dial was not attempted: every connect to addr was
// refused for a whole RefusedRetry budget. It matches the refusal that took
// the destination down (syscall.ECONNREFUSED).
type downError struct {
	addr  string
	since time.Time
	err   error
}

func (e *downError) Error() string {
	return fmt.Sprintf("%s down since %s (%s), not dialed until a probe connects: %v",
		e.addr, e.since.Format("15:04:05.000"), round(time.Since(e.since)), e.err)
}

func (e *downError) Unwrap() error { return e.err }
