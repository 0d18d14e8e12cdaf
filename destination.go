package rstpool

import (
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// The facts a process keeps about destinations that refuse, and how long.
const (
	// runGap is how far apart two failed connects to one destination may
	// be and still belong to one run of failures: longer than any pause
	// between refused connects (refusedBackoffCap) or probes.
	runGap = time.Second

	// retryGap is how far apart the dials of the process that wait out a
	// run of failed connects to one destination connect again: a dial
	// whose backoff step ends within retryGap of another's connect waits
	// another step, since that connect told everyone what its own would
	// (refused, or back: a return wakes every waiting dial). However many
	// dials wait, the destination sees at most one retry per retryGap
	// while it is down, and its return is seen about as soon.
	retryGap = 10 * time.Millisecond

	// wakeSpread bounds how long the dials waiting out a run of failed
	// connects take to go again once a connect succeeds (see wake): spread
	// as the run was long, so that a restart's waiting dials do not land
	// in the new listen queue at once.
	wakeSpread = 250 * time.Millisecond

	// destinationTTL is how long the facts of a destination are kept after
	// its last failed connect: ten times runGap, past which they decide
	// nothing. maxDestinations bounds how many are kept at once (a few
	// hundred bytes each), however many addresses refuse.
	destinationTTL  = 10 * runGap
	maxDestinations = 4096
)

// destinations holds what the Dialers of this process learned from
// connects, per network and address: the run of failed connects under way
// (refused, or answered by a reset before the first byte) and when a
// connect last went. These are facts, shared; each Dialer decides from its
// own RefusedRetry whether a run makes the destination down for it. An
// entry exists only while its destination fails; the table is bounded.
var destinations destTable

type destKey struct{ network, addr string }

type destTable struct {
	n     atomic.Int32 // entries; zero spares every dial the lookup
	mu    sync.Mutex
	m     map[destKey]*destination
	sweep *time.Timer // runs when the oldest entry expires
}

// A destination is the facts of one address.
type destination struct {
	key destKey

	mu       sync.Mutex
	runStart time.Time // the first failed connect of the run under way; zero: none
	runLast  time.Time // its latest
	resets   bool      // the run holds connects answered by a reset: only an answer ends it
	last     error     // the latest failure
	lastTry  time.Time // the latest connect, by any Dialer
	upAt     time.Time // the latest connect that succeeded in a run that holds resets
	probes   int       // probe connects under way
	next     *wakeup   // the return the dials waiting to retry wait for
	reported []report  // the Dialers that reported it down (EventDown), to be told when it is up
}

// A report is a Dialer's EventDown: it hears of the destination's return.
type report struct {
	s     *settings
	since time.Time
}

// lookup returns the entry of k, or nil: the fast path of a dial to a
// destination that never failed.
func (t *destTable) lookup(k destKey) *destination {
	if t.n.Load() == 0 {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.m[k]
}

// entry returns the entry of k, creating it.
func (t *destTable) entry(k destKey, now time.Time) *destination {
	t.mu.Lock()
	defer t.mu.Unlock()
	if d := t.m[k]; d != nil {
		return d
	}
	if t.m == nil {
		t.m = make(map[destKey]*destination)
	}
	if len(t.m) >= maxDestinations {
		t.expireLocked(now, true)
	}
	d := &destination{key: k}
	t.m[k] = d
	t.n.Store(int32(len(t.m)))
	if t.sweep == nil {
		t.sweep = time.AfterFunc(destinationTTL, t.expire)
	}
	return d
}

// forget drops d once its destination answers again.
func (t *destTable) forget(d *destination) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m[d.key] == d && d.settled() {
		delete(t.m, d.key)
		t.n.Store(int32(len(t.m)))
	}
}

// expire drops the entries with no failed connect for destinationTTL, and
// runs again when the oldest of the rest expires; with none left, nothing
// is scheduled and the map goes too (a map keeps its storage when its
// entries go: thousands of churned addresses would hold it for good).
func (t *destTable) expire() {
	t.mu.Lock()
	defer t.mu.Unlock()
	next := t.expireLocked(time.Now(), false)
	switch {
	case len(t.m) == 0:
		t.m, t.sweep = nil, nil
	default:
		t.sweep.Reset(next)
	}
}

// expireLocked drops expired entries and, when full is set and none
// expired, the one whose last failure is oldest. It returns when the next
// entry expires.
func (t *destTable) expireLocked(now time.Time, full bool) time.Duration {
	var oldest *destination
	var oldestAt time.Time
	next := destinationTTL
	for k, d := range t.m {
		last, busy := d.lastFailure()
		age := now.Sub(last)
		switch {
		case busy:
		case age >= destinationTTL:
			delete(t.m, k)
			continue
		case oldest == nil || last.Before(oldestAt):
			oldest, oldestAt = d, last
		}
		next = min(next, max(destinationTTL-age, time.Second))
	}
	if full && len(t.m) >= maxDestinations && oldest != nil {
		delete(t.m, oldest.key)
	}
	t.n.Store(int32(len(t.m)))
	return next
}

func (d *destination) lastFailure() (time.Time, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.runLast, d.probes > 0
}

// settled reports whether no run is under way and no probe is out.
func (d *destination) settled() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.runStart.IsZero() && d.probes == 0
}

