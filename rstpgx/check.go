package rstpgx

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/rstpool/rstpool"
)

// newConsumer applies d's idle limit and lifetime (zero: none) at checkout,
// brought forward by a small margin so that the query about to run does
// not cross them, with pgx's Ping where a peek cannot know: it skips the
// notices and notifications a server sends unasked.
func newConsumer(d *rstpool.Dialer, idle, life time.Duration) *rstpool.Consumer {
	return &rstpool.Consumer{
		Source: "pgx", Dialer: d,
		IdleTimeout: orNone(idle - margin(idle)), MaxLifetime: orNone(life - margin(life)),
		PingAfter: pingAfter, PingReadsPending: true,
	}
}

// pingAfter is the idleness past which a checkout pings a connection that
// a peek found alive, as stock pgx and pgxpool do: a peek sees a FIN or an
// RST at once, but not a middlebox that forgot the connection silently,
// which only a round trip finds. A variable for BenchmarkCheckout.
var pingAfter = time.Second

// orNone is d, or negative (none) when d is zero.
func orNone(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}

// margin is 1 % of a limit, at most a second.
func margin(limit time.Duration) time.Duration { return min(limit/100, time.Second) }

// prepare is the PrepareConn hook of Configure: it reports whether a pooled
// connection may be handed out; false with a nil error makes pgxpool
// destroy it (pgx's Close says goodbye to the server) and take another.
func prepare(k *rstpool.Consumer) func(ctx context.Context, c *pgx.Conn) (bool, error) {
	return func(ctx context.Context, c *pgx.Conn) (bool, error) {
		err := checkout(ctx, k, c)
		return err == nil, fatal(ctx, err)
	}
}

// checkout runs the consumer's checkout on c, pinging through pgx.
func checkout(ctx context.Context, k *rstpool.Consumer, c *pgx.Conn) error {
	if c == nil || c.PgConn() == nil {
		return nil
	}
	return k.Checkout(ctx, c.PgConn().Conn(), c.Ping)
}

// fatal is the error that fails an acquire rather than retiring one
// connection: the caller gave up, or the Dialer's settings cannot work.
func fatal(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	var ce *rstpool.ConfigError
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case errors.As(err, &ce):
		return err
	}
	return nil
}

// tracer tells Retry which connection each statement of a piece of work
// uses, held or not: every pgx query, batch, copy and prepare starts one.
type tracer struct{ k *rstpool.Consumer }

func (t tracer) use(ctx context.Context, c *pgx.Conn) context.Context {
	t.k.Use(ctx, c.PgConn().Conn())
	return ctx
}

func (t tracer) TraceQueryStart(ctx context.Context, c *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	return t.use(ctx, c)
}

func (t tracer) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

func (t tracer) TraceBatchStart(ctx context.Context, c *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	return t.use(ctx, c)
}

func (t tracer) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {}
func (t tracer) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData)     {}

func (t tracer) TraceCopyFromStart(ctx context.Context, c *pgx.Conn, _ pgx.TraceCopyFromStartData) context.Context {
	return t.use(ctx, c)
}

func (t tracer) TraceCopyFromEnd(context.Context, *pgx.Conn, pgx.TraceCopyFromEndData) {}

func (t tracer) TracePrepareStart(ctx context.Context, c *pgx.Conn, _ pgx.TracePrepareStartData) context.Context {
	return t.use(ctx, c)
}

func (t tracer) TracePrepareEnd(context.Context, *pgx.Conn, pgx.TracePrepareEndData) {}
