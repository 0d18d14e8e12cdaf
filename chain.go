package rstpool

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/rstpool/rstpool/internal/pathrule"
)

// A Hop is one element on the path between the client and the server that
// closes or forgets a connection after it has been idle: a server's
// keep-alive, a proxy or load balancer, a NAT gateway, a conntrack table.
//
// A hop is marked by how it treats the client's TCP connection. One that
// Terminates it (an L7 proxy) ends the client's connection: the hops
// behind it govern that proxy's own connections, not the client's. One that
// is a Middlebox passes it through: TCP keepalive keeps it fresh. A hop
// marked neither is the server at the end of the path or a hop whose kind
// is not known, and is judged strictly: its idle timeout and those of the
// hops behind it all bound the client. Marking a hop both is an error.
type Hop struct {
	// Name identifies the hop in findings ("aws-alb", "nginx").
	Name string

	// IdleTimeout is how long the hop keeps an idle connection from the
	// side of the client. Zero means the hop never reaps idle connections.
	IdleTimeout time.Duration

	// Terminates marks a hop that ends the client's TCP connection and
	// reaches the next hop over connections it pools on its own: an L7
	// proxy or load balancer (AWS ALB, Envoy, nginx as a proxy, HAProxy in
	// http mode, PgBouncer in transaction mode). The client's limits come
	// from the hops up to and including the first that terminates; the hops
	// behind it are checked against its UpstreamIdleTimeout. A proxy that
	// pins each client connection to one upstream connection (PgBouncer in
	// session mode) does not terminate in this sense: a close behind it ends
	// the client's connection too.
	Terminates bool

	// UpstreamIdleTimeout is, for a hop that Terminates, how long it keeps
	// an idle connection to the next hop. Zero: IdleTimeout (one setting for
	// both sides, as on AWS ALB). Negative: it keeps them forever.
	UpstreamIdleTimeout time.Duration

	// Middlebox marks a hop that passes the client's TCP connection through
	// (NAT, L4 load balancer, conntrack, stateful firewall): TCP keepalive
	// probes refresh its idle timer, so keepalive, not only the client's
	// idle limit, can keep it from forgetting a quiet connection.
	Middlebox bool

	// MaxLifetime is a hard cap on a connection's age after which the hop
	// closes it whatever its activity. Zero means no cap.
	MaxLifetime time.Duration
}

// WithIdle returns the hop with its idle timeout changed, for a deployment
// that tuned a preset: MustHop("nginx").WithIdle(time.Second) is nginx with
// keepalive_timeout 1s (the command's --hop nginx=1s). A hop whose
// UpstreamIdleTimeout follows IdleTimeout (zero) follows the change.
func (h Hop) WithIdle(d time.Duration) Hop {
	h.IdleTimeout = d
	return h
}

// rule is the hop as the path rules see it; a hop marked both ways is
// judged as unmarked (the Dialer rejects it).
func (h Hop) rule() pathrule.Hop {
	return pathrule.HopOf(h.Name, h.IdleTimeout, h.UpstreamIdleTimeout, h.MaxLifetime, h.Terminates, h.Middlebox)
}

// A Chain is the path's hops, listed from the client towards the server.
type Chain []Hop

func (c Chain) rules() []pathrule.Hop {
	out := make([]pathrule.Hop, len(c))
	for i, h := range c {
		out[i] = h.rule()
	}
	return out
}

// derive is what the chain implies for a Dialer with the default keepalive
// interval.
func (c Chain) derive() pathrule.Derived {
	return pathrule.Derive(c.rules(), DefaultIdleTimeout, DefaultKeepAliveIdle, DefaultKeepAliveInterval)
}

// ClientIdleTimeout returns the idle limit a Dialer with this Chain uses
// when its IdleTimeout is zero: three quarters of the smallest idle timeout
// on the client's own connection (the hops up to the first that
// Terminates), in whole milliseconds. The quarter kept as margin absorbs
// reapers that fire on a coarse timer, clock drift between hops and the
// time a request spends in transit. It is DefaultIdleTimeout when no hop on
// that connection reaps, and at most DefaultIdleTimeout when the path ends
// at a Middlebox (the server behind it is not declared).
func (c Chain) ClientIdleTimeout() time.Duration { return c.derive().Idle }

// KeepAliveIdle returns the TCP keepalive idle time a Dialer with this
// Chain and the default KeepAliveInterval uses when its KeepAliveIdle is
// zero: DefaultKeepAliveIdle, lowered when a Middlebox on the client's
// connection needs it to half that hop's idle timeout, and below it minus
// one interval so that one lost probe still leaves time for the next. It is
// a whole number of seconds, at least 1 s.
func (c Chain) KeepAliveIdle() time.Duration { return c.derive().KeepAlive }

