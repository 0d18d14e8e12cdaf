// Package demo runs the hostile-path demonstration of the rstpool command:
// the same seeded workload of HTTP requests, with idle gaps, through a stock
// net/http client and through rstpool.Transport, each to its own in-process
// server behind a fault-injecting proxy that acts as a load balancer with a
// short idle timeout (it reaps idle flows with an RST), restarts now and
// then and resets some flows mid-transfer.
//
// Run returns a Report: per client, the requests sent, the errors surfaced
// by class, the retries taken, the non-idempotent requests the server saw
// twice and the latency percentiles, plus the timeout-chain audit of both
// configurations. WriteTable prints it side by side. A database leg (Ping
// through a pool, for PostgreSQL and Redis) speaks the minimal wire
// protocols by hand so that no driver is imported.
//
// Everything listens on loopback ports chosen by the kernel, and every loop
// is bounded in count and in time.
package demo
