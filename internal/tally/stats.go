package tally

import (
	"time"

	"github.com/rstpool/rstpool"
)

// A Counter is one cumulative count of a PoolStats, described once for
// both exporters.
type Counter struct {
	Name  string // snake_case, without prefix or unit: "empty_acquire_wait"
	Unit  string // "s" for a duration (exported in seconds), else an annotation like "{dial}"
	Help  string
	Value func(rstpool.PoolStats) float64
}

func count(f func(rstpool.PoolStats) int64) func(rstpool.PoolStats) float64 {
	return func(s rstpool.PoolStats) float64 { return float64(f(s)) }
}

func seconds(f func(rstpool.PoolStats) time.Duration) func(rstpool.PoolStats) float64 {
	return func(s rstpool.PoolStats) float64 { return f(s).Seconds() }
}

// The fields of PoolStats, as functions.
func acquires(s rstpool.PoolStats) int64                { return s.AcquireCount }
func acquireDuration(s rstpool.PoolStats) time.Duration { return s.AcquireDuration }
func emptyAcquires(s rstpool.PoolStats) int64           { return s.EmptyAcquireCount }
func emptyWait(s rstpool.PoolStats) time.Duration       { return s.EmptyAcquireWaitTime }
func canceled(s rstpool.PoolStats) int64                { return s.CanceledAcquireCount }
func dials(s rstpool.PoolStats) int64                   { return s.Dials }
func dialErrors(s rstpool.PoolStats) int64              { return s.DialErrors }
func retried(s rstpool.PoolStats) int64                 { return s.Retried }
func denied(s rstpool.PoolStats) int64                  { return s.Denied }
func surfaced(s rstpool.PoolStats) int64                { return s.Surfaced }
func untracked(s rstpool.PoolStats) int64               { return s.Untracked }
func revoked(s rstpool.PoolStats) int64                 { return s.Revoked }
func rounds(s rstpool.PoolStats) int64                  { return s.UpkeepRounds }

// PoolCounters are the cumulative counts of a PoolStats but the
// connections closed, which PoolClosed splits by reason.
var PoolCounters = []Counter{
	{"acquires", "{acquire}", "Slots taken from the pool, including those whose connection failed its checks.", count(acquires)},
	{"acquire_duration", "s", "Time spent taking slots from the pool when none was idle.", seconds(acquireDuration)},
	{"empty_acquires", "{acquire}", "Acquires that waited because no connection was idle.", count(emptyAcquires)},
	{"empty_acquire_wait", "s", "Time acquires waited because no connection was idle.", seconds(emptyWait)},
	{"canceled_acquires", "{acquire}", "Acquires whose context ended first.", count(canceled)},
	{"dials", "{dial}", "Connections dialed successfully.", count(dials)},
	{"dial_errors", "{dial}", "Dials that failed.", count(dialErrors)},
	{"retries", "{retry}", "Do calls whose work failed because of its connection and ran once more on a fresh one.", count(retried)},
	{"retries_denied", "{retry}", "Do retries the rule allowed but the retry budget had no token for.", count(denied)},
	{"resets_surfaced", "{error}", "Do calls that returned a failure of the connection or the network to the caller.", count(surfaced)},
	{"untracked", "{conn}", "Connections dialed by something other than an rstpool Dialer.", count(untracked)},
	{"revoked", "{conn}", "Connections Close closed under a caller that had not returned them.", count(revoked)},
	{"upkeep_rounds", "{round}", "Background upkeep rounds run.", count(rounds)},
}

// PoolClosed are the connections a Pool closed, by the reason label
// events give the same retirements.
var PoolClosed = []struct {
	Reason string
	Value  func(rstpool.PoolStats) int64
}{
	{"idle-limit", func(s rstpool.PoolStats) int64 { return s.Retired.IdleLimit }},
	{"lifetime", func(s rstpool.PoolStats) int64 { return s.Retired.Lifetime }},
	{"peer-closed", func(s rstpool.PoolStats) int64 { return s.Retired.PeerClosed }},
	{"unsolicited-data", func(s rstpool.PoolStats) int64 { return s.Retired.UnsolicitedData }},
	{"ping-failed", func(s rstpool.PoolStats) int64 { return s.Retired.PingFailed }},
}

// PoolConns are a Pool's connections by state; they add up to TotalConns.
var PoolConns = []struct {
	State string
	Value func(rstpool.PoolStats) int32
}{
	{"idle", func(s rstpool.PoolStats) int32 { return s.IdleConns }},
	{"acquired", func(s rstpool.PoolStats) int32 { return s.AcquiredConns }},
	{"constructing", func(s rstpool.PoolStats) int32 { return s.ConstructingConns }},
}

// RetryReasons are the reasons a Transport retries, with their counts.
var RetryReasons = []struct {
	Reason rstpool.RetryReason
	Value  func(rstpool.TransportStats) int64
}{
	{rstpool.RetryNothingWritten, func(s rstpool.TransportStats) int64 { return s.RetriedNothingWritten }},
	{rstpool.RetryIdempotent, func(s rstpool.TransportStats) int64 { return s.RetriedIdempotent }},
}

// Classes are the failure classes, for SurfacedBy: every Class but
// ClassNone.
var Classes = func() []rstpool.Class {
	var cs []rstpool.Class
	for c := rstpool.ClassNone + 1; c <= rstpool.ClassOther; c++ {
		cs = append(cs, c)
	}
	return cs
}()

// Learned folds a Transport's learned idle limits to destination labels,
// keeping the shortest limit of the destinations that share one ("other",
// or the one entry under "" when the Tally labels no destination).
func (t *Tally) Learned(limits map[string]time.Duration) map[string]time.Duration {
	out := make(map[string]time.Duration, len(limits))
	for addr, d := range limits {
		label := ""
		if t.Destinations() {
			label = t.Destination(addr)
		}
		if old, ok := out[label]; !ok || d < old {
			out[label] = d
		}
	}
	return out
}
