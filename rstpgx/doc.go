// Package rstpgx wires rstpool into pgx and pgxpool: connections dial
// through an rstpool.Dialer, the pool retires them before any hop's idle
// timeout or lifetime, and every checkout is checked the cheap way.
//
//	cfg, _ := pgxpool.ParseConfig("postgres://127.0.0.1/test")
//	rstpgx.Configure(cfg, &rstpool.Dialer{Chain: chain})
//	pool, _ := pgxpool.NewWithConfig(ctx, cfg)
//
// # The checkout check
//
// Stock pgxpool pings a connection only when it sat idle more than a
// second, so a connection that PostgreSQL closed within a second of its last
// use (idle_session_timeout, pg_terminate_backend, a restart) reaches the
// caller, and pgxpool does not retry a failed query. Configure adds to that
// rule: at every acquire the pool peeks at the socket (a non-blocking
// MSG_PEEK, well under a microsecond) and retires the connection when the
// peer closed or reset it, or when it outlived the Dialer's idle limit or
// lifetime; it pings when a peek cannot know: unsolicited data pending
// (a notice, or the FATAL message PostgreSQL writes before it closes), a
// platform without the peek, or a connection idle more than a second, as
// pgx does (a middlebox that forgot the connection silently sends nothing
// a peek could see).
//
// # Restarts and retries
//
// A refused connect is retried by the Dialer itself, with jittered backoff
// for Dialer.RefusedRetry (3 s by default) within the caller's context.
// Once the port listens again, and while it shuts down, PostgreSQL refuses
// a new session with 57P03 ("the database system is starting up", "... is
// shutting down") after the TCP handshake. Configure and OpenDB install a
// BeforeConnect hook for that: pgconn tries Config.Fallbacks in order after
// any failure but a few authentication errors, so the hook appends copies
// of the primary host to the per-connect copy of the config, and a dial
// function that lets a copy run only when the attempt before it ended in
// 57P03, after a jittered backoff (25 ms doubling to 400 ms) and within the
// same RefusedRetry budget; otherwise the copy fails at once with "rstpgx:
// not retried", which pgx lists among the attempts of a failed connect.
// Nothing multiplies: a refused dial is retried only inside the Dialer, a
// 57P03 only by the hook, and pgx has no connect retry of its own.
//
// pgxpool never retries a failed query. Retry runs work once more when it
// failed because of the connection and a repeat cannot run a write twice:
//
//	err := rstpgx.Retry(ctx, true, func(ctx context.Context) error {
//		return pool.QueryRow(ctx, "select balance from accounts where id = $1", id).Scan(&b)
//	})
//
// With it, a PostgreSQL restart under traffic surfaces no error to
// idempotent work; an INSERT in flight when the server ended its session
// reports the error (its outcome is unknown: it may have committed) and is
// never repeated. Retry works with pgx's stdlib under database/sql too.
//
// For database/sql through pgx's stdlib (OpenDB), database/sql retries a
// driver.ErrBadConn twice on pooled connections and once on a new one; the
// refused-connect budget is spent inside each new connection's dial, so the
// worst case is one budget per database/sql attempt on a new connection,
// which a restart shorter than the budget never reaches.
package rstpgx