// MaxLifetime returns the smallest hard cap on connection age among the
// hops on the client's own connection, or zero when none has one.
func (c Chain) MaxLifetime() time.Duration { return c.derive().Lifetime }

// Check reports whether a client idle timeout is strictly below every hop
// on the client's own connection, assuming the keepalive a Dialer with this
// Chain uses by default (a Middlebox that keepalive keeps fresh may be
// outlived). clientIdle zero or negative means the client keeps idle
// connections forever. The error is an *OutlivesError for each hop the
// client outlives, joined with errors.Join when there are several, smallest
// hop first. Hops behind a hop that Terminates do not bound the client;
// "rstpool audit" judges them against that hop.
func (c Chain) Check(clientIdle time.Duration) error {
	sug := c.suggestion()
	client := sug
	client.Idle = clientIdle
	var errs []error
	for _, f := range pathrule.Findings(c.rules(), client, sug) {
		if f.Check == "client-idle" && f.Severity == pathrule.Crit {
			errs = append(errs, &OutlivesError{Client: clientIdle, Hop: c[f.Hop]})
		}
	}
	return errors.Join(errs...)
}

// suggestion is what a Dialer with this Chain and no settings of its own
// resolves to.
func (c Chain) suggestion() pathrule.Client {
	s, err := (&Dialer{Chain: c}).settings()
	if err != nil { // a malformed chain: judge it with the plain derivation
		d := c.derive()
		return pathrule.Client{Idle: d.Idle, KeepAlive: d.KeepAlive, Interval: DefaultKeepAliveInterval,
			Count: DefaultKeepAliveCount, Lifetime: d.Lifetime}
	}
	return s.client()
}

// String formats the chain as "name=timeout" pairs from client to server.
func (c Chain) String() string { return pathrule.Format(c.rules()) }

// An OutlivesError says that the client keeps idle connections at least as
// long as a hop on its connection, and so reuses connections the hop has
// already reaped.
type OutlivesError struct {
	Client time.Duration // the client's idle timeout; zero or negative: none
	Hop    Hop
}

func (e *OutlivesError) Error() string {
	return pathrule.OutlivesMessage(e.Client, e.Hop.Name, e.Hop.IdleTimeout)
}

// checked returns the chain as the path rules see it, or a *ConfigError
// for a hop that cannot be judged.
func (c Chain) checked() ([]pathrule.Hop, error) {
	field := func(i int, name string) string { return fmt.Sprintf("Dialer.Chain[%d]%s", i, name) }
	for i, h := range c {
		switch {
		case h.Terminates && h.Middlebox:
			return nil, configErr(field(i, ""), "%q is marked both Terminates and Middlebox: a hop either ends the client's connection or passes it through", h.Name)
		case h.IdleTimeout < 0:
			return nil, configErr(field(i, ".IdleTimeout"), "%s of %q must not be negative (zero: it never reaps)", h.IdleTimeout, h.Name)
		case h.MaxLifetime < 0:
			return nil, configErr(field(i, ".MaxLifetime"), "%s of %q must not be negative (zero: no cap)", h.MaxLifetime, h.Name)
		}
	}
	return c.rules(), nil
}

