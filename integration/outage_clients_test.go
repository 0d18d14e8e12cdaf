package integration

import (
	"context"
	"database/sql"
	"fmt"
	"log"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/redis/go-redis/v9"
	"github.com/rstpool/rstpool"
	"github.com/rstpool/rstpool/rstpgx"
	"github.com/stretchr/testify/require"
)

// An outageClient is one client, stock or through rstpool, pointed at an
// address of its own where nothing listens; call is one unit of its work.
type outageClient struct {
	driver   string // the row's client
	settings string // what is set beyond the defaults
	ours     bool   // dials through an rstpool Dialer
	addr     string
	call     func(ctx context.Context) error
	timeout  time.Duration // of each call; zero: callTimeout
}

// closedAddr returns a loopback address that refuses connections: a port
// that was listened on and closed. Every client gets one of its own, so
// that the first call of each is the first of an outage.
func closedAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

// httpOutage is net/http's DefaultTransport, and rstpool's Transport over d.
func httpOutage(t *testing.T, d *rstpool.Dialer) outageClient {
	c := outageClient{driver: "net/http", addr: closedAddr(t), ours: d != nil}
	var rt http.RoundTripper = http.DefaultTransport.(*http.Transport).Clone()
	if c.ours {
		rt, c.settings = &rstpool.Transport{Dialer: d}, "Transport{Dialer: d}"
	}
	client := &http.Client{Transport: rt}
	c.call = func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+c.addr+"/", nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		return err
	}
	return c
}

// pgOutageURL keeps pgx's default sslmode (prefer): each connect tries TLS,
// then plain text.
func pgOutageURL(addr string) string {
	return "postgres://postgres@" + addr + "/test?application_name=rstpool_outage"
}

// pgxpoolOutage is pgxpool, stock or configured by rstpgx.Configure.
func pgxpoolOutage(t *testing.T, d *rstpool.Dialer) outageClient {
	c := outageClient{driver: "pgxpool (sslmode=prefer)", addr: closedAddr(t), ours: d != nil}
	cfg, err := pgxpool.ParseConfig(pgOutageURL(c.addr))
	require.NoError(t, err)
	if c.ours {
		rstpgx.Configure(cfg, d)
		c.settings = "rstpgx.Configure(cfg, d)"
	}
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	c.call = pool.Ping
	return c
}

// pgSQLOutage is database/sql over pgx's stdlib, stock or rstpgx.OpenDB.
func pgSQLOutage(t *testing.T, d *rstpool.Dialer) outageClient {
	c := outageClient{driver: "database/sql + pgx stdlib (prefer)", addr: closedAddr(t), ours: d != nil}
	cc, err := pgx.ParseConfig(pgOutageURL(c.addr))
	require.NoError(t, err)
	var db *sql.DB
	if c.ours {
		db, c.settings = rstpgx.OpenDB(*cc, d), "rstpgx.OpenDB(cc, d)"
	} else {
		db = stdlib.OpenDB(*cc)
	}
	t.Cleanup(func() { db.Close() })
	c.call = db.PingContext
	return c
}

// mysqlOutage is database/sql over go-sql-driver/mysql, stock or through
// WrapConnector with the driver dialing through d.
func mysqlOutage(t *testing.T, d *rstpool.Dialer) outageClient {
	c := outageClient{driver: "database/sql + go-sql-driver/mysql", addr: closedAddr(t), ours: d != nil}
	cfg := mysql.NewConfig()
	cfg.Addr, cfg.User, cfg.DBName = c.addr, "root", "test"
	if c.ours {
		cfg.Net = myNetwork("rstpool-outage-"+c.addr, d)
		c.settings = "WrapConnector(conn, d)"
	}
	conn, err := mysql.NewConnector(cfg)
	require.NoError(t, err)
	var db *sql.DB
	if c.ours {
		db = sql.OpenDB(rstpool.WrapConnector(conn, d))
	} else {
		db = sql.OpenDB(conn)
	}
	t.Cleanup(func() { db.Close() })
	c.call = db.PingContext
	return c
}

// redisOutage is go-redis with opt's retry settings, stock or with d as
// its Dialer.
func redisOutage(t *testing.T, d *rstpool.Dialer, opt redis.Options) outageClient {
	c := outageClient{driver: "go-redis", addr: closedAddr(t), ours: d != nil}
	c.settings = redisSettings(opt)
	opt.Addr = c.addr
	if c.ours {
		opt.Dialer = func(ctx context.Context, network, addr string) (net.Conn, error) {
			return d.DialContext(ctx, network, addr)
		}
		c.settings = "Dialer: d.DialContext, " + c.settings
	}
	rdb := redis.NewClient(&opt)
	t.Cleanup(func() { rdb.Close() })
	c.call = func(ctx context.Context) error { return rdb.Ping(ctx).Err() }
	return c
}

// redisSettings names the retry settings of opt that differ from go-redis's
// defaults.
func redisSettings(opt redis.Options) string {
	s := ""
	add := func(name string, v any, set bool) {
		if set {
			if s != "" {
				s += ", "
			}
			s += fmt.Sprintf("%s: %v", name, v)
		}
	}
	add("DialerRetries", opt.DialerRetries, opt.DialerRetries != 0)
	add("MaxRetries", opt.MaxRetries, opt.MaxRetries != 0)
	add("DialTimeout", opt.DialTimeout, opt.DialTimeout != 0)
	add("Min/MaxRetryBackoff", opt.MinRetryBackoff, opt.MinRetryBackoff != 0)
	if s == "" {
		return "defaults (DialerRetries 5, MaxRetries 3)"
	}
	return s
}

// redisQuiet silences go-redis's log of failed dials while the test runs.
func redisQuiet(t *testing.T) {
	redisLogOnce.Do(func() { redis.SetLogger(mutableLogger{}) })
	redisMuted.Add(1)
	t.Cleanup(func() { redisMuted.Add(-1) })
}

var (
	redisLogOnce sync.Once
	redisMuted   atomic.Int32
)

// mutableLogger is go-redis's log, written unless a test muted it.
type mutableLogger struct{}

func (mutableLogger) Printf(_ context.Context, format string, v ...any) {
	if redisMuted.Load() == 0 {
		log.Printf(format, v...)
	}
}

// callTimeout bounds each call of the outage tests.
const callTimeout = 30 * time.Second