// downFor reports whether the run under way makes the destination down for
// a Dialer whose RefusedRetry is budget: its connects have been failing
// for at least that long, the latest within runGap, and none succeeded
// since. d.mu is held.
func (d *destination) downFor(now time.Time, budget time.Duration) bool {
	return budget > 0 && !d.runStart.IsZero() && now.Sub(d.runLast) <= runGap &&
		now.Sub(d.runStart) >= budget && !d.upAt.After(d.runLast)
}

// admit decides how a dial of a Dialer with RefusedRetry budget goes: at
// once, retrying refusals, when the destination is not down for it; as a
// probe when it is: one connect, as a net.Dialer's, whose refusal fails
// the dial at once. since is when the destination went down for it.
func (d *destination) admit(now time.Time, budget time.Duration) (probe bool, since time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.lastTry = now
	if !d.downFor(now, budget) {
		return false, time.Time{}
	}
	d.probes++
	return true, d.runStart.Add(budget)
}

// refused records a failed connect at now and returns when the run it
// belongs to began, whichever dials or Dialers its failures came from.
func (d *destination) refused(now time.Time, err error) time.Time {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.runStart.IsZero() || now.Sub(d.runLast) > runGap {
		d.runStart, d.resets = now, false
	}
	d.runLast, d.last, d.lastTry = now, err, now
	if Classify(err) != ClassRefused {
		d.resets = true
	}
	return d.runStart
}

// retryDue reports whether a dial that waits out the run of failed
// connects may connect again at now, mine being when its own latest
// connect failed: when the run has ended, when no connect went since its
// own, or when the latest went retryGap ago or more. Its connect is then
// the latest.
func (d *destination) retryDue(now, mine time.Time) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.runStart.IsZero() || d.lastTry.Equal(mine) || now.Sub(d.lastTry) >= retryGap {
		d.lastTry = now
		return true
	}
	return false
}

// connected records a connect that succeeded, as a probe or not, and wakes
// the dials that wait out the run (see wake). It ends a run of refusals,
// and returns the Dialers that reported the destination down, to be told.
// A run that holds resets goes on until a connection answers (see
// answered): whatever accepted the connect may reset it too. But the
// destination is no longer down until the run's next failure: the connect
// that found it back may be a health checker's, closed unread, and the
// dials of every other Dialer go.
func (d *destination) connected(now time.Time) []report {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.lastTry = now
	d.wake(now)
	if d.resets {
		d.upAt = now
		return nil
	}
	d.runStart = time.Time{}
	r := d.reported
	d.reported = nil
	return r
}

// reportDown records that the Dialer of s reports the destination down,
// when the run under way makes it down for that Dialer; false when it
// does not, or when the Dialer had reported it already.
func (d *destination) reportDown(s *settings, now time.Time) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.downFor(now, s.refusedRetry) {
		return false
	}
	for _, r := range d.reported {
		if r.s == s {
			return false
		}
	}
	d.reported = append(d.reported, report{s: s, since: now})
	return true
}

