package rstpgx

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/multitracer"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/rstpool/rstpool"
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
	//lint:ignore SA1019 pgxpool ignores BeforeAcquire once PrepareConn is set: chain it
	cfg.PrepareConn = chainPrepare(prepare(newConsumer(d, idle, life)), cfg.PrepareConn, cfg.BeforeAcquire)
	cfg.ShouldPing = chainShouldPing(cfg.ShouldPing)
	cfg.BeforeConnect = chainBeforeConnect(cfg.BeforeConnect, beforeConnect(d))
}

// beforeConnect is the BeforeConnect hook of Configure and OpenDB: the
// start-up retry, or nothing when d never retries.
func beforeConnect(d *rstpool.Dialer) func(context.Context, *pgx.ConnConfig) error {
	if s := newStartupRetry(d); s != nil {
		return s.beforeConnect
	}
	return func(context.Context, *pgx.ConnConfig) error { return nil }
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
// or pgx's stdlib (see OpenDB), and adds a tracer (beside any already set)
// through which rstpool.Retry sees every statement of its work on such a
// connection, held or not. A nil d means a zero Dialer.
func ConfigureConn(cc *pgx.ConnConfig, d *rstpool.Dialer) {
	if d == nil {
		d = &rstpool.Dialer{}
	}
	cc.DialFunc = d.DialContext
	ours := tracer{k: &rstpool.Consumer{Source: "pgx", Dialer: d}}
	if cc.Tracer == nil {
		cc.Tracer = ours
	} else {
		cc.Tracer = multitracer.New(cc.Tracer, ours)
	}
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
	return rstpool.Tracked(c.PgConn().Conn())
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
// dial through d, are checked at checkout as Configure's are (a peek, the
// Dialer's idle limit and lifetime, pgx's ping only where a peek cannot
// know), and wait out PostgreSQL's start-up (57P03). It works through
// stdlib's own hooks, so sql.Conn.Raw hands out *stdlib.Conn as stock pgx
// does (the way to pgx's CopyFrom or LISTEN from database/sql), and pgx's
// stdlib maps a statement that never left (pgconn.SafeToRetry) to
// driver.ErrBadConn, which database/sql retries on another connection.
func OpenDB(cc pgx.ConnConfig, d *rstpool.Dialer) *sql.DB {
	if d == nil {
		d = &rstpool.Dialer{}
	}
	ConfigureConn(&cc, d)
	idle, life := limits(d)
	k := newConsumer(d, idle, life)
	opts := []stdlib.OptionOpenDB{
		stdlib.OptionBeforeConnect(beforeConnect(d)),
		// The checkout pings where a peek cannot know: pgx's own ping of
		// every connection idle over a second would double it.
		stdlib.OptionShouldPing(func(context.Context, stdlib.ShouldPingParams) bool { return false }),
		stdlib.OptionResetSession(func(ctx context.Context, c *pgx.Conn) error { return badConn(ctx, checkout(ctx, k, c)) }),
	}
	return sql.OpenDB(stdlib.GetConnector(cc, opts...))
}

// badConn turns a retirement into driver.ErrBadConn, which makes
// database/sql close the connection and take another, keeping the reason
// for errors.Is and errors.As; a canceled checkout stays the caller's.
func badConn(ctx context.Context, err error) error {
	if err == nil || ctx.Err() != nil || fatal(ctx, err) != nil {
		return err
	}
	return fmt.Errorf("%w (%w)", driver.ErrBadConn, err)
}
