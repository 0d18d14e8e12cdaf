package rstpgx

import (
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rstpool/rstpool"
	"github.com/rstpool/rstpool/internal/faultproxy"
	"github.com/stretchr/testify/require"
)

// pgURL is the test server: RSTPOOL_PG_URL, else the local PostgreSQL.
func pgURL() string {
	if u := os.Getenv("RSTPOOL_PG_URL"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
}

// newPool opens a pool, rstpool-configured or stock, tagged with an
// application_name so the test can find its backends; it skips when the
// server is down unless RSTPOOL_REQUIRE_SERVICES=1.
func newPool(t testing.TB, app string, d *rstpool.Dialer, size int32) *pgxpool.Pool {
	t.Helper()
	return newPoolWith(t, app, d, size, nil)
}

// newPoolWith is newPool with tweak (when not nil) applied to the config
// before Configure.
func newPoolWith(t testing.TB, app string, d *rstpool.Dialer, size int32, tweak func(*pgxpool.Config)) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(pgURL())
	require.NoError(t, err)
	cfg.ConnConfig.RuntimeParams["application_name"] = app
	cfg.MaxConns = size
	if tweak != nil {
		tweak(cfg)
	}
	if d != nil {
		Configure(cfg, d)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	require.NoError(t, err)
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		if os.Getenv("RSTPOOL_REQUIRE_SERVICES") == "1" {
			t.Fatalf("PostgreSQL at %s unreachable: %v", pgURL(), err)
		}
		t.Skipf("PostgreSQL at %s unreachable (%v); start it or set RSTPOOL_PG_URL, RSTPOOL_REQUIRE_SERVICES=1 to fail instead", pgURL(), err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// admin runs a statement on its own connection.
func admin(t testing.TB, sql string, args ...any) {
	t.Helper()
	c, err := pgx.Connect(context.Background(), pgURL())
	require.NoError(t, err)
	defer c.Close(context.Background())
	_, err = c.Exec(context.Background(), sql, args...)
	require.NoError(t, err)
}

// burst runs n queries at once, each on its own pooled connection as long
// as the pool has them, and counts failures.
func burst(pool *pgxpool.Pool, n int) int {
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			var one int
			errs <- pool.QueryRow(context.Background(), "select 1 from pg_sleep(0.01)").Scan(&one)
		})
	}
	wg.Wait()
	close(errs)
	failed := 0
	for err := range errs {
		if err != nil {
			failed++
		}
	}
	return failed
}

func TestConfigureSetsLimitsFromChain(t *testing.T) {
	cfg, err := pgxpool.ParseConfig(pgURL())
	require.NoError(t, err)
	chain := rstpool.Chain{{Name: "lb", IdleTimeout: 60 * time.Second, MaxLifetime: 10 * time.Minute}}
	Configure(cfg, &rstpool.Dialer{Chain: chain})
	require.Equal(t, chain.ClientIdleTimeout(), cfg.MaxConnIdleTime)
	require.LessOrEqual(t, cfg.HealthCheckPeriod, cfg.MaxConnIdleTime/2)
	require.Equal(t, 10*time.Minute, cfg.MaxConnLifetime+cfg.MaxConnLifetimeJitter+30*time.Second)
	require.NotNil(t, cfg.ConnConfig.DialFunc)
	require.NotNil(t, cfg.PrepareConn)

	cfg, err = pgxpool.ParseConfig(pgURL())
	require.NoError(t, err)
	Configure(cfg, nil)
	require.Equal(t, rstpool.DefaultIdleTimeout, cfg.MaxConnIdleTime)
	require.Equal(t, time.Hour, cfg.MaxConnLifetime, "no lifetime declared: pgx's own")
	require.Equal(t, 6*time.Minute, cfg.MaxConnLifetimeJitter)
}

func TestConfigureKeepsCallersHooks(t *testing.T) {
	cfg, err := pgxpool.ParseConfig(pgURL())
	require.NoError(t, err)
	called := 0
	//lint:ignore SA1019 testing that the deprecated hook still runs
	cfg.BeforeAcquire = func(context.Context, *pgx.Conn) bool { called++; return true }
	Configure(cfg, &rstpool.Dialer{})
	ok, err := cfg.PrepareConn(context.Background(), nil)
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, 1, called, "the deprecated BeforeAcquire still runs")
	require.True(t, cfg.ShouldPing(context.Background(), pgxpool.ShouldPingParams{IdleDuration: 2 * time.Second}),
		"untracked connections keep pgxpool's rule")
}

