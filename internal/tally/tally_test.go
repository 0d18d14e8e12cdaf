package tally

import (
	"fmt"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rstpool/rstpool"
)

// collect returns the series of t by a readable key.
func collect(t *Tally) map[string]Series {
	out := make(map[string]Series)
	t.Each(func(s *Series) {
		k := fmt.Sprintf("%s %s %s reason=%s class=%s cause=%s", s.Kind, s.Source, s.Destination, s.Reason, s.Class, s.Cause)
		c := *s
		c.Buckets = append([]uint64(nil), s.Buckets...)
		out[k] = c
	})
	return out
}

// Each kind keeps the labels it carries and drops the others, so that a
// field a kind does not document cannot split its series.
func TestSeriesCarryTheirKindsLabels(t *testing.T) {
	tl := New(0)
	reset := &rstpool.ConnError{Op: "read", Class: rstpool.ClassReset, Err: syscall.ECONNRESET}
	events := []rstpool.Event{
		{Kind: rstpool.EventRetry, Source: "transport", Addr: "a:1", Reason: "idempotent", Err: reset, Duration: time.Second},
		{Kind: rstpool.EventRetry, Source: "transport", Addr: "a:1", Reason: "idempotent", Err: reset, Cause: rstpool.CausePeerDied},
		{Kind: rstpool.EventSurfaced, Source: "pool", Class: rstpool.ClassRefused, Cause: rstpool.CauseNotListening, Reason: "ignored"},
		{Kind: rstpool.EventRetired, Source: "sql", Addr: "b:2", Reason: "lifetime", Class: rstpool.ClassReset, Duration: 2 * time.Second},
		{Kind: rstpool.EventUntracked, Source: "pool", Addr: "c:3"},
		{Kind: rstpool.EventUp, Source: "dialer", Addr: "b:2", Duration: 1500 * time.Millisecond},
		{Kind: rstpool.EventDial, Source: "somebody", Addr: "b:2", Duration: 2 * time.Millisecond},
		{Kind: 200, Source: "dialer"},
	}
	for _, e := range events {
		tl.Observe(e)
	}
	got := collect(tl)
	require.Len(t, got, 6, "%v", got)
	retry := got["retry transport a:1 reason=idempotent class=reset cause="]
	require.EqualValues(t, 2, retry.Count)
	require.Equal(t, time.Second, retry.Sum)
	require.EqualValues(t, 1, got["surfaced pool unknown reason= class=refused cause=not-listening"].Count)
	require.Equal(t, 2*time.Second, got["retired sql b:2 reason=lifetime class= cause="].Sum)
	require.EqualValues(t, 1, got["untracked pool  reason= class= cause="].Count)
	require.Equal(t, 1500*time.Millisecond, got["up dialer b:2 reason= class= cause="].Sum)
	dial := got["dial other b:2 reason= class=none cause="]
	require.EqualValues(t, 1, dial.Count)
	require.Equal(t, []uint64{0, 1, 1, 1, 1, 1, 1, 1, 1, 1}, dial.Buckets, "2 ms is in the 5 ms bucket and every one above")
}

// Past the cap every new destination counts as "other"; those seen before
// keep their own label; with the label off, none is kept.
func TestDestinationsAreCapped(t *testing.T) {
	tl := New(2)
	for _, addr := range []string{"a:1", "b:2", "c:3", "a:1", "d:4", ""} {
		tl.Observe(rstpool.Event{Kind: rstpool.EventDialRetry, Source: "dialer", Addr: addr})
	}
	got := collect(tl)
	require.EqualValues(t, 2, got["dial-retry dialer a:1 reason= class= cause="].Count)
	require.EqualValues(t, 1, got["dial-retry dialer b:2 reason= class= cause="].Count)
	require.EqualValues(t, 2, got["dial-retry dialer other reason= class= cause="].Count)
	require.EqualValues(t, 1, got["dial-retry dialer unknown reason= class= cause="].Count)
	require.Len(t, got, 4)
	require.Equal(t, "other", tl.Destination("e:5"))
	require.Equal(t, map[string]time.Duration{"a:1": time.Second, "other": 2 * time.Second},
		tl.Learned(map[string]time.Duration{"a:1": time.Second, "c:3": 3 * time.Second, "d:4": 2 * time.Second}))

	off := New(-1)
	off.Observe(rstpool.Event{Kind: rstpool.EventDialRetry, Source: "dialer", Addr: "a:1"})
	require.Contains(t, collect(off), "dial-retry dialer  reason= class= cause=")
	require.Equal(t, map[string]time.Duration{"": time.Second},
		off.Learned(map[string]time.Duration{"a:1": time.Second, "c:3": 3 * time.Second}))
}

