// Package rstgrpc wires rstpool into grpc-go clients: the channel dials
// through an rstpool.Dialer, gives up idle connections before any hop
// downstream does, and pings only as often as the server allows.
//
//	d := &rstpool.Dialer{Chain: rstpool.Chain{rstpool.MustHop("aws-alb")}}
//	opts := rstgrpc.DialOptions(d, keepalive.EnforcementPolicy{}) // the server's policy; zero: grpc-go's default
//	opts = append(opts, grpc.WithTransportCredentials(creds),
//		grpc.WithChainUnaryInterceptor(rstgrpc.RetryMethods("shop.Catalog", "shop.Cart/Get")))
//	cc, err := grpc.NewClient(target, opts...)
//
// # What the channel needs
//
// A gRPC channel multiplexes every call over one HTTP/2 connection per
// backend, so there is no checkout per request: the channel is the
// consumer that applies rstpool's policy. DialOptions gives it three things.
//
// The Dialer. TCP keepalive keeps NAT and L4 load balancer state fresh
// below HTTP/2, where the server's ping policy does not look, and, with
// TCP_USER_TIMEOUT, finds a dead peer within a minute. A connect refused
// while the server (or the balancer) restarts is retried for
// Dialer.RefusedRetry: the calls wait a few milliseconds instead of
// meeting grpc-go's TRANSIENT_FAILURE, which fails every call (fail-fast by
// default) for its reconnect backoff, a second and growing.
//
// The idle limit, as the channel's idle timeout (grpc.WithIdleTimeout).
// A load balancer or NAT that forgets an idle flow tells no one: the next
// call is written into it, meets an RST or silence, and fails. The channel
// closes its connections after the Dialer's idle limit without a call,
// which is below every declared hop's idle timeout, so declare the hops.
// The limit counts only between calls, never during a long stream, and the
// connections themselves carry no idle limit (see ContextDialer).
//
// Keepalive that the server accepts (KeepaliveParams). A grpc-go server
// counts a strike for each ping sooner than its EnforcementPolicy.MinTime
// (5 minutes by default) after the previous one, and for each ping on a
// connection without calls unless PermitWithoutStream; at the third it
// sends GOAWAY ENHANCE_YOUR_CALM "too_many_pings" and closes the
// connection, failing the calls on it. The recipe pings only during calls,
// every MinTime or every idle limit, whichever is longer.
//
// # The server's other settings
//
// MaxConnectionIdle and MaxConnectionAge close connections gracefully: the
// server sends GOAWAY, finishes the calls it accepted, and grpc-go moves new
// calls to a new connection without an error, stock or with this package.
// Nothing needs declaring; declaring MaxConnectionIdle as a hop only makes
// the client close first. MaxConnectionAgeGrace cuts calls still running
// when it ends: keep it above the longest call, streams included; no client
// setting changes that.
//
// # What it cannot do
//
// A connection reset while calls are in flight fails them with
// codes.Unavailable: their requests have left, and grpc-go repeats only
// calls that never reached the server. RetryIdempotent repeats the calls of
// the methods you name, once.
//
// A Dialer lifetime (Dialer.MaxLifetime or a hop's MaxLifetime) is applied
// by pools at checkout; a gRPC channel has no checkout, so it does not
// apply: set the server's MaxConnectionAge below any hop's cap instead.
//
// Targets are dialed over TCP; a Unix socket needs grpc-go's own dialer.
package rstgrpc
