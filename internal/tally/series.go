package tally

import (
	"time"

	"github.com/rstpool/rstpool"
)

// A Series is the counts of one event kind with one set of labels. A
// label the kind does not carry is empty: every kind but EventUntracked
// carries Destination (when the Tally labels destinations); EventDial
// carries Class ("none" for a connect that succeeded); EventRetired,
// EventCaughtDead and EventRetryDenied carry Reason; EventRetry carries
// Reason and Class (of the first attempt's failure); EventSurfaced
// carries Class and Cause.
type Series struct {
	Kind        rstpool.EventKind
	Source      string
	Destination string
	Reason      string
	Class       string
	Cause       string

	Count int64
	// Sum is the sum of the events' Durations: the time connects took
	// (EventDial), destinations were down (EventUp), connections had been
	// idle (EventRetired, EventCaughtDead).
	Sum time.Duration
	// Buckets, for EventDial, counts the connects that took at most each
	// of DialBuckets, cumulatively; nil for other kinds.
	Buckets []uint64
}

// Destinations reports whether series carry a Destination.
func (t *Tally) Destinations() bool { return t.dests.max >= 0 }

// Each calls fn with each series counted so far, in no particular order.
// fn must not keep s.
func (t *Tally) Each(fn func(s *Series)) {
	// The cells first: a destination is named before any cell counts it.
	cells := *t.cells.Load()
	names := t.dests.snapshot()
	var s Series
	var buckets [len(DialBuckets)]uint64
	for k, c := range cells {
		f := k.fields()
		s = Series{Kind: f.kind, Source: sources[f.source], Count: c.n.Load(), Sum: time.Duration(c.sum.Load())}
		t.label(&s, f, names)
		if c.hist != nil {
			var n uint64
			for i := range buckets {
				n += uint64(c.hist[i].Load())
				buckets[i] = n
			}
			// The count is read from the histogram too, so that no bucket
			// exceeds it while connects go on.
			s.Buckets, s.Count = buckets[:], int64(n+uint64(c.hist[len(buckets)].Load()))
		}
		fn(&s)
	}
}

// label sets the labels s's kind carries.
func (t *Tally) label(s *Series, f fields, names []string) {
	if f.kind != rstpool.EventUntracked && t.Destinations() {
		s.Destination = names[f.dest]
	}
	switch f.kind {
	case rstpool.EventDial:
		s.Class = ClassLabel[f.class]
	case rstpool.EventRetired, rstpool.EventCaughtDead, rstpool.EventRetryDenied:
		s.Reason = reasons[f.reason]
	case rstpool.EventRetry:
		s.Reason, s.Class = reasons[f.reason], ClassLabel[f.class]
	case rstpool.EventSurfaced:
		s.Class, s.Cause = ClassLabel[f.class], CauseLabel[f.cause]
	}
}

// Destination returns the label value of addr: addr itself while fewer
// than the cap are labelled, else Other, or Unknown for "". Exporters use
// it for the destinations of stats, so that events and stats agree.
func (t *Tally) Destination(addr string) string {
	i := t.dests.index(addr)
	if i < 2 {
		return t.dests.snapshot()[i]
	}
	return addr
}
