// Package faultproxy is a fault-injecting TCP proxy for tests, benchmarks and
// the demo. It sits between a client and an upstream, both on loopback, and
// reproduces the ways connections die in service-to-service traffic:
//
//   - a NAT or load balancer that forgets a flow idle longer than a timeout
//     (Config.IdleTimeout). It tells no one when it forgets; the client learns
//     only when it next sends, by an RST (ActionReset), a FIN both ways
//     (ActionClose), or silence (ActionDrop). With ActionReset, a sweep
//     closes the client's socket without a word as the timeout passes (TCP
//     repair mode, Linux with CAP_NET_ADMIN), so that the kernel answers
//     the client's next bytes with an RST and acknowledges none of them, as
//     a middlebox does; elsewhere, and for the other actions, idleness is
//     measured lazily, when bytes arrive after a gap.
//   - a peer that resets mid-transfer after N bytes (Config.ResetAfterBytes),
//     on a fraction of connections chosen by a seeded generator.
//   - a peer that restarts (Restart: open flows are reset, connects are
//     refused for a while, then it listens again on the same port) or that is
//     briefly not listening (Refuse).
//   - a server that answers early and closes while the client still sends a
//     body, so the kernel sends an RST (Config.EarlyResponse).
//   - live controls: BlackHole, ResetAll, SetIdleTimeout.
//
// Resets are real: the proxy closes the client socket with SO_LINGER 0, and a
// refusal is a closed listening port. Stats counts what the proxy did.
//
// What it cannot model: packet-level silence. The proxy is a user-space
// endpoint, so, like an L7 proxy, its kernel acknowledges the client's bytes
// even when the proxy then discards them (ActionDrop, BlackHole). The client's
// writes succeed and its reads time out, but TCP retransmissions and
// TCP_USER_TIMEOUT never come into play. A packet-level black hole needs a
// network namespace with a drop rule, which lives elsewhere. For the same
// reason, a client that closes its side of a dropped flow gets a FIN back,
// so that dropped flows do not pile up.
//
// Addresses must be on loopback: Start refuses any other.
package faultproxy
