// Package rstpool ends "connection reset by peer" on the client side of a
// service: its HTTP clients, database pools and own TCP protocols.
//
// Most users need five names:
//
//   - Transport, an http.RoundTripper to put in an http.Client;
//   - WrapConnector, for database/sql (and the rstpgx module for pgx);
//   - NewPool, a pool of checked connections for a protocol of your own;
//   - Retry, to run work once more when its connection failed under it;
//   - Dialer, under all of them: its zero value applies the defaults, and
//     its Chain declares the hops between the client and the server.
//
// Classify and ConnError explain a failure; Stats and an Observer count
// and report what happened.
//
//	d := &rstpool.Dialer{Chain: rstpool.Chain{rstpool.MustHop("aws-alb")}}
//	client := &http.Client{Transport: &rstpool.Transport{Dialer: d}}
//
// Most resets a client sees are a race it can avoid: a pooled connection sat
// idle, a hop downstream (the server's keep-alive, a load balancer, a NAT)
// reaped it, and the client reused it. rstpool
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
// Work is retried once, on a new connection, when its connection
// failed (a reset, a broken pipe, an end of stream, a refused connect; never
// an error of the server or the application, never a timeout), the caller
// has not given up, and either nothing of the work left or the work is
// idempotent. An HTTP request is not retried once a byte of its response
// arrived. A retry that may add load to a struggling server draws from a
// RetryBudget; one that repairs work a stale pooled connection lost does
// not. A retry goes at once only when the work never left; otherwise it
// waits a short jittered pause, so that a blip of the path has passed.
// Idempotent work whose retry meets the blip again (its new connection
// taken and reset before a byte came back) waits another pause and runs
// again, for as long as its Dialer retries a refused connect (RefusedRetry,
// counted from the first such reset): a blip may last as long as a
// restart.
//
// Connects are retried, not work: a refused connect, or one a proxy answers
// with a reset, is retried with backoff for the Dialer's RefusedRetry. The
// process keeps, as shared facts, the run of failed connects of each
// destination; each Dialer decides from its own RefusedRetry when that run
// makes the destination down for it.
//
// ConnError.Written is how many bytes of the piece of work may have left:
// since the consumer's checkout, else since the dial, never less. Zero
// means the server cannot have seen it.
//
// Errors wrap and never replace: errors.Is(err, syscall.ECONNRESET) keeps
// working through every layer of rstpool.
package rstpool
