package rstpool

import (
	"sync/atomic"
	"time"
)

// transportCounters are the live counters behind TransportStats.
type transportCounters struct {
	requests atomic.Int64
	denied   atomic.Int64
	retries  [numRetryReasons]atomic.Int64
	errors   [ClassOther + 1]atomic.Int64
}

// TransportStats is a snapshot of what a Transport did since its first
// request. Counters only grow.
type TransportStats struct {
	requests int64
	lowered  int64
	denied   int64
	retries  [numRetryReasons]int64
	errors   [ClassOther + 1]int64
	learned  map[string]time.Duration
}

// Stats returns a snapshot of the Transport's counters.
func (t *Transport) Stats() TransportStats {
	c := &t.stats
	s := TransportStats{requests: c.requests.Load(), lowered: t.learn.learned.Load(), denied: c.denied.Load(), learned: t.learn.snapshot()}
	for i := range c.retries {
		s.retries[i] = c.retries[i].Load()
	}
	for i := range c.errors {
		s.errors[i] = c.errors[i].Load()
	}
	return s
}

// Requests returns the number of calls to RoundTrip.
func (s TransportStats) Requests() int64 { return s.requests }

// Retries returns the number of requests sent a second time, all reasons.
func (s TransportStats) Retries() int64 { return sum(s.retries[:]) }

// RetriesBy returns the number of requests sent a second time for reason r.
func (s TransportStats) RetriesBy(r RetryReason) int64 {
	if int(r) < len(s.retries) {
		return s.retries[r]
	}
	return 0
}

// RetriesDenied returns the number of retries the rule allowed but the
// RetryBudget had no token for.
func (s TransportStats) RetriesDenied() int64 { return s.denied }

// Errors returns the number of requests that failed, all classes.
func (s TransportStats) Errors() int64 { return sum(s.errors[:]) }

func sum(counts []int64) int64 {
	var n int64
	for _, v := range counts {
		n += v
	}
	return n
}

// ErrorsBy returns the number of requests that failed with class c.
func (s TransportStats) ErrorsBy(c Class) int64 {
	if int(c) < len(s.errors) {
		return s.errors[c]
	}
	return 0
}

// LearnedIdle returns the idle limit learned per destination (host:port):
// three quarters of the shortest idle gap, at least Transport.LearnFloor,
// after which a reused connection to it was found dead while idle. Idle
// connections to it are retired at that limit when handed out. A limit
// without new evidence for a minute (or ten times the limit) is doubled,
// and dropped once it reaches the Dialer's.
func (s TransportStats) LearnedIdle() map[string]time.Duration { return s.learned }

// Lowered returns how many times a learned idle limit was set, lowered or
// raised again.
func (s TransportStats) Lowered() int64 { return s.lowered }