// presets holds the published default idle timeouts of common hops, each
// with its source. A deployment that changed a default declares the hop
// with WithIdle, or a Hop of its own.
var presets = []Hop{
	// Servers, the end of a path: marked neither way.

	// Apache httpd KeepAliveTimeout, default 5 s (httpd core documentation).
	{Name: "apache", IdleTimeout: 5 * time.Second},
	// Node.js http.Server keepAliveTimeout, default 5000 ms (Node.js http
	// documentation).
	{Name: "node", IdleTimeout: 5 * time.Second},
	// Gunicorn --keep-alive, default 2 s (Gunicorn settings).
	{Name: "gunicorn", IdleTimeout: 2 * time.Second},
	// Uvicorn --timeout-keep-alive, default 5 s (Uvicorn settings).
	{Name: "uvicorn", IdleTimeout: 5 * time.Second},
	// MySQL and MariaDB wait_timeout, default 28800 s (server system
	// variables); it applies to a session once it has logged in.
	{Name: "mysql", IdleTimeout: 8 * time.Hour},

	// Proxies and load balancers that terminate the client's connection.

	// nginx as a reverse proxy: keepalive_timeout, default 75 s, towards
	// clients (ngx_http_core_module); keepalive_timeout, default 60 s, in an
	// upstream block with keepalive enabled (ngx_http_upstream_module, nginx
	// 1.15.3 and later; without keepalive nginx does not reuse upstream
	// connections). keepalive_time (1 h) closes gracefully after a response,
	// so it is not a hard cap.
	{Name: "nginx", IdleTimeout: 75 * time.Second, Terminates: true, UpstreamIdleTimeout: 60 * time.Second},
	// Envoy: the HTTP connection manager's common_http_protocol_options
	// idle_timeout, default 1 h, towards clients; the cluster's
	// common_http_protocol_options idle_timeout, default 1 h, towards
	// upstreams (Envoy API reference).
	{Name: "envoy", IdleTimeout: time.Hour, Terminates: true, UpstreamIdleTimeout: time.Hour},
	// AWS Application Load Balancer: the connection idle timeout, default
	// 60 s, applies to its client and its target connections (Elastic Load
	// Balancing documentation). Its client keepalive duration (1 h) closes
	// gracefully after a response, so it is not a hard cap.
	{Name: "aws-alb", IdleTimeout: 60 * time.Second, Terminates: true},
	// Google Cloud global external Application Load Balancer: client HTTP
	// keepalive timeout, default 610 s; backend keepalive timeout 600 s,
	// fixed (Cloud Load Balancing, "Timeouts and retries").
	{Name: "gcp-lb", IdleTimeout: 610 * time.Second, Terminates: true, UpstreamIdleTimeout: 600 * time.Second},
	// PgBouncer with pool_mode=transaction: client_idle_timeout, default 0
	// (off), governs the client's connection. Between transactions the
	// client holds no server connection, so the server's idle_session_timeout
	// reaches only PgBouncer's pool, where server_idle_timeout (default
	// 600 s) applies. Inside a transaction the client is linked to a server
	// connection and PgBouncer's idle_transaction_timeout (off) and the
	// server's idle_in_transaction_session_timeout govern (pgbouncer.ini
	// documentation).
	{Name: "pgbouncer-tx", Terminates: true, UpstreamIdleTimeout: 600 * time.Second},
	// PgBouncer in its default pool_mode=session: each client is linked to
	// one server connection for its whole session, and when the server
	// closes that connection (PostgreSQL idle_session_timeout), PgBouncer
	// closes the client's. So it does not terminate in Hop's sense; declare
	// the server behind it. client_idle_timeout (default 0, off) does not
	// reach a client that ran a statement, since it stays linked (PgBouncer
	// 1.18, measured with rstpool probe --dsn); server_idle_timeout applies
	// only to unlinked server connections.
	{Name: "pgbouncer"},

	// Hops that pass the client's connection through.

	// AWS Network Load Balancer, TCP listener: idle timeout 350 s; TCP
	// keepalive packets reset it (Elastic Load Balancing documentation).
	{Name: "aws-nlb", IdleTimeout: 350 * time.Second, Middlebox: true},
	// AWS NAT gateway: drops a flow idle for 350 s; keepalive below that
	// keeps it (Amazon VPC documentation).
	{Name: "aws-nat", IdleTimeout: 350 * time.Second, Middlebox: true},
	// Azure Load Balancer: TCP idle timeout, default 4 min; TCP keepalive
	// resets it (Azure Load Balancer documentation).
	{Name: "azure-lb", IdleTimeout: 4 * time.Minute, Middlebox: true},
	// Google Cloud NAT: established TCP idle timeout, default 1200 s (Cloud
	// NAT documentation).
	{Name: "gcp-nat", IdleTimeout: 1200 * time.Second, Middlebox: true},
	// Linux nf_conntrack_tcp_timeout_established, default 432000 s, 5 days
	// (kernel nf_conntrack-sysctl documentation).
	{Name: "linux-conntrack", IdleTimeout: 432000 * time.Second, Middlebox: true},
}

// LookupHop returns the preset hop with the given name (see Presets).
func LookupHop(name string) (Hop, bool) {
	for _, h := range presets {
		if h.Name == name {
			return h, true
		}
	}
	return Hop{}, false
}

// Presets returns the hops whose published defaults rstpool knows, by
// name. Servers: apache, node, gunicorn, uvicorn, mysql. Proxies that
// terminate the client's connection: nginx, envoy, aws-alb, gcp-lb,
// pgbouncer-tx (PgBouncer in transaction mode). PgBouncer in its default
// session mode: pgbouncer. Middleboxes: aws-nlb, aws-nat, azure-lb, gcp-nat,
// linux-conntrack.
func Presets() []Hop {
	return append([]Hop(nil), presets...)
}

// MustHop returns the preset hop with the given name and panics if there
// is none; it is meant for declaring chains in variable initializers.
func MustHop(name string) Hop {
	h, ok := LookupHop(name)
	if !ok {
		panic("rstpool: no preset hop named " + strconv.Quote(name))
	}
	return h
}
