// Package rstpool ends "connection reset by peer" on the client side of a
// service: its HTTP clients, database pools and own TCP protocols.
//
// Most resets a client sees are a race it can avoid: a pooled connection sat
// idle, a hop downstream (the server's keep-alive, a load balancer, a NAT)
// reaped it, and the client reused it. rstpool is a drop-in dialer and pool
// that
//
//   - prevents the race: the client's idle timeout is derived from the
//     declared hops (Chain) and kept below every hop on the client's own
//     connection, and TCP keepalive and TCP_USER_TIMEOUT are set on every
//     connection;
//   - detects dead connections before use: a tracked connection (Conn)
//     peeks at its socket before the first Write after a quiet spell, which
//     costs well under a microsecond, and a Write to a dead connection sends
//     nothing and returns a *ConnError, which net/http, database/sql
//     drivers and pgx already retry on a new connection;
//   - recovers safely, by one rule (below);
//   - explains: Classify names every failure (reset, refused, broken-pipe,
//     peer-closed, timeout …) through any chain of wrapped errors, and
//     ConnError.Cause reads the likely cause from the evidence the
//     connection kept.
//
// Start from a Dialer: its zero value applies the documented defaults.
//
//	d := &rstpool.Dialer{Chain: rstpool.Chain{rstpool.MustHop("aws-alb")}}
//	conn, err := d.DialContext(ctx, "tcp", "api.internal:443")
//
// Hand d.DialContext to any client that accepts a dial function, or use
// the consumers built on it: Transport for net/http, WrapConnector for
// database/sql, NewPool for protocols without a pool of their own, and the
// rstpgx module for pgx and pgxpool.
//
// # The rules
//
// A connection records facts only: bytes each way, a write counting from
// the moment it starts; when its last write finished and its last read
// returned; whether the peer's FIN or RST was seen. It enforces no limit.
//
// A connection is retired only when it is handed out: the consumer
// (Transport, Pool, WrapConnector, rstpgx) applies the idle limit and the
// lifetime at checkout, peeks, and pings where a peek cannot know. A
// connection a caller holds (a transaction, a LISTEN, a WebSocket) is never
// retired, however long it stays quiet.
//
// Work is retried at most once, on a new connection, when its connection
// failed (a reset, a broken pipe, an end of stream, a refused connect; never
// an error of the server or the application, never a timeout), the caller
// has not given up, and either nothing of the work left or the work is
// idempotent. An HTTP request is not retried once a byte of its response
// arrived. Retries draw from a RetryBudget.
//
// ConnError.Written is how many bytes of the piece of work may have left:
// since the consumer's checkout, else since the dial, never less. Zero
// means the server cannot have seen it.
//
// Errors wrap and never replace: errors.Is(err, syscall.ECONNRESET) keeps
// working through every layer of rstpool.
package rstpool