func TestLabelValuesAreBounded(t *testing.T) {
	require.Equal(t, "other", reasons[reasonIndex("made-up")])
	require.Equal(t, "none", reasons[reasonIndex("")])
	require.Equal(t, "ping-failed", reasons[reasonIndex("ping-failed")])
	require.Equal(t, "other", sources[sourceIndex("made-up")])
	require.Equal(t, "idle-reaped", CauseLabel[rstpool.CauseIdleReaped])
	require.Equal(t, "unknown", CauseLabel[200])
	require.Equal(t, "peer-closed", ClassLabel[rstpool.ClassPeerClosed])
	require.Equal(t, "destination-down", slug("Destination  down (refused for the whole budget)"))
}

// Observers on many goroutines lose no count, and a histogram's count is
// never below its buckets while connects go on.
func TestObserveConcurrently(t *testing.T) {
	tl := New(0)
	const goroutines, each = 4, 2000
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range each {
				tl.Observe(rstpool.Event{Kind: rstpool.EventDial, Source: "dialer", Addr: fmt.Sprintf("h%d:%d", g, i%50), Duration: time.Millisecond})
			}
		})
	}
	wg.Go(func() {
		for range 50 {
			tl.Each(func(s *Series) {
				if n := len(s.Buckets); n > 0 && s.Buckets[n-1] > uint64(s.Count) {
					t.Errorf("bucket %d above count %d", s.Buckets[n-1], s.Count)
				}
			})
		}
	})
	wg.Wait()
	var total int64
	tl.Each(func(s *Series) { total += s.Count })
	require.EqualValues(t, goroutines*each, total)
	require.Len(t, collect(tl), DefaultDestinations+1, "the cap, and other")
}

// Counting an event of a series that exists allocates nothing.
func TestObserveAllocatesNothing(t *testing.T) {
	tl := New(0)
	e := rstpool.Event{Kind: rstpool.EventSurfaced, Source: "transport", Addr: "a:1", Class: rstpool.ClassReset, Cause: rstpool.CausePeerDied}
	retry := rstpool.Event{Kind: rstpool.EventRetry, Source: "pool", Addr: "a:1", Reason: "idempotent",
		Err: &rstpool.ConnError{Op: "read", Class: rstpool.ClassReset, Err: syscall.ECONNRESET}}
	dial := rstpool.Event{Kind: rstpool.EventDial, Source: "dialer", Addr: "a:1", Duration: time.Millisecond}
	for _, e := range []rstpool.Event{e, retry, dial} {
		tl.Observe(e)
		require.Zero(t, testing.AllocsPerRun(100, func() { tl.Observe(e) }), e.Kind.String())
	}
}

func TestNamed(t *testing.T) {
	var n Named[*int]
	one, two := new(1), new(2)
	require.NoError(t, n.Add("op", "b", one))
	require.NoError(t, n.Add("op", "a", two))
	require.ErrorContains(t, n.Add("op", "a", one), `op "a": the name is already in use`)
	require.ErrorContains(t, n.Add("op", "", one), "op: the name is empty")
	require.ErrorContains(t, n.Add("op", "c", nil), `op "c": nil`)
	var names []string
	n.Each(func(name string, _ *int) { names = append(names, name) })
	require.Equal(t, []string{"a", "b"}, names)
	require.True(t, n.Remove("a"))
	require.False(t, n.Remove("a"))
}
