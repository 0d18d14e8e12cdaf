package integration

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
	"github.com/rstpool/rstpool"
	"github.com/rstpool/rstpool/rstpgx"
	"github.com/stretchr/testify/require"
)

// A connection a caller holds is never retired by the idle limit or the
// lifetime: those apply when a connection is handed out. Each test holds
// one quiet for longer than both, then uses it again.

const (
	heldLimit = 300 * time.Millisecond // the Dialer's idle limit and lifetime
	heldQuiet = 700 * time.Millisecond // how long the caller holds it quiet
)

func heldDialer() *rstpool.Dialer {
	return &rstpool.Dialer{IdleTimeout: heldLimit, MaxLifetime: heldLimit}
}

// A heldDB is database/sql through rstpool with a table of its own.
type heldDB struct {
	name, table, param string
	db                 *sql.DB
}

// heldDBs opens database/sql through rstpool for PostgreSQL (rstpgx.OpenDB)
// and MariaDB (WrapConnector), each with the scenario's table.
func heldDBs(t *testing.T) []heldDB {
	pg := newPGScenario(t, "held")
	cc, err := pgx.ParseConfig(pgURL(pgAddr(), pg.role, pg.app))
	require.NoError(t, err)
	pgdb := rstpgx.OpenDB(*cc, heldDialer())
	t.Cleanup(func() { pgdb.Close() })

	my := newMyScenario(t, "held")
	cfg := mysql.NewConfig()
	cfg.User, cfg.Addr, cfg.DBName = my.user, myAddr(), "test"
	cfg.Net = myNetwork("rstpool-held", heldDialer())
	conn, err := mysql.NewConnector(cfg)
	require.NoError(t, err)
	mydb := sql.OpenDB(rstpool.WrapConnector(conn, heldDialer()))
	t.Cleanup(func() { mydb.Close() })
	return []heldDB{{"postgres", pg.table, "$1", pgdb}, {"mariadb", my.table, "?", mydb}}
}

func TestHeldTransactionCommitsPastTheIdleLimit(t *testing.T) {
	for _, h := range heldDBs(t) {
		t.Run(h.name, func(t *testing.T) {
			ctx := context.Background()
			insert := "insert into " + h.table + " values (" + h.param + ")"
			tx, err := h.db.BeginTx(ctx, nil)
			require.NoError(t, err)
			_, err = tx.ExecContext(ctx, insert, 1)
			require.NoError(t, err)
			time.Sleep(heldQuiet)
			_, err = tx.ExecContext(ctx, insert, 2)
			require.NoError(t, err, "the transaction's connection outlived the idle limit and lifetime")
			require.NoError(t, tx.Commit())
			var n int
			require.NoError(t, h.db.QueryRowContext(ctx, "select count(*) from "+h.table).Scan(&n))
			require.Equal(t, 2, n)
		})
	}
}

func TestPinnedSQLConnOutlivesTheIdleLimit(t *testing.T) {
	for _, h := range heldDBs(t) {
		t.Run(h.name, func(t *testing.T) {
			ctx := context.Background()
			c, err := h.db.Conn(ctx)
			require.NoError(t, err)
			defer c.Close()
			var one int
			require.NoError(t, c.QueryRowContext(ctx, "select 1").Scan(&one))
			time.Sleep(heldQuiet)
			require.NoError(t, c.QueryRowContext(ctx, "select 1").Scan(&one), "a pinned connection is the caller's")
		})
	}
}

// A LISTEN connection waits for notifications longer than the idle limit,
// then runs a query.
func TestPgxListenOutlivesTheIdleLimit(t *testing.T) {
	s := newPGScenario(t, "listen")
	cfg, err := pgxpool.ParseConfig(pgURL(pgAddr(), s.role, s.app))
	require.NoError(t, err)
	rstpgx.Configure(cfg, heldDialer())
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	require.NoError(t, err)
	defer pool.Close()
	ctx := context.Background()
	c, err := pool.Acquire(ctx)
	require.NoError(t, err)
	defer c.Release()
	_, err = c.Exec(ctx, "listen rstpool_held")
	require.NoError(t, err)
	wait, cancel := context.WithTimeout(ctx, heldQuiet)
	defer cancel()
	_, err = c.Conn().WaitForNotification(wait)
	require.ErrorIs(t, err, context.DeadlineExceeded, "nothing was notified")
	_, err = c.Exec(ctx, "select 1")
	require.NoError(t, err, "the listening connection is the caller's, however quiet")
	go pgExec(t, s.admin, "notify rstpool_held, 'hello'")
	wait2, cancel2 := context.WithTimeout(ctx, 5*time.Second)
	defer cancel2()
	n, err := c.Conn().WaitForNotification(wait2)
	require.NoError(t, err)
	require.Equal(t, "hello", n.Payload)
}

// A go-redis PubSub subscription, quiet beyond the idle limit, still pings
// and receives.
func TestRedisPubSubOutlivesTheIdleLimit(t *testing.T) {
	admin := redisAdmin(t)
	d := heldDialer()
	idle, _, err := d.Limits()
	require.NoError(t, err)
	c := redis.NewClient(&redis.Options{Addr: redisAddr(), Dialer: d.DialContext, ConnMaxIdleTime: idle})
	defer c.Close()
	ctx := context.Background()
	channel := fmt.Sprintf("rstpool:held:%d", os.Getpid())
	ps := c.Subscribe(ctx, channel)
	defer ps.Close()
	_, err = ps.Receive(ctx) // the subscription confirmation
	require.NoError(t, err)
	time.Sleep(heldQuiet)
	require.NoError(t, ps.Ping(ctx), "the subscription's connection is the caller's")
	msg, err := ps.ReceiveTimeout(ctx, time.Second) // the pong
	require.NoError(t, err)
	_, isPong := msg.(*redis.Pong)
	require.True(t, isPong, "%T", msg)
	require.NoError(t, admin.Publish(ctx, channel, "hello").Err())
	msg, err = ps.ReceiveTimeout(ctx, 2*time.Second)
	require.NoError(t, err)
	m, ok := msg.(*redis.Message)
	require.True(t, ok, "%T", msg)
	require.Equal(t, "hello", m.Payload)
	require.False(t, errors.Is(err, redis.ErrClosed))
}
