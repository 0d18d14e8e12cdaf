package rstpgx

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/rstpool/rstpool"
	"github.com/stretchr/testify/require"
)

// Row 1 of "The mechanisms hold together", pgx's case: an INSERT on a pgx
// connection acquired before Retry, then a read through a second pool
// whose port refuses. Retry sees the INSERT through the tracer Configure
// installs, so the work runs once and writes one row.
func TestRetrySeesAHeldConnectionsStatement(t *testing.T) {
	ctx := context.Background()
	app := fmt.Sprintf("rstpgx_retry_held_%d", os.Getpid())
	pool := newPool(t, app, &rstpool.Dialer{}, 1)
	table := fmt.Sprintf("rstpgx_retry_held_%d", os.Getpid())
	admin(t, "create table if not exists "+table+" (id int)")
	t.Cleanup(func() { admin(t, "drop table if exists "+table) })
	held, err := pool.Acquire(ctx)
	require.NoError(t, err)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	closed := ln.Addr().(*net.TCPAddr)
	ln.Close()
	cfg, err := pgxpool.ParseConfig(fmt.Sprintf("postgres://postgres@127.0.0.1:%d/test?sslmode=disable&connect_timeout=2", closed.Port))
	require.NoError(t, err)
	Configure(cfg, &rstpool.Dialer{RefusedRetry: 50 * time.Millisecond})
	refusing, err := pgxpool.NewWithConfig(ctx, cfg)
	require.NoError(t, err)
	defer refusing.Close()

	runs := 0
	err = Retry(ctx, false, func(ctx context.Context) error {
		runs++
		if _, err := held.Exec(ctx, "insert into "+table+" values (1)"); err != nil {
			return err
		}
		var n int
		return refusing.QueryRow(ctx, "select 1").Scan(&n)
	})
	require.Error(t, err)
	require.Equal(t, 1, runs)
	held.Release()
	var rows int
	require.NoError(t, pool.QueryRow(ctx, "select count(*) from "+table).Scan(&rows))
	require.Equal(t, 1, rows, "the INSERT ran once")
}

// Row 14: sql.Conn.Raw through OpenDB hands out pgx's own *stdlib.Conn, as
// stock pgx does: the way to CopyFrom or LISTEN from database/sql.
func TestOpenDBRawIsStdlibConn(t *testing.T) {
	newPool(t, "rstpgx_raw_probe", nil, 1) // skips when PostgreSQL is down
	cc, err := pgx.ParseConfig(pgURL())
	require.NoError(t, err)
	db := OpenDB(*cc, &rstpool.Dialer{})
	defer db.Close()
	ctx := context.Background()
	conn, err := db.Conn(ctx)
	require.NoError(t, err)
	defer conn.Close()
	var pid uint32
	require.NoError(t, conn.Raw(func(dc any) error {
		sc, ok := dc.(*stdlib.Conn)
		require.True(t, ok, "got %T", dc)
		return sc.Conn().QueryRow(ctx, "select pg_backend_pid()").Scan(&pid)
	}))
	require.NotZero(t, pid)
	require.NotNil(t, rstpool.Tracked(mustRawConn(t, conn).PgConn().Conn()), "it dials through the Dialer")
	var one int
	require.NoError(t, db.QueryRowContext(ctx, "select 1").Scan(&one))
}

func mustRawConn(t *testing.T, conn *sql.Conn) *pgx.Conn {
	var c *pgx.Conn
	require.NoError(t, conn.Raw(func(dc any) error { c = dc.(*stdlib.Conn).Conn(); return nil }))
	return c
}
