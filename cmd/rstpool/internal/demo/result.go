package demo

import (
	"slices"
	"time"

	"github.com/rstpool/rstpool"
	"github.com/rstpool/rstpool/internal/faultproxy"
)

// ClientResult is the outcome of the workload through one client.
type ClientResult struct {
	Name        string `json:"name"`         // "stock" or "rstpool"
	Transport   string `json:"transport"`    // what the client is
	IdleTimeout string `json:"idle_timeout"` // the client's idle timeout
	Audit       string `json:"audit"`        // the timeout-chain finding, "ok" when none
	AuditOK     bool   `json:"audit_ok"`

	Requests int `json:"requests"` // in the schedule
	Sent     int `json:"sent"`     // sent before the run ended; Sent = OK + Errors
	OK       int `json:"ok"`
	Errors   int `json:"errors"` // surfaced to the caller

	ErrorsByClass       map[string]int `json:"errors_by_class"` // sums to Errors
	ErrorsByKind        map[string]int `json:"errors_by_kind"`  // sums to Errors
	IdempotentErrors    int            `json:"idempotent_errors"`
	NonIdempotentErrors int            `json:"non_idempotent_errors"`

	// Retries counts the requests that needed more than one connection.
	Retries int `json:"retries"`
	// Duplicates counts the POSTs without a key the server received twice.
	Duplicates int         `json:"duplicates"`
	Server     ServerTally `json:"server"`

	P50ms float64 `json:"p50_ms"`
	P99ms float64 `json:"p99_ms"`
	MaxMs float64 `json:"max_ms"`

	Proxy          faultproxy.Stats `json:"proxy"`
	Elapsed        float64          `json:"elapsed_s"`
	TransportStats map[string]int64 `json:"transport_stats,omitempty"` // the client's own counters, when it has any
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
	res.P50ms, res.P99ms = ms(quantile(lat, 0.50)), ms(quantile(lat, 0.99))
	if len(lat) > 0 {
		res.MaxMs = ms(lat[len(lat)-1])
	}
}

func (res *ClientResult) count(r Request, o outcome) {
	res.Sent++
	if o.conns > 1 {
		res.Retries++
	}
	if o.class == rstpool.ClassNone {
		res.OK++
		return
	}
	res.Errors++
	res.ErrorsByClass[o.class.String()]++
	res.ErrorsByKind[r.Kind.String()]++
	if r.Kind.Idempotent() {
		res.IdempotentErrors++
	} else {
		res.NonIdempotentErrors++
	}
}

// quantile returns the q-quantile of sorted durations (nearest rank).
func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func ms(d time.Duration) float64 {
	return float64(d.Microseconds()) / 1000
}
