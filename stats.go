package rstpool

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/rstpool/rstpool/internal/rule"
)

// RetryStats counts what a consumer (Transport, Pool) did with work that
// failed. Counters only grow.
type RetryStats struct {
	// Requests is the pieces of work asked for: RoundTrip calls, Do calls.
	Requests int64
	// Retried is the work run a second time on a new connection, for any
	// reason; RetriedNothingWritten and RetriedIdempotent split it.
	Retried, RetriedNothingWritten, RetriedIdempotent int64
	// RetriedFree is the retries no RetryBudget paid for: work a stale
	// connection lost, and work whose new connection was reset before a
	// byte of it left.
	RetriedFree int64
	// Denied is the retries the rule allowed but the RetryBudget had no
	// token for.
	Denied int64
	// Surfaced is the failures returned to the caller, but errors of the
	// application (class other); SurfacedBy splits it by class.
	Surfaced   int64
	SurfacedBy map[Class]int64
}

// RetiredStats counts the connections a consumer closed instead of
// handing them out, by reason. Counters only grow.
type RetiredStats struct {
	IdleLimit       int64 // "idle-limit": idle beyond the idle limit
	Lifetime        int64 // "lifetime": older than its lifetime
	PeerClosed      int64 // "peer-closed": the peer closed or reset it while it sat idle
	UnsolicitedData int64 // "unsolicited-data": bytes nobody asked for were waiting
	PingFailed      int64 // "ping-failed": its ping failed
}

// Dead is the connections found dead or out of step before any caller
// used them: PeerClosed, UnsolicitedData and PingFailed.
func (r RetiredStats) Dead() int64 { return r.PeerClosed + r.UnsolicitedData + r.PingFailed }

// Total is the connections retired, for any reason.
func (r RetiredStats) Total() int64 { return r.IdleLimit + r.Lifetime + r.Dead() }

// stats snapshots the consumer's counters.
func (k *consumer) stats() (RetryStats, RetiredStats) {
	c := &k.counts
	s := RetryStats{
		Requests:              c.work.Load(),
		RetriedNothingWritten: c.retried[RetryNothingWritten].Load(),
		RetriedIdempotent:     c.retried[RetryIdempotent].Load(),
		RetriedFree:           c.free.Load(),
		Denied:                c.denied.Load(),
		SurfacedBy:            map[Class]int64{},
	}
	s.Retried = s.RetriedNothingWritten + s.RetriedIdempotent
	for cl := range c.surfaced {
		if n := c.surfaced[cl].Load(); n > 0 {
			s.SurfacedBy[Class(cl)] = n
			s.Surfaced += n
		}
	}
	r := RetiredStats{
		IdleLimit:       c.retired[rule.RetireIdleLimit].Load(),
		Lifetime:        c.retired[rule.RetireLifetime].Load(),
		PeerClosed:      c.retired[rule.RetirePeerClosed].Load(),
		UnsolicitedData: c.retired[rule.RetireUnsolicited].Load(),
		PingFailed:      c.retired[rule.RetirePingFailed].Load(),
	}
	return s, r
}

// TransportStats is a snapshot of what a Transport did since its first
// request.
type TransportStats struct {
	RetryStats
	// Retired is the idle connections retired at handout, beyond a learned
	// idle limit.
	Retired RetiredStats
	// LearnedIdle is the idle limit learned per destination (host:port):
	// three quarters of the shortest idle gap after which reused
	// connections to it died, learned only from consistent evidence (see
	// Transport). Idle connections to it are retired at that limit when
	// handed out. A limit is dropped when a connection answers after a gap
	// as long as the evidence: an idempotent request explores past it once
	// a minute.
	LearnedIdle map[string]time.Duration
	// LearnedChanges is how many times a learned limit was set or dropped.
	LearnedChanges int64
}

// Stats returns a snapshot of the Transport's counters.
func (t *Transport) Stats() TransportStats {
	var s TransportStats
	if t.init() != nil {
		return s
	}
	s.RetryStats, s.Retired = t.k.stats()
	s.LearnedIdle, s.LearnedChanges = t.learn.snapshot(), t.learn.changes.Load()
	return s
}

