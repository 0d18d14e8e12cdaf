package demo

import (
	"context"
	"net"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// requireServices reports whether a missing server fails the tests.
func requireServices() bool { return os.Getenv("RSTPOOL_REQUIRE_SERVICES") == "1" }

// reachable returns a direct client of the database, or skips the test
// (fails it under RSTPOOL_REQUIRE_SERVICES=1) when the server is down.
func reachable(t *testing.T, db database) store {
	t.Helper()
	s, err := db.reach(context.Background())
	if err != nil {
		if requireServices() {
			t.Fatalf("%s not reachable at %s: %v", db.name, db.addr, err)
		}
		t.Skipf("%s not reachable at %s (%v): start it (%s), or set RSTPOOL_REQUIRE_SERVICES=1 to fail instead", db.name, db.addr, err, db.start)
	}
	t.Cleanup(s.close)
	return s
}

// The server counts every write: a write applied twice is a duplicate.
func TestDatabaseCountsWrites(t *testing.T) {
	for _, db := range databases {
		t.Run(db.name, func(t *testing.T) {
			s := reachable(t, db)
			ctx := context.Background()
			tag := "test-" + db.name + time.Now().Format("150405.000000")
			t.Cleanup(func() { _ = s.forget(ctx, tag) })
			for _, id := range []int{1, 1, 2} {
				require.NoError(t, s.write(ctx, tag, id))
			}
			require.NoError(t, s.read(ctx, tag, 1))
			applied, err := s.applied(ctx, tag)
			require.NoError(t, err)
			require.Equal(t, map[int]int{1: 2, 2: 1}, applied)
			require.Equal(t, ServerTally{Arrivals: 3, Distinct: 2, Duplicates: 1}, tallyWrites(applied))
			require.NoError(t, s.forget(ctx, tag))
			applied, err = s.applied(ctx, tag)
			require.NoError(t, err)
			require.Empty(t, applied)
		})
	}
}

// Every database leg under idle reaping, on the real drivers: the stock
// clients reuse reaped flows; the rstpool ones surface no more errors and
// never apply a write twice.
func TestDatabaseLegs(t *testing.T) {
	cfg := testConfig(120, Faults{Reap: true})
	cfg.LBIdle = 300 * time.Millisecond // margin for scheduling delays under -race
	for _, db := range databases {
		reachable(t, db)
		cfg.Databases = append(cfg.Databases, db.name)
	}
	cfg.RequireDatabases = true
	rep, err := Run(context.Background(), cfg)
	require.NoError(t, err)
	require.Len(t, rep.Databases, len(databases))
	writes := countKind(dbSchedule(cfg.withDefaults().schedule()), KindWrite)
	for _, res := range rep.Databases {
		require.Empty(t, res.Skipped, res.Name)
		require.Len(t, res.Clients, 2, res.Name)
		stock, rp := res.Clients[0], res.Clients[1]
		for _, c := range res.Clients {
			requireCountsAddUp(t, c)
			require.Equal(t, 120, c.Sent, res.Name, c.Name)
			// Every write that succeeded was applied; none beyond those sent.
			require.GreaterOrEqual(t, c.Server.Distinct, writes-c.NonIdempotentErrors, res.Name, c.Name)
			require.LessOrEqual(t, c.Server.Distinct, writes, res.Name, c.Name)
		}
		require.Positive(t, stock.Proxy.ReapedReset, res.Name)
		if res.Name != "redis" { // go-redis retries resets, writes included
			require.Positive(t, stock.Errors, res.Name)
		}
		require.LessOrEqual(t, rp.Errors, stock.Errors, res.Name, rp.ErrorsByClass)
		require.Zero(t, rp.Duplicates, res.Name)
		require.False(t, stock.AuditOK, res.Name)
		require.True(t, rp.AuditOK, res.Name, rp.Audit)
	}
}

func countKind(sched []Burst, k Kind) int {
	n := 0
	for _, b := range sched {
		for _, r := range b.Requests {
			if r.Kind == k {
				n++
			}
		}
	}
	return n
}

// A database that does not listen is skipped, with how to start it, or
// fails the run when required.
func TestDatabaseSkipped(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	closed := redisDB
	closed.name, closed.addr = "closed", addr
	databases = append(databases, closed)
	t.Cleanup(func() { databases = databases[:len(databases)-1] })

	cfg := testConfig(20, Faults{})
	cfg.Databases = []string{"closed"}
	rep, err := Run(context.Background(), cfg)
	require.NoError(t, err)
	require.Len(t, rep.Databases, 1)
	res := rep.Databases[0]
	require.Contains(t, res.Skipped, "not reachable at "+addr)
	require.Contains(t, res.Skipped, "refused")
	require.Contains(t, res.Skipped, "start it (redis-server")
	require.Empty(t, res.Clients)

	cfg.RequireDatabases = true
	_, err = Run(context.Background(), cfg)
	require.ErrorContains(t, err, "closed required but not reachable at "+addr)
}