// A wakeup is a return of a destination, as the dials that wait out its
// run of failed connects await it.
type wakeup struct {
	back chan struct{} // closed at the return
	// Set under the destination's lock; final once back is closed:
	n       int           // how many dials wait for it
	dialers []*settings   // the Dialers whose dials wait, in the order their first began
	spread  time.Duration // how long they take to go

	mu   sync.Mutex
	last time.Time // when the latest woken dial went
}

// A turn is a dial's place among those that wait for a destination's
// return: the first of each Dialer to wait go first, in the order their
// Dialers began to wait, then the others in the order they began.
type turn struct {
	w     *wakeup
	lead  bool // the first of its Dialer's dials to wait
	place int  // its place among the leading dials, or among the others
}

// queue enters the dial of the Dialer of s whose turn t is among those
// that wait for the destination's return, unless it waits for it already:
// a dial keeps its place over its retries.
func (d *destination) queue(t *turn, s *settings) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.next == nil {
		d.next = &wakeup{back: make(chan struct{})}
	}
	w := d.next
	if t.w == w {
		return
	}
	t.w, t.lead = w, !slices.Contains(w.dialers, s)
	if t.lead {
		t.place = len(w.dialers)
		w.dialers = append(w.dialers, s)
	} else {
		t.place = w.n - len(w.dialers)
	}
	w.n++
}

// wake tells the dials waiting to retry that the destination is back at
// now, and that they go over as long as the run of failed connects lasted,
// at most wakeSpread: at about the rate they began to wait, and each
// within about a quarter of a second of the return. d.mu is held, and the
// run not yet ended.
func (d *destination) wake(now time.Time) {
	if d.next != nil {
		if !d.runStart.IsZero() {
			d.next.spread = min(max(now.Sub(d.runStart), 0), wakeSpread)
		}
		close(d.next.back)
		d.next = nil
	}
}

// slot returns how long after the return the dial of t goes: the dials a
// return woke go evenly over its spread, so that a server that restarted
// meets them one by one in its listen queue. The first dial of each
// Dialer goes first, so that every client uses the destination again
// soon after its return however many dials of other clients wait; the
// others follow in the order they began to wait, each client's together
// (a fan-out's dials began to wait together) and in the order its
// requests came. Call it once the return came.
func (t turn) slot() time.Duration {
	place := t.place
	if !t.lead {
		place += len(t.w.dialers) // final once back is closed
	}
	return t.w.spread * time.Duration(place) / time.Duration(t.w.n)
}

// pace returns how much longer a dial woken by w waits at now, its slot
// come, so that it goes at least spread/n after the woken dial before it:
// on a busy machine, timers that fire late together do not send their
// dials together.
func (w *wakeup) pace(now time.Time) time.Duration {
	gap := w.spread / time.Duration(w.n)
	w.mu.Lock()
	defer w.mu.Unlock()
	at := w.last.Add(gap)
	if at.Before(now) {
		at = now
	}
	w.last = at
	return at.Sub(now)
}

// answered records that a connection to the destination carried a byte
// back: whatever failed before, it serves again.
func (d *destination) answered() {
	d.mu.Lock()
	d.wake(time.Now())
	d.runStart, d.resets = time.Time{}, false
	d.mu.Unlock()
}

// probeDone ends a probe connect, whatever it found.
func (d *destination) probeDone() {
	d.mu.Lock()
	d.probes--
	d.mu.Unlock()
}

// runDeadline returns when a Dialer with RefusedRetry budget stops
// retrying the run under way.
func (d *destination) runDeadline(budget time.Duration) time.Time {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.runStart.Add(budget)
}

// A downError is why a dial failed after one connect, without retrying:
// every connect to addr had failed for a whole RefusedRetry budget. It
// matches the connect's failure (syscall.ECONNREFUSED for a refusal).
type downError struct {
	addr  string
	since time.Time
	err   error
}

func (e *downError) Error() string {
	return fmt.Sprintf("%s down since %s (%s), one connect, not retried: %v",
		e.addr, e.since.Format("15:04:05.000"), round(time.Since(e.since)), e.err)
}

func (e *downError) Unwrap() error { return e.err }

// isDown reports whether err's chain holds a *downError.
func isDown(err error) bool {
	return walk(err, func(e error) bool { _, ok := e.(*downError); return ok })
}
