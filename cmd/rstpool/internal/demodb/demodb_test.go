package demodb

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rstpool/rstpool/cmd/rstpool/internal/demo"
)

// requireServices reports whether a missing server fails the tests.
func requireServices() bool { return os.Getenv("RSTPOOL_REQUIRE_SERVICES") == "1" }

var legs = []demo.Database{postgresDB, mysqlDB, redisDB}

// reachable returns a direct client of the database, or skips the test
// (fails it under RSTPOOL_REQUIRE_SERVICES=1) when the server is down.
func reachable(t *testing.T, db demo.Database) demo.Store {
	t.Helper()
	s, err := db.Reach(context.Background())
	if err != nil {
		if requireServices() {
			t.Fatalf("%s not reachable at %s: %v", db.Name, db.Addr, err)
		}
		t.Skipf("%s not reachable at %s (%v): start it (%s), or set RSTPOOL_REQUIRE_SERVICES=1 to fail instead", db.Name, db.Addr, err, db.Start)
	}
	t.Cleanup(s.Close)
	return s
}

// Importing the package registers every leg, in the report's order.
func TestRegistered(t *testing.T) {
	require.Equal(t, demo.Known, demo.DatabaseNames())
	for _, db := range legs {
		require.NotEmpty(t, db.Recipe, db.Name)
		require.NotNil(t, db.Retry, db.Name)
	}
}

// The server counts every write: a write applied twice is a duplicate.
func TestDatabaseCountsWrites(t *testing.T) {
	for _, db := range legs {
		t.Run(db.Name, func(t *testing.T) {
			s := reachable(t, db)
			ctx := context.Background()
			tag := "test-" + db.Name + time.Now().Format("150405.000000")
			t.Cleanup(func() { _ = s.Forget(ctx, tag) })
			for _, id := range []int{1, 1, 2} {
				require.NoError(t, s.Write(ctx, tag, id))
			}
			require.NoError(t, s.Read(ctx, tag, 1))
			applied, err := s.Applied(ctx, tag)
			require.NoError(t, err)
			require.Equal(t, map[int]int{1: 2, 2: 1}, applied)
			require.NoError(t, s.Forget(ctx, tag))
			applied, err = s.Applied(ctx, tag)
			require.NoError(t, err)
			require.Empty(t, applied)
		})
	}
}

// Every database leg under idle reaping, on the real drivers: the stock
// clients reuse reaped flows; the rstpool ones surface no more errors and
// never apply a write twice.
func TestDatabaseLegs(t *testing.T) {
	cfg := demo.Config{Requests: 120, Seed: 3, Duration: 20 * time.Second, Faults: demo.Faults{Reap: true},
		LBIdle: 300 * time.Millisecond} // margin for scheduling delays under -race
	for _, db := range legs {
		reachable(t, db)
		cfg.Databases = append(cfg.Databases, db.Name)
	}
	cfg.RequireDatabases = true
	rep, err := demo.Run(context.Background(), cfg)
	require.NoError(t, err)
	require.Len(t, rep.Databases, len(legs))
	writes := 0 // both POSTs of the schedule are writes in a database leg
	for _, b := range (demo.Workload{Requests: 120, Seed: 3, Idle: cfg.LBIdle, LongGaps: demo.DefaultLongGaps}).Schedule() {
		for _, r := range b.Requests {
			if r.Kind == demo.KindPost || r.Kind == demo.KindPostKeyed {
				writes++
			}
		}
	}
	require.Positive(t, writes)
	for _, res := range rep.Databases {
		require.Empty(t, res.Skipped, res.Name)
		require.Len(t, res.Clients, 2, res.Name)
		stock, rp := res.Clients[0], res.Clients[1]
		for _, c := range res.Clients {
			require.Equal(t, c.Sent, c.OK+c.Errors, res.Name, c.Name)
			require.Equal(t, c.Errors, c.IdempotentErrors+c.NonIdempotentErrors, res.Name, c.Name)
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
