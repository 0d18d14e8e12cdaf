package demo

import (
	"bytes"
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// testConfig is a short run: gaps scale with LBIdle.
func testConfig(requests int, f Faults) Config {
	return Config{Requests: requests, Seed: 3, LBIdle: 150 * time.Millisecond, Duration: 20 * time.Second, Faults: f}
}

func requireCountsAddUp(t *testing.T, c ClientResult) {
	t.Helper()
	require.Equal(t, c.Sent, c.OK+c.Errors, c.Name)
	require.Equal(t, c.Errors, c.IdempotentErrors+c.NonIdempotentErrors, c.Name)
	sum := 0
	for _, n := range c.ErrorsByClass {
		sum += n
	}
	require.Equal(t, c.Errors, sum, c.Name)
	require.LessOrEqual(t, c.P50, c.P99, c.Name)
	require.LessOrEqual(t, c.P99, c.Max, c.Name)
}

func TestRunWithoutFaults(t *testing.T) {
	var calls atomic.Int32
	cfg := testConfig(80, Faults{})
	cfg.Progress = func(Progress) { calls.Add(1) }
	rep, err := Run(context.Background(), cfg)
	require.NoError(t, err)
	require.Positive(t, calls.Load())
	require.Len(t, rep.Clients, 2)
	for _, c := range rep.Clients {
		requireCountsAddUp(t, c)
		require.Equal(t, 80, c.Sent, c.Name)
		require.Zero(t, c.Errors, c.Name)
		require.Equal(t, 80, c.Server.Distinct, c.Name)
		require.Zero(t, c.Proxy.ReapedReset+c.Proxy.MidTransferResets+c.Proxy.FlowsReset, c.Name)
	}
	stock, rp := rep.Clients[0], rep.Clients[1]
	require.False(t, stock.AuditOK)
	require.Contains(t, stock.Audit, "lb 150ms")
	require.True(t, rp.AuditOK, rp.Audit)
	require.Less(t, time.Duration(rp.IdleTimeout), cfg.LBIdle)
	require.Empty(t, rep.Databases)
}

// Idle reaping alone: the stock client reuses reaped flows; rstpool retires
// them first.
func TestRunIdleReaping(t *testing.T) {
	cfg := testConfig(150, Faults{Reap: true})
	cfg.LBIdle = 300 * time.Millisecond // margin for scheduling delays under -race
	rep, err := Run(context.Background(), cfg)
	require.NoError(t, err)
	stock, rp := rep.Clients[0], rep.Clients[1]
	requireCountsAddUp(t, stock)
	requireCountsAddUp(t, rp)
	require.Positive(t, stock.Proxy.ReapedReset)
	require.Positive(t, stock.Errors, "net/http surfaces a reset on a reaped flow it reused")
	require.LessOrEqual(t, rp.Errors, stock.Errors)
	require.LessOrEqual(t, rp.Proxy.ReapedReset, stock.Proxy.ReapedReset)
	require.Zero(t, rp.Duplicates)
	require.Zero(t, stock.Duplicates)
}

// The default mix, with frequent restarts: rstpool never duplicates a POST.
// (A restart that resets a request on a fresh connection surfaces, by
// design, so the count of idempotent errors is not asserted here.)
func TestRunDefaultFaults(t *testing.T) {
	f := DefaultFaults
	f.RestartEvery = 250 * time.Millisecond
	rep, err := Run(context.Background(), testConfig(150, f))
	require.NoError(t, err)
	stock, rp := rep.Clients[0], rep.Clients[1]
	requireCountsAddUp(t, stock)
	requireCountsAddUp(t, rp)
	require.Positive(t, stock.Proxy.Restarts+stock.Proxy.ReapedReset+stock.Proxy.MidTransferResets)
	require.LessOrEqual(t, rp.ErrorsByClass["refused"], stock.ErrorsByClass["refused"], rp.ErrorsByClass)
	require.Zero(t, rp.Duplicates)
	require.Zero(t, stock.Duplicates)
	require.NotEmpty(t, rp.TransportStats)
	require.Empty(t, stock.TransportStats)

	var out bytes.Buffer
	require.NoError(t, WriteTable(&out, rep))
	for _, s := range []string{"stock", "rstpool", "errors surfaced", "retries taken", "POSTs the server saw twice", "p99 latency", "idle 1m30s", "lb=150ms"} {
		require.Contains(t, out.String(), s)
	}
}

func TestRunRejectsBadConfig(t *testing.T) {
	for _, c := range []Config{
		{Requests: -1},
		{LongGaps: 2},
		{Faults: Faults{ResetRate: 0.5}},
		{Faults: Faults{ResetRate: 2, ResetAfter: 1}},
		{Databases: []string{"oracle"}},
		{Databases: []string{"redis", "redis"}},
	} {
		_, err := Run(context.Background(), c)
		require.Error(t, err, "%+v", c)
	}
}

func TestRunStopsAtDuration(t *testing.T) {
	cfg := testConfig(5000, Faults{})
	cfg.Duration = 300 * time.Millisecond
	start := time.Now()
	rep, err := Run(context.Background(), cfg)
	require.NoError(t, err)
	require.Less(t, time.Since(start), 10*time.Second)
	for _, c := range rep.Clients {
		require.Less(t, c.Sent, 5000)
		require.Equal(t, 5000, c.Requests)
	}
}
