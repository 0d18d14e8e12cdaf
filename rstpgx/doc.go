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
// caller, and pgxpool does not retry a failed query. Configure replaces that
// rule: at every acquire the pool peeks at the socket (a non-blocking
// MSG_PEEK, well under a microsecond) and retires the connection when the
// peer closed or reset it, or when it outlived the Dialer's idle limit or
// lifetime; it pings only when a peek cannot know: unsolicited data pending
// (a notice, or the FATAL message PostgreSQL writes before it closes), a
// platform without the peek, or a connection idle beyond
// rstpool.PingAfterIdle.
//
// # Restarts and retries
//
// A refused connect is retried by the Dialer itself, with jittered backoff
// for Dialer.RefusedRetry (3 s by default) within the caller's context, so
// a server restart shorter than that surfaces no connect error. pgx has no
// connect retry of its own, so attempts do not multiply: one Acquire is at
// most one retried dial. After the port listens again, PostgreSQL answers
// 57P03 ("the database system is starting up") for a moment. pgx offers no
// hook to repeat a connect that failed after the TCP handshake, so that
// error reaches the caller of Acquire; rstpool.Classify reports it as
// ClassRefused, and the caller may retry idempotent work after a short
// backoff. For
// database/sql through pgx's stdlib (OpenDB), database/sql retries a
// driver.ErrBadConn twice on pooled connections and once on a new one; the
// refused-connect budget is spent inside each new connection's dial, so the
// worst case is one budget per database/sql attempt on a new connection,
// which a restart shorter than the budget never reaches.
package rstpgx
