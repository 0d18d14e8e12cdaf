package main

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
)

// demoJSON is the part of the demo's JSON document the test checks.
type demoJSON struct {
	Requests int
	Chain    string
	Clients  []struct {
		Name                string
		AuditOK             bool `json:"audit_ok"`
		Audit               string
		Requests, Sent, OK  int
		Errors              int
		ErrorsByClass       map[string]int `json:"errors_by_class"`
		IdempotentErrors    int            `json:"idempotent_errors"`
		NonIdempotentErrors int            `json:"non_idempotent_errors"`
		Retries, Duplicates int
		P50                 float64 `json:"p50_ms"`
		P99                 float64 `json:"p99_ms"`
		Proxy               struct{ ReapedReset, MidTransferResets, Restarts int }
	}
}

func TestDemoJSON(t *testing.T) {
	// Restarts are off: a restart may reset a request on a fresh
	// connection, which no client can retry safely (internal/demo tests
	// restarts). Idle reaping and mid-transfer resets remain.
	st, out, errOut := runCmd("demo", "--requests", "150", "--lb-idle", "300ms", "--restart-every", "0", "--seed", "5", "--json")
	require.Equal(t, exitOK, st, errOut)
	require.Contains(t, errOut, "rstpool 150/150")
	var rep demoJSON
	require.NoError(t, json.Unmarshal([]byte(out), &rep), out)
	require.Equal(t, 150, rep.Requests)
	require.Equal(t, "lb=300ms → server=1.5s", rep.Chain)
	require.Len(t, rep.Clients, 2)
	for _, c := range rep.Clients {
		require.Equal(t, 150, c.Sent, c.Name)
		require.Equal(t, c.Sent, c.OK+c.Errors, c.Name)
		require.Equal(t, c.Errors, c.IdempotentErrors+c.NonIdempotentErrors, c.Name)
		sum := 0
		for _, n := range c.ErrorsByClass {
			sum += n
		}
		require.Equal(t, c.Errors, sum, c.Name)
		require.Positive(t, c.P50, c.Name)
		require.Zero(t, c.Duplicates, c.Name)
	}
	stock, rp := rep.Clients[0], rep.Clients[1]
	require.Equal(t, "stock", stock.Name)
	require.Equal(t, "rstpool", rp.Name)
	require.False(t, stock.AuditOK)
	require.Contains(t, stock.Audit, "lb 300ms")
	require.True(t, rp.AuditOK)
	// The faults happened to the stock client; rstpool hid none that it
	// could not retry safely.
	require.Positive(t, stock.Proxy.ReapedReset+stock.Proxy.MidTransferResets)
	require.Zero(t, stock.Proxy.Restarts)
	require.Zero(t, rp.IdempotentErrors)
}

func TestDemoTableAndUsage(t *testing.T) {
	st, out, _ := runCmd("demo", "--requests", "40", "--lb-idle", "100ms", "--faults", "none")
	require.Equal(t, exitOK, st)
	require.Contains(t, out, "faults: none")
	require.Contains(t, out, "timeout chain audit:")
	require.Regexp(t, `errors surfaced +0 +0`, out)

	for _, bad := range [][]string{{"demo", "--faults", "some"}, {"demo", "extra"}, {"demo", "--requests", "x"}} {
		st, _, _ := runCmd(bad...)
		require.Equal(t, exitUsage, st, bad)
	}
	st, _, errOut := runCmd("demo", "--requests", "-1")
	require.Equal(t, exitFindings, st)
	require.Contains(t, errOut, "rstpool demo:")
}
