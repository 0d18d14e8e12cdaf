// Package demo runs the hostile-path demonstration of the rstpool command:
// the same seeded workload, with idle gaps, through a stock client and
// through the same client wired to rstpool, side by side, each over its own
// copy of a path with a fault-injecting proxy (internal/faultproxy) that
// acts as a load balancer with a short idle timeout (it reaps idle flows
// with an RST), restarts now and then and resets some flows mid-transfer.
//
// The HTTP legs send GET, PUT and POST requests, with and without an
// Idempotency-Key, to an in-process server: stock net/http against
// rstpool.Transport. The database legs (Config.Databases) run the real
// drivers against the local servers: pgxpool (stock, and with
// rstpgx.Configure), database/sql with go-sql-driver/mysql (stock, and
// dialing through the Dialer under rstpool.WrapConnector) and go-redis
// (stock, and with the Dialer). They send reads and writes the server counts,
// so that a write applied twice shows. They live in package demodb, which
// registers them (RegisterDatabase): this package imports no driver.
//
// Run returns a Report: per client, the requests sent, the errors surfaced
// by class, the retries taken, the non-idempotent requests the server
// applied twice and the latency percentiles, plus the timeout-chain audit of
// every client. WriteTable prints it side by side, says what each row
// counts, and ends with the Verdict; the JSON form has snake_case keys and
// durations in milliseconds.
//
// Everything but the databases listens on loopback ports chosen by the
// kernel, and every loop is bounded in count and in time.
package demo
