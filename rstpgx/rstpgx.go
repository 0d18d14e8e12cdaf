package rstpgx

import (
	"context"
	"crypto/tls"
	"database/sql"
	"net"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/rstpool/rstpool"
	"github.com/rstpool/rstpool/internal/handout"
)

// lifetimeJitter is the fraction of the lifetime over which pgxpool spreads
// the retirement of connections, so that a pool created at once is not
// replaced at once. The retirement is brought forward by it and a margin,
// so no connection outlives the Dialer's lifetime.
const (
	lifetimeJitter = 0.10
	lifetimeMargin = 0.05
)

// Configure makes cfg dial through d and check connections at acquire
// (see the package documentation):
//
//   - ConnConfig.DialFunc: d.DialContext;
//   - MaxConnIdleTime: d's idle limit (IdleTimeout, else the chain's client
//     idle timeout, else rstpool.DefaultIdleTimeout), unless d has none;
//     HealthCheckPeriod is lowered to half of it so the background sweep
//     also retires idle connections in time;
//   - MaxConnLifetime and MaxConnLifetimeJitter: d's lifetime (MaxLifetime,
//     else the chain's hard cap) less 15 %, plus up to 10 % jitter; with no
//     lifetime, pgx's own (an hour) gets the jitter if it has none;
//   - PrepareConn runs the checkout check before any PrepareConn or
//     BeforeAcquire already set, and ShouldPing stops pgxpool's own ping of
//     connections idle more than a second (the check pings when needed);
//   - BeforeConnect (after any BeforeConnect already set) makes a connect
//     that PostgreSQL refuses with 57P03 ("the database system is starting
//     up") try again with jittered backoff within d's RefusedRetry budget
//     (see the package documentation).
//
// A nil d means a zero Dialer. Settings of d that cannot work make every
// connect fail with an *rstpool.ConfigError.
func Configure(cfg *pgxpool.Config, d *rstpool.Dialer) {
	if d == nil {
		d = &rstpool.Dialer{}
	}
	ConfigureConn(cfg.ConnConfig, d)
	idle, life := limits(d)
	if idle > 0 {
		cfg.MaxConnIdleTime = idle
		cfg.HealthCheckPeriod = min(cfg.HealthCheckPeriod, idle/2)
	}
	if life > 0 {
		cfg.MaxConnLifetime = time.Duration(float64(life) * (1 - lifetimeJitter - lifetimeMargin))
		cfg.MaxConnLifetimeJitter = time.Duration(float64(life) * lifetimeJitter)
	} else if cfg.MaxConnLifetimeJitter == 0 {
		cfg.MaxConnLifetimeJitter = time.Duration(float64(cfg.MaxConnLifetime) * lifetimeJitter)
	}
	ch := newChecker(idle, life, d.Observer)
	//lint:ignore SA1019 pgxpool ignores BeforeAcquire once PrepareConn is set: chain it
	cfg.PrepareConn = chainPrepare(ch.prepare, cfg.PrepareConn, cfg.BeforeAcquire)
	cfg.ShouldPing = chainShouldPing(cfg.ShouldPing)
	cfg.BeforeConnect = chainBeforeConnect(cfg.BeforeConnect, beforeConnect(d))
}

// beforeConnect is the BeforeConnect hook of Configure and OpenDB: it
// counts the connect as the work's (see rstpool.Retry) and installs the
// start-up retry.
func beforeConnect(d *rstpool.Dialer) func(context.Context, *pgx.ConnConfig) error {
	s := newStartupRetry(d)
	return func(ctx context.Context, cc *pgx.ConnConfig) error {
		handout.Connecting(ctx)
		if s == nil {
			return nil
		}
		return s.beforeConnect(ctx, cc)
	}
}

// chainBeforeConnect runs the caller's hook first (it may change hosts),
// then ours.
func chainBeforeConnect(theirs, ours func(context.Context, *pgx.ConnConfig) error) func(context.Context, *pgx.ConnConfig) error {
	if theirs == nil {
		return ours
	}
	return func(ctx context.Context, cc *pgx.ConnConfig) error {
		if err := theirs(ctx, cc); err != nil {
			return err
		}
		return ours(ctx, cc)
	}
}

// ConfigureConn makes a pgx.ConnConfig dial through d, for pgx.ConnectConfig
// or pgx's stdlib (see OpenDB). A nil d means a zero Dialer.
func ConfigureConn(cc *pgx.ConnConfig, d *rstpool.Dialer) {
	if d == nil {
		d = &rstpool.Dialer{}
	}
	cc.DialFunc = d.DialContext
}

// limits returns d's idle limit and lifetime; zero means none. Bad
// settings leave both zero here: every dial reports them.
func limits(d *rstpool.Dialer) (idle, life time.Duration) {
	idle, life, _ = d.Limits()
	return idle, life
}

// Tracked returns the *rstpool.Conn under a pgx connection, or nil when it
// did not dial through an rstpool.Dialer. It sees through TLS.
func Tracked(c *pgx.Conn) *rstpool.Conn {
	if c == nil || c.PgConn() == nil {
		return nil
	}
	nc := c.PgConn().Conn()
	for range 4 {
		switch v := nc.(type) {
		case *rstpool.Conn:
			return v
		case *tls.Conn:
			nc = v.NetConn()
		case interface{ NetConn() net.Conn }:
			nc = v.NetConn()
		default:
			return nil
		}
	}
	return nil
}

func chainPrepare(ours, theirs func(context.Context, *pgx.Conn) (bool, error),
	before func(context.Context, *pgx.Conn) bool) func(context.Context, *pgx.Conn) (bool, error) {
	if theirs == nil && before != nil {
		theirs = func(ctx context.Context, c *pgx.Conn) (bool, error) { return before(ctx, c), nil }
	}
	if theirs == nil {
		return ours
	}
	return func(ctx context.Context, c *pgx.Conn) (bool, error) {
		if ok, err := ours(ctx, c); !ok || err != nil {
			return ok, err
		}
		return theirs(ctx, c)
	}
}

// chainShouldPing keeps pgxpool's rule (or the caller's) for connections
// that did not dial through rstpool; tracked ones are checked in PrepareConn.
func chainShouldPing(theirs func(context.Context, pgxpool.ShouldPingParams) bool) func(context.Context, pgxpool.ShouldPingParams) bool {
	return func(ctx context.Context, p pgxpool.ShouldPingParams) bool {
		switch {
		case theirs != nil:
			return theirs(ctx, p)
		case Tracked(p.Conn) != nil:
			return false
		}
		return p.IdleDuration > time.Second
	}
}

// OpenDB opens a database/sql pool through pgx's stdlib whose connections
// dial through d, are checked at checkout (rstpool.WrapConnector) and wait
// out PostgreSQL's start-up (57P03) as Configure's do.
func OpenDB(cc pgx.ConnConfig, d *rstpool.Dialer) *sql.DB {
	if d == nil {
		d = &rstpool.Dialer{}
	}
	ConfigureConn(&cc, d)
	opts := []stdlib.OptionOpenDB{
		stdlib.OptionBeforeConnect(beforeConnect(d)),
		// WrapConnector's checkout pings where a peek cannot know: pgx's
		// own ping of every connection idle over a second would double it.
		stdlib.OptionShouldPing(func(context.Context, stdlib.ShouldPingParams) bool { return false }),
	}
	return sql.OpenDB(rstpool.WrapConnector(stdlib.GetConnector(cc, opts...), d))
}
