// Package rstpool ends "connection reset by peer" on the client side of a
// service: its HTTP clients, database pools and own TCP protocols.
//
// Most resets a client sees are a race it can avoid: a pooled connection sat
// idle, a hop downstream (the server's keep-alive, a load balancer, a NAT)
// reaped it, and the client reused it. rstpool is a drop-in dialer and pool
// that
//
//   - prevents the race: the client's idle timeout is derived from the
//     declared hops (Chain) and kept strictly below every one of them, and
//     TCP keepalive and TCP_USER_TIMEOUT are set on every connection;
//   - detects dead connections before use: a tracked connection (Conn)
//     checks itself on the first Write after a quiet period with a
//     non-consuming peek that costs well under a microsecond, and a Write
//     to a dead connection returns 0 bytes and a *ConnError, which net/http,
//     database/sql drivers and pgx already treat as safe to retry on a new
//     connection;
//   - recovers safely: Transport retries once, on a new connection, a
//     request that failed on a reused connection when nothing was sent or
//     the request is idempotent, and never a POST that may have arrived;
//   - explains: Classify names every failure (reset, refused, broken-pipe,
//     peer-closed, timeout …) through any chain of wrapped errors, and
//     ConnError.Cause reads the likely cause from the connection's history.
//
// Start from a Dialer: its zero value applies the documented defaults.
//
//	d := &rstpool.Dialer{Chain: rstpool.Chain{rstpool.MustHop("aws-alb")}}
//	conn, err := d.DialContext(ctx, "tcp", "api.internal:443")
//
// Hand d.DialContext to any client that accepts a dial function, or use
// the wrappers built on it: Transport for net/http, WrapConnector for
// database/sql, NewPool for protocols without a pool of their own, and the
// rstpgx module for pgx and pgxpool.
//
// Errors wrap and never replace: errors.Is(err, syscall.ECONNRESET) keeps
// working through every layer of rstpool.
package rstpool
