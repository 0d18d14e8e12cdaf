package tally

import (
	"time"

	"github.com/rstpool/rstpool"
)

// A Counter is one cumulative count of a PoolStat, described once for
// both exporters.
type Counter struct {
	Name  string // snake_case, without prefix or unit: "empty_acquire_wait"
	Unit  string // "s" for a duration (exported in seconds), else an annotation like "{dial}"
	Help  string
	Value func(*rstpool.PoolStat) float64
}

func count(f func(*rstpool.PoolStat) int64) func(*rstpool.PoolStat) float64 {
	return func(s *rstpool.PoolStat) float64 { return float64(f(s)) }
}

func seconds(f func(*rstpool.PoolStat) time.Duration) func(*rstpool.PoolStat) float64 {
	return func(s *rstpool.PoolStat) float64 { return f(s).Seconds() }
}

// PoolCounters are the cumulative counts of a PoolStat but the
// connections closed, which PoolClosed splits by reason.
var PoolCounters = []Counter{
	{"acquires", "{acquire}", "Slots taken from the pool, including those whose connection failed its checks.", count((*rstpool.PoolStat).AcquireCount)},
	{"acquire_duration", "s", "Time spent taking slots from the pool when none was idle.", seconds((*rstpool.PoolStat).AcquireDuration)},
	{"empty_acquires", "{acquire}", "Acquires that waited because no connection was idle.", count((*rstpool.PoolStat).EmptyAcquireCount)},
	{"empty_acquire_wait", "s", "Time acquires waited because no connection was idle.", seconds((*rstpool.PoolStat).EmptyAcquireWaitTime)},
	{"canceled_acquires", "{acquire}", "Acquires whose context ended first.", count((*rstpool.PoolStat).CanceledAcquireCount)},
	{"dials", "{dial}", "Connections dialed successfully.", count((*rstpool.PoolStat).Dials)},
	{"dial_errors", "{dial}", "Dials that failed.", count((*rstpool.PoolStat).DialErrors)},
	{"retries", "{retry}", "Do calls whose work failed because of its connection and ran once more on a fresh one.", count((*rstpool.PoolStat).ResetRetried)},
	{"retries_denied", "{retry}", "Do retries the rule allowed but the retry budget had no token for.", count((*rstpool.PoolStat).RetriesDenied)},
	{"resets_surfaced", "{error}", "Do calls that returned a connection failure hit on a reused connection.", count((*rstpool.PoolStat).ResetSurfaced)},
	{"untracked", "{conn}", "Connections dialed by something other than an rstpool Dialer.", count((*rstpool.PoolStat).Untracked)},
	{"revoked", "{conn}", "Connections Close closed under a caller that had not returned them.", count((*rstpool.PoolStat).Revoked)},
	{"upkeep_rounds", "{round}", "Background upkeep rounds run.", count((*rstpool.PoolStat).UpkeepRounds)},
}

// PoolClosed are the connections a Pool closed, by the reason label
// events give the same retirements.
var PoolClosed = []struct {
	Reason string
	Value  func(*rstpool.PoolStat) int64
}{
	{"idle-limit", (*rstpool.PoolStat).IdleExpired},
	{"lifetime", (*rstpool.PoolStat).LifetimeExpired},
	{"peer-closed", (*rstpool.PoolStat).PeerClosedIdle},
	{"unsolicited-data", (*rstpool.PoolStat).UnsolicitedData},
	{"ping-failed", (*rstpool.PoolStat).PingFailed},
}

// PoolConns are a Pool's connections by state; they add up to TotalConns.
var PoolConns = []struct {
	State string
	Value func(*rstpool.PoolStat) int32
}{
	{"idle", (*rstpool.PoolStat).IdleConns},
	{"acquired", (*rstpool.PoolStat).AcquiredConns},
	{"constructing", (*rstpool.PoolStat).ConstructingConns},
}

// RetryReasons are the reasons a Transport retries, for RetriesBy.
var RetryReasons = []rstpool.RetryReason{rstpool.RetryNothingWritten, rstpool.RetryIdempotent}

// Classes are the failure classes, for ErrorsBy: every Class but
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