// String formats the snapshot on one line.
func (s TransportStats) String() string {
	str := "transport: " + s.RetryStats.String()
	if len(s.LearnedIdle) > 0 {
		keys := make([]string, 0, len(s.LearnedIdle))
		for k := range s.LearnedIdle {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for i, k := range keys {
			keys[i] = k + "=" + s.LearnedIdle[k].String()
		}
		str += "; learned idle " + strings.Join(keys, " ")
	}
	return str
}

// String formats the counts on one line, as "120 requests, 3 retried (1
// nothing-written, 2 idempotent; 1 free), 0 denied, 1 surfaced (reset 1)".
func (s RetryStats) String() string {
	str := fmt.Sprintf("%d requests, %d retried (%d nothing-written, %d idempotent; %d free), %d denied, %d surfaced",
		s.Requests, s.Retried, s.RetriedNothingWritten, s.RetriedIdempotent, s.RetriedFree, s.Denied, s.Surfaced)
	if len(s.SurfacedBy) > 0 {
		var parts []string
		for cl := ClassNone; cl <= ClassOther; cl++ {
			if n := s.SurfacedBy[cl]; n > 0 {
				parts = append(parts, fmt.Sprintf("%s %d", cl, n))
			}
		}
		str += " (" + strings.Join(parts, ", ") + ")"
	}
	return str
}

// String formats the counts on one line.
func (r RetiredStats) String() string {
	return fmt.Sprintf("retired idle-limit %d, lifetime %d, peer-closed %d, unsolicited-data %d, ping-failed %d",
		r.IdleLimit, r.Lifetime, r.PeerClosed, r.UnsolicitedData, r.PingFailed)
}

// PoolStats is a snapshot of a Pool's sizes and counters.
type PoolStats struct {
	RetryStats
	// Retired is the connections the pool closed instead of handing them
	// out, at Acquire or in upkeep.
	Retired RetiredStats

	MaxConns          int32 // MaxSize
	TotalConns        int32 // open or being dialed
	IdleConns         int32 // waiting in the pool
	AcquiredConns     int32 // checked out, including those upkeep holds while it checks them
	ConstructingConns int32 // being dialed

	// AcquireCount is the slots taken from the pool, including those whose
	// connection failed its checks; EmptyAcquireCount those that waited
	// because none was idle, for EmptyAcquireWaitTime in all;
	// CanceledAcquireCount those whose context ended first.
	AcquireCount, EmptyAcquireCount, CanceledAcquireCount int64
	EmptyAcquireWaitTime                                  time.Duration
	// AcquireDuration is the time spent taking slots when none was idle:
	// taking an idle one is not timed (it costs well under a microsecond,
	// and timing it would double the cost of a checkout).
	AcquireDuration time.Duration

	Dials      int64 // connections dialed
	DialErrors int64 // dials that failed
	Untracked  int64 // connections Dial returned that no rstpool Dialer dialed
	Revoked    int64 // connections Close closed under a caller that had not returned them in time
	// UpkeepRounds is the background upkeep rounds run.
	UpkeepRounds int64
}

// Stats returns a snapshot of the pool's statistics.
func (p *Pool) Stats() PoolStats {
	ps := p.pp.Stat()
	s := PoolStats{
		MaxConns: ps.MaxResources(), TotalConns: ps.TotalResources(), IdleConns: ps.IdleResources(),
		AcquiredConns: ps.AcquiredResources(), ConstructingConns: ps.ConstructingResources(),
		AcquireCount: ps.AcquireCount(), EmptyAcquireCount: ps.EmptyAcquireCount(),
		CanceledAcquireCount: ps.CanceledAcquireCount(), EmptyAcquireWaitTime: ps.EmptyAcquireWaitTime(),
		AcquireDuration: ps.AcquireDuration(),
		Dials:           p.dials.Load(), DialErrors: p.dialErrors.Load(), Untracked: p.untracked.Load(),
		Revoked: p.revoked.Load(), UpkeepRounds: p.rounds.Load(),
	}
	s.RetryStats, s.Retired = p.k.stats()
	return s
}

// StaleHitInUse is the dead connections a caller's work ran into, retried
// or surfaced.
func (s PoolStats) StaleHitInUse() int64 { return s.Retried + s.Surfaced }

// StaleRatio is the connections found dead before use (Retired.Dead)
// divided by StaleHitInUse: how many dead connections the checks caught
// for each one a caller hit. It is 0 when none was caught and +Inf when
// some were caught and none was hit.
func (s PoolStats) StaleRatio() float64 {
	caught, hit := s.Retired.Dead(), s.StaleHitInUse()
	switch {
	case caught == 0:
		return 0
	case hit == 0:
		return math.Inf(1)
	}
	return float64(caught) / float64(hit)
}

// String formats the snapshot on one line.
func (s PoolStats) String() string {
	return fmt.Sprintf("pool: %d/%d conns (%d idle, %d held), %d dials (%d failed); %s; %s",
		s.TotalConns, s.MaxConns, s.IdleConns, s.AcquiredConns, s.Dials, s.DialErrors, s.RetryStats, s.Retired)
}
