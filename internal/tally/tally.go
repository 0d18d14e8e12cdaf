// Package tally counts rstpool events for the metrics modules of this
// repository (rstprom, rstotel). Observe costs a map lookup and two or
// three atomic adds, takes no lock and allocates nothing once a series
// exists; the exporters read the counts with Each when they are collected.
//
// A series is one event kind with the labels that kind carries (see
// Series). Its labels come from bounded sets: the known sources, reasons,
// classes and causes, and at most a fixed number of destinations, past
// which every new destination counts as "other". So the number of series
// is bounded whatever the traffic.
package tally

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/rstpool/rstpool"
)

// DialBuckets are the upper bounds of the dial duration histogram: a
// loopback connect takes well under a millisecond, a connect across a
// region tens of milliseconds, one retried through a refusal up to
// rstpool.DefaultRefusedRetry (3 s), and rstpool.DefaultDialTimeout is
// 30 s.
var DialBuckets = [...]time.Duration{
	time.Millisecond, 5 * time.Millisecond, 10 * time.Millisecond, 50 * time.Millisecond,
	100 * time.Millisecond, 500 * time.Millisecond, time.Second, 3 * time.Second,
	10 * time.Second, 30 * time.Second,
}

// A Tally counts events. Its methods are safe for concurrent use.
type Tally struct {
	dests destinations
	// cells is replaced, never modified, when a series is added: readers
	// load it without a lock.
	cells atomic.Pointer[map[key]*cell]
	mu    sync.Mutex // serializes additions to cells
}

// A cell holds one series' counts.
type cell struct {
	n    atomic.Int64
	sum  atomic.Int64                        // nanoseconds
	hist *[len(DialBuckets) + 1]atomic.Int64 // dial events only
}

// New returns a Tally that labels at most maxDestinations distinct
// destinations (DefaultDestinations when zero; no destination label when
// negative).
func New(maxDestinations int) *Tally {
	t := &Tally{}
	t.dests.init(maxDestinations)
	cells := make(map[key]*cell)
	t.cells.Store(&cells)
	return t
}

// Observe counts e. It is an rstpool.Observer.
func (t *Tally) Observe(e rstpool.Event) {
	k, ok := t.keyOf(&e)
	if !ok {
		return
	}
	c := (*t.cells.Load())[k]
	if c == nil {
		c = t.add(k)
	}
	c.n.Add(1)
	if e.Duration > 0 {
		c.sum.Add(int64(e.Duration))
	}
	if c.hist != nil {
		c.hist[bucketOf(e.Duration)].Add(1)
	}
}

// add returns the cell of k, adding it by copying the map.
func (t *Tally) add(k key) *cell {
	t.mu.Lock()
	defer t.mu.Unlock()
	old := *t.cells.Load()
	if c := old[k]; c != nil {
		return c
	}
	c := &cell{}
	if k.fields().kind == rstpool.EventDial {
		c.hist = new([len(DialBuckets) + 1]atomic.Int64)
	}
	cells := make(map[key]*cell, len(old)+1)
	for ok, oc := range old {
		cells[ok] = oc
	}
	cells[k] = c
	t.cells.Store(&cells)
	return c
}

func bucketOf(d time.Duration) int {
	for i, b := range DialBuckets {
		if d <= b {
			return i
		}
	}
	return len(DialBuckets)
}

// keyOf keeps the labels e's kind carries; it reports false for a kind
// it does not know.
func (t *Tally) keyOf(e *rstpool.Event) (key, bool) {
	k := fields{kind: e.Kind, source: sourceIndex(e.Source)}
	switch e.Kind {
	case rstpool.EventDial:
		k.class = classOf(e)
	case rstpool.EventDialRetry, rstpool.EventDown, rstpool.EventUp, rstpool.EventLearned:
	case rstpool.EventRetired, rstpool.EventCaughtDead, rstpool.EventRetryDenied:
		k.reason = reasonIndex(e.Reason)
	case rstpool.EventRetry:
		k.reason, k.class = reasonIndex(e.Reason), classOf(e)
	case rstpool.EventSurfaced:
		k.class, k.cause = classOf(e), e.Cause
	case rstpool.EventUntracked:
		return k.pack(), true // a consumer, not a destination
	default:
		return 0, false
	}
	k.dest = t.dests.index(e.Addr)
	return k.pack(), true
}

// classOf is e's Class, or its error's when the event does not say: read
// from a *ConnError without a walk of the chain (which allocates), else
// classified.
func classOf(e *rstpool.Event) rstpool.Class {
	if e.Class != rstpool.ClassNone || e.Err == nil {
		return e.Class
	}
	if ce, ok := e.Err.(*rstpool.ConnError); ok && ce.Class != rstpool.ClassNone {
		return ce.Class
	}
	return rstpool.Classify(e.Err)
}
