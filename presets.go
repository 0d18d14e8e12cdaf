package rstpool

import (
	"strconv"
	"time"
)

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
	// PgBouncer in its default pool_mode=session: client_idle_timeout,
	// default 0 (off), governs the client's connection, and each client is
	// linked to one server connection for its whole session: when the server
	// closes that connection (PostgreSQL idle_session_timeout), PgBouncer
	// closes the client's. So it does not terminate in Hop's sense; declare
	// the server behind it. server_idle_timeout applies only to unlinked
	// server connections.
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