func TestPoolSurvivesTerminatedBackends(t *testing.T) {
	failed := map[string]int{}
	for _, mode := range []string{"stock", "rstpool"} {
		var d *rstpool.Dialer
		if mode == "rstpool" {
			d = &rstpool.Dialer{}
		}
		app := fmt.Sprintf("rstpgx_kill_%s_%d", mode, os.Getpid())
		pool := newPool(t, app, d, 8)
		require.Zero(t, burst(pool, 8), "warm-up")
		admin(t, "select pg_terminate_backend(pid) from pg_stat_activity where application_name = $1", app)
		time.Sleep(100 * time.Millisecond)
		failed[mode] = burst(pool, 8)
	}
	t.Logf("backends terminated while idle: stock %d/8 failed, rstpool %d/8", failed["stock"], failed["rstpool"])
	require.Positive(t, failed["stock"])
	require.Zero(t, failed["rstpool"])
}

func TestCheckoutPingsNotRetiresOnNotification(t *testing.T) {
	app := fmt.Sprintf("rstpgx_notify_%d", os.Getpid())
	pool := newPool(t, app, &rstpool.Dialer{}, 1)
	ctx := context.Background()
	var pid uint32
	_, err := pool.Exec(ctx, "listen rstpgx_chan")
	require.NoError(t, err)
	require.NoError(t, pool.QueryRow(ctx, "select pg_backend_pid()").Scan(&pid))
	admin(t, "notify rstpgx_chan, 'hello'")
	time.Sleep(50 * time.Millisecond)

	c, err := pool.Acquire(ctx)
	require.NoError(t, err)
	defer c.Release()
	rc := Tracked(c.Conn())
	require.NotNil(t, rc)
	var again uint32
	require.NoError(t, c.QueryRow(ctx, "select pg_backend_pid()").Scan(&again))
	require.Equal(t, pid, again, "pending data is pinged, not taken for a dead connection")
	require.GreaterOrEqual(t, rc.Stats().Checkouts, int64(3))
}

func TestCheckoutRetiresIdleConn(t *testing.T) {
	app := fmt.Sprintf("rstpgx_idle_%d", os.Getpid())
	pool := newPool(t, app, &rstpool.Dialer{IdleTimeout: 300 * time.Millisecond}, 1)
	ctx := context.Background()
	var pid, again uint32
	require.NoError(t, pool.QueryRow(ctx, "select pg_backend_pid()").Scan(&pid))
	time.Sleep(400 * time.Millisecond)
	require.NoError(t, pool.QueryRow(ctx, "select pg_backend_pid()").Scan(&again))
	require.NotEqual(t, pid, again, "a connection idle beyond the limit is replaced at acquire")
}

// A middlebox forgets idle flows silently and resets the next bytes (a NAT
// whose timeout is shorter than any the Dialer was told of): a peek sees
// nothing. Stock pgxpool pings a connection idle over a second, finds it
// dead and takes another; rstpgx pings it too, and does no worse.
func TestCheckoutPingsConnectionsAMiddleboxForgot(t *testing.T) {
	p, err := faultproxy.Start(faultproxy.Config{Upstream: "127.0.0.1:5432", IdleTimeout: 500 * time.Millisecond})
	require.NoError(t, err)
	defer p.Close()
	host, port, err := net.SplitHostPort(p.Addr())
	require.NoError(t, err)
	through := func(cfg *pgxpool.Config) {
		n, _ := strconv.Atoi(port)
		cfg.ConnConfig.Host, cfg.ConnConfig.Port = host, uint16(n)
	}
	for _, client := range []string{"stock", "rstpool"} {
		var d *rstpool.Dialer
		if client == "rstpool" {
			d = &rstpool.Dialer{}
		}
		pool := newPoolWith(t, fmt.Sprintf("rstpgx_forgot_%d", os.Getpid()), d, 2, through)
		require.Zero(t, burst(pool, 2), "%s: warm-up", client)
		time.Sleep(1200 * time.Millisecond) // both connections forgotten
		_, err := pool.Exec(context.Background(), "select 1")
		require.NoError(t, err, "%s: a statement after the middlebox forgot the connection", client)
	}
	require.Positive(t, p.Stats().ReapedReset, "the middlebox forgot connections")
}
