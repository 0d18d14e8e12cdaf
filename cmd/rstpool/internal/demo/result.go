package demo

import (
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rstpool/rstpool"
	"github.com/rstpool/rstpool/internal/faultproxy"
)

// Ms is a duration that JSON encodes as a number of milliseconds (to the
// microsecond), the command's one convention for durations: the key of
// every Ms field ends in "_ms".
type Ms time.Duration

// MarshalJSON encodes m as a number of milliseconds.
func (m Ms) MarshalJSON() ([]byte, error) {
	return strconv.AppendFloat(nil, ms(time.Duration(m)), 'f', -1, 64), nil
}

// String formats m as a time.Duration does.
func (m Ms) String() string { return time.Duration(m).String() }

// ClientResult is the outcome of the workload through one client.
type ClientResult struct {
	Name        string `json:"name"`            // "stock" or "rstpool"
	About       string `json:"about"`           // what the client is and how it is set up
	IdleTimeout Ms     `json:"idle_timeout_ms"` // the client's idle limit; 0: none
	Audit       string `json:"audit"`           // the timeout-chain finding, "ok" when none
	AuditOK     bool   `json:"audit_ok"`

	Requests int `json:"requests"` // in the schedule
	Sent     int `json:"sent"`     // sent before the run ended; Sent = OK + Errors
	OK       int `json:"ok"`
	Errors   int `json:"errors"` // surfaced to the caller

	ErrorsByClass       map[string]int `json:"errors_by_class"` // by rstpool.Class, sums to Errors
	ErrorsByKind        map[string]int `json:"errors_by_kind"`  // by Kind, sums to Errors
	IdempotentErrors    int            `json:"idempotent_errors"`
	NonIdempotentErrors int            `json:"non_idempotent_errors"`

	// Retries counts the requests that took a second attempt, where the
	// demo sees it (net/http's connections, rstpool.Retry's calls; not a
	// driver's own retries).
	Retries int `json:"retries"`
	// Duplicates counts the non-idempotent requests (POSTs without a key,
	// database writes) the server applied more than once.
	Duplicates int         `json:"duplicates"`
	Server     ServerTally `json:"server"`

	P50 Ms `json:"p50_ms"`
	P99 Ms `json:"p99_ms"`
	Max Ms `json:"max_ms"`

	Proxy          ProxyTally       `json:"proxy"`
	Elapsed        Ms               `json:"elapsed_ms"`
	TransportStats map[string]int64 `json:"transport_stats"` // the client's own counters; empty when it has none
}

// ServerTally is what a server counted: HTTP requests received in full, or
// database writes applied.
type ServerTally struct {
	Arrivals   int `json:"arrivals"`   // requests received or writes applied
	Distinct   int `json:"distinct"`   // distinct request ids among them
	Duplicates int `json:"duplicates"` // non-idempotent requests applied more than once
	Replays    int `json:"replays"`    // POSTs with a key received more than once (the key absorbs them)
}

// tallyWrites counts writes applied per request id.
func tallyWrites(applied map[int]int) ServerTally {
	t := ServerTally{Distinct: len(applied)}
	for _, n := range applied {
		t.Arrivals += n
		if n > 1 {
			t.Duplicates++
		}
	}
	return t
}

// ProxyTally is what the proxy in front of a client's server did to it.
type ProxyTally struct {
	Accepted          int64 `json:"accepted"`            // connections the client opened
	ReapedReset       int64 `json:"reaped_reset"`        // idle flows forgotten, answered with RST
	MidTransferResets int64 `json:"mid_transfer_resets"` // flows reset mid-transfer
	Restarts          int64 `json:"restarts"`
	FlowsReset        int64 `json:"flows_reset"` // open flows the restarts reset
}

func proxyTally(s faultproxy.Stats) ProxyTally {
	return ProxyTally{Accepted: s.Accepted, ReapedReset: s.ReapedReset,
		MidTransferResets: s.MidTransferResets, Restarts: s.Restarts, FlowsReset: s.FlowsReset}
}

// summarize fills the request counts, errors and latencies of res from the
// outcomes of the schedule's requests.
func (res *ClientResult) summarize(sched []Burst, outs []outcome) {
	res.ErrorsByClass = map[string]int{}
	res.ErrorsByKind = map[string]int{}
	var lat []time.Duration
	for _, b := range sched {
		for _, r := range b.Requests {
			res.Requests++
			if o := outs[r.ID]; o.sent {
				lat = append(lat, o.latency)
				res.count(r, o)
			}
		}
	}
	slices.Sort(lat)
	res.P50, res.P99 = Ms(quantile(lat, 0.50)), Ms(quantile(lat, 0.99))
	if len(lat) > 0 {
		res.Max = Ms(lat[len(lat)-1])
	}
}

func (res *ClientResult) count(r Request, o outcome) {
	res.Sent++
	if o.attempts > 1 {
		res.Retries++
	}
	if o.class == rstpool.ClassNone {
		res.OK++
		return
	}
	res.Errors++
	res.ErrorsByClass[classKey(o.class)]++
	res.ErrorsByKind[r.Kind.String()]++
	if r.Kind.Idempotent() {
		res.IdempotentErrors++
	} else {
		res.NonIdempotentErrors++
	}
}

// classKey is the report's key of a class: its name in snake case
// ("broken_pipe").
func classKey(c rstpool.Class) string { return strings.ReplaceAll(c.String(), "-", "_") }

// quantile returns the q-quantile of sorted durations (nearest rank).
func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// ms returns d in milliseconds, to the microsecond.
func ms(d time.Duration) float64 {
	return float64(d.Microseconds()) / 1000
}
