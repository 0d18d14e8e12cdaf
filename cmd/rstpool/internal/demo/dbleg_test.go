package demo

import (
	"context"
	"net"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// requireDatabase skips the test when the database does not listen at its
// default local address, or fails it under RSTPOOL_REQUIRE_SERVICES=1.
func requireDatabase(t *testing.T, name string) database {
	t.Helper()
	db := databases[name]
	if err := db.reachable(context.Background()); err != nil {
		if os.Getenv("RSTPOOL_REQUIRE_SERVICES") == "1" {
			t.Fatalf("%s not reachable at %s: %v", name, db.addr, err)
		}
		t.Skipf("%s not reachable at %s (%v): start it, or set RSTPOOL_REQUIRE_SERVICES=1 to fail instead", name, db.addr, err)
	}
	return db
}

func dialDatabase(t *testing.T, db database) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", db.addr)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	require.NoError(t, c.SetDeadline(time.Now().Add(5*time.Second)))
	return c
}

func TestPostgresWire(t *testing.T) {
	db := requireDatabase(t, "postgres")
	c := dialDatabase(t, db)
	require.NoError(t, pgStartup(c, "postgres", "postgres"))
	require.NoError(t, pgQuery(c, "SELECT 1"))
	err := pgQuery(c, "SELECT nosuchcolumn")
	var pe *PGError
	require.ErrorAs(t, err, &pe)
	require.Equal(t, "42703", pe.Code)
	require.NoError(t, pgQuery(c, "SELECT 2"), "the stream is in step after an error")
}

func TestPostgresUnknownDatabase(t *testing.T) {
	db := requireDatabase(t, "postgres")
	c := dialDatabase(t, db)
	var pe *PGError
	require.ErrorAs(t, pgStartup(c, "postgres", "no_such_database_rstpool"), &pe)
	require.Equal(t, "FATAL", pe.Severity)
}

func TestRedisPing(t *testing.T) {
	db := requireDatabase(t, "redis")
	c := dialDatabase(t, db)
	for range 3 {
		require.NoError(t, respPing(c))
	}
}

// A database leg under idle reaping: the naive pool reuses reaped flows and
// surfaces resets; rstpool.Pool surfaces none.
func TestDatabaseLeg(t *testing.T) {
	db := requireDatabase(t, "redis")
	cfg := testConfig(120, Faults{Reap: true}).withDefaults()
	cfg.LBIdle = 300 * time.Millisecond
	res := runDatabase(context.Background(), cfg, db.name)
	require.Empty(t, res.Skipped)
	require.Len(t, res.Clients, 2)
	naive, rp := res.Clients[0], res.Clients[1]
	requireCountsAddUp(t, naive)
	requireCountsAddUp(t, rp)
	require.Equal(t, 120, rp.Sent)
	require.Positive(t, naive.Proxy.ReapedReset)
	require.Equal(t, naive.Errors, naive.ErrorsByClass["reset"])
	require.Zero(t, rp.Errors, rp.ErrorsByClass)
	require.True(t, rp.AuditOK)
	require.False(t, naive.AuditOK)
}

func TestDatabaseSkipped(t *testing.T) {
	res := runDatabase(context.Background(), Config{}.withDefaults(), "mysql")
	require.Contains(t, res.Skipped, "unknown database")

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	databases["closed"] = database{name: "closed", addr: addr, query: respPing}
	t.Cleanup(func() { delete(databases, "closed") })
	res = runDatabase(context.Background(), Config{}.withDefaults(), "closed")
	require.Contains(t, res.Skipped, "not reachable at "+addr)
	require.Contains(t, res.Skipped, "refused")
	require.Empty(t, res.Clients)
}
