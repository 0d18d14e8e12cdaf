package rstpool

import (
	"math"
	"sync/atomic"
	"time"

	"github.com/jackc/puddle/v2"
)

// poolCounters are the pool's cumulative counters.
type poolCounters struct {
	dials, dialErrors atomic.Int64
	closedBy          [numCauses]atomic.Int64
	retried           atomic.Int64
	denied            atomic.Int64
	surfaced          atomic.Int64
	untracked         atomic.Int64
	revoked           atomic.Int64
	upkeepRounds      atomic.Int64
}

func (s *poolCounters) count(c cause) { s.closedBy[c].Add(1) }

// A PoolStat is a snapshot of a Pool's sizes and counters, read through
// getter methods so that counters can be added without breaking callers.
type PoolStat struct {
	ps       *puddle.Stat
	closedBy [numCauses]int64
	dials    int64
	dialErrs int64
	retried  int64
	denied   int64
	surfaced int64
	untrack  int64
	revoked  int64
	rounds   int64
}

// Stat returns a snapshot of the pool's statistics.
func (p *Pool) Stat() *PoolStat {
	s := &PoolStat{
		ps:       p.pp.Stat(),
		dials:    p.stats.dials.Load(),
		dialErrs: p.stats.dialErrors.Load(),
		retried:  p.stats.retried.Load(),
		denied:   p.stats.denied.Load(),
		surfaced: p.stats.surfaced.Load(),
		untrack:  p.stats.untracked.Load(),
		revoked:  p.stats.revoked.Load(),
		rounds:   p.stats.upkeepRounds.Load(),
	}
	for i := range s.closedBy {
		s.closedBy[i] = p.stats.closedBy[i].Load()
	}
	return s
}

// TotalConns is the number of connections open or being dialed.
func (s *PoolStat) TotalConns() int32 { return s.ps.TotalResources() }

// IdleConns is the number of connections waiting in the pool.
func (s *PoolStat) IdleConns() int32 { return s.ps.IdleResources() }

// AcquiredConns is the number of connections checked out, including those
// upkeep holds while it checks them.
func (s *PoolStat) AcquiredConns() int32 { return s.ps.AcquiredResources() }

// ConstructingConns is the number of connections being dialed.
func (s *PoolStat) ConstructingConns() int32 { return s.ps.ConstructingResources() }

// MaxConns is the pool's MaxSize.
func (s *PoolStat) MaxConns() int32 { return s.ps.MaxResources() }

// AcquireCount is the cumulative count of slots taken from the pool,
// including those whose connection failed its checks.
func (s *PoolStat) AcquireCount() int64 { return s.ps.AcquireCount() }

// AcquireDuration is the total time spent taking slots from the pool
// when none was idle: taking an idle one is not timed (it costs well under
// a microsecond, and timing it would double the cost of a checkout).
func (s *PoolStat) AcquireDuration() time.Duration { return s.ps.AcquireDuration() }

// EmptyAcquireCount is the count of acquires that waited because no
// connection was idle.
func (s *PoolStat) EmptyAcquireCount() int64 { return s.ps.EmptyAcquireCount() }

// EmptyAcquireWaitTime is the total time acquires waited because no
// connection was idle.
func (s *PoolStat) EmptyAcquireWaitTime() time.Duration { return s.ps.EmptyAcquireWaitTime() }

// CanceledAcquireCount is the count of acquires whose context ended first.
func (s *PoolStat) CanceledAcquireCount() int64 { return s.ps.CanceledAcquireCount() }

// Dials is the count of connections dialed successfully.
func (s *PoolStat) Dials() int64 { return s.dials }

// DialErrors is the count of dials that failed.
func (s *PoolStat) DialErrors() int64 { return s.dialErrs }

// IdleExpired is the count of connections closed for sitting idle beyond
// IdleTimeout.
func (s *PoolStat) IdleExpired() int64 { return s.closedBy[causeIdle] }

// LifetimeExpired is the count of connections closed at the end of their
// lifetime.
func (s *PoolStat) LifetimeExpired() int64 { return s.closedBy[causeLifetime] }

// PeerClosedIdle is the count of connections whose peer closed or reset
// them while they sat idle, caught by a peek.
func (s *PoolStat) PeerClosedIdle() int64 { return s.closedBy[causePeerClosed] }

// UnsolicitedData is the count of idle connections closed because the
// peer had sent bytes nobody asked for.
func (s *PoolStat) UnsolicitedData() int64 { return s.closedBy[causeUnsolicited] }

// PingFailed is the count of connections closed because a ping failed.
func (s *PoolStat) PingFailed() int64 { return s.closedBy[causePingFailed] }

// ResetRetried is the count of Do calls whose work failed because of its
// connection and was run once more on a fresh one.
func (s *PoolStat) ResetRetried() int64 { return s.retried }

// ResetSurfaced is the count of Do calls that returned a connection
// failure (reset, broken pipe, peer close) hit on a reused connection.
func (s *PoolStat) ResetSurfaced() int64 { return s.surfaced }

// RetriesDenied is the count of Do retries the rule allowed but the
// RetryBudget had no token for.
func (s *PoolStat) RetriesDenied() int64 { return s.denied }

// Untracked is the count of connections Dial returned that no rstpool
// Dialer dialed: Acquire cannot peek at them, nor Do count their bytes.
func (s *PoolStat) Untracked() int64 { return s.untrack }

// Revoked is the count of connections Close closed under a caller that
// had not returned them when its context ended.
func (s *PoolStat) Revoked() int64 { return s.revoked }

// UpkeepRounds is the count of background upkeep rounds run.
func (s *PoolStat) UpkeepRounds() int64 { return s.rounds }

// StaleCaughtBeforeUse is the count of dead connections found before any
// caller used them: by a peek (peer closed, unsolicited data) or a ping.
func (s *PoolStat) StaleCaughtBeforeUse() int64 {
	return s.closedBy[causePeerClosed] + s.closedBy[causeUnsolicited] + s.closedBy[causePingFailed]
}

// StaleHitInUse is the count of dead reused connections a caller's work
// ran into, retried or surfaced.
func (s *PoolStat) StaleHitInUse() int64 { return s.retried + s.surfaced }

// StaleRatio is StaleCaughtBeforeUse divided by StaleHitInUse: how many
// dead connections the checks caught for each one a caller hit. It is 0
// when none was caught and +Inf when some were caught and none was hit.
func (s *PoolStat) StaleRatio() float64 {
	caught, hit := s.StaleCaughtBeforeUse(), s.StaleHitInUse()
	switch {
	case caught == 0:
		return 0
	case hit == 0:
		return math.Inf(1)
	}
	return float64(caught) / float64(hit)
}
