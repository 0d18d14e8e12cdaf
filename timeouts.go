package rstpool

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// A Hop is one element on the path between the client and the server that
// closes or forgets a connection after it has been idle: a server's
// keep-alive, a load balancer, a NAT gateway, a conntrack table.
type Hop struct {
	// Name identifies the hop in findings ("AWS ALB", "nginx").
	Name string

	// IdleTimeout is how long the hop keeps an idle connection.
	// Zero means the hop never reaps idle connections.
	IdleTimeout time.Duration

	// Middlebox reports that the hop tracks TCP flows below the
	// application (NAT, L4 load balancer, conntrack): TCP keepalive
	// probes reset its idle timer. An application-level hop (a server, an
	// HTTP proxy) is not kept alive by TCP keepalive.
	Middlebox bool

	// MaxLifetime is a hard cap on a connection's age after which the hop
	// closes it whatever its activity. Zero means no cap.
	MaxLifetime time.Duration
}

// A Chain is the path's hops, listed from the client towards the server.
type Chain []Hop

// ClientIdleTimeout returns the idle timeout the client should use so that
// it gives up a connection before any hop does: three quarters of the
// smallest hop idle timeout. The quarter kept as margin absorbs reapers that
// fire on a coarse timer, clock drift between hops and the time a request
// spends in transit. It returns zero when no hop reaps idle connections.
func (c Chain) ClientIdleTimeout() time.Duration {
	h, ok := c.smallestIdle(false)
	if !ok {
		return 0
	}
	return h.IdleTimeout - h.IdleTimeout/4
}

// KeepAliveIdle returns the TCP keepalive idle time that keeps every
// middlebox hop's flow state fresh: half the smallest middlebox idle
// timeout, so that one lost probe still leaves time for the next. It returns
// zero when the chain has no middlebox.
func (c Chain) KeepAliveIdle() time.Duration {
	h, ok := c.smallestIdle(true)
	if !ok {
		return 0
	}
	return max(h.IdleTimeout/2, time.Second)
}

// MaxLifetime returns the smallest hard cap on connection age in the chain,
// or zero when no hop has one.
func (c Chain) MaxLifetime() time.Duration {
	var m time.Duration
	for _, h := range c {
		if h.MaxLifetime > 0 && (m == 0 || h.MaxLifetime < m) {
			m = h.MaxLifetime
		}
	}
	return m
}

func (c Chain) smallestIdle(middleboxOnly bool) (Hop, bool) {
	var best Hop
	found := false
	for _, h := range c {
		if h.IdleTimeout <= 0 || (middleboxOnly && !h.Middlebox) {
			continue
		}
		if !found || h.IdleTimeout < best.IdleTimeout {
			best, found = h, true
		}
	}
	return best, found
}

// Check reports whether a client idle timeout is strictly below every hop's.
// clientIdle zero or negative means the client keeps idle connections
// forever. The error is an *OutlivesError for each hop the client outlives,
// joined with errors.Join when there are several, smallest hop first.
func (c Chain) Check(clientIdle time.Duration) error {
	var errs []error
	for _, h := range c {
		if h.IdleTimeout > 0 && (clientIdle <= 0 || clientIdle >= h.IdleTimeout) {
			errs = append(errs, &OutlivesError{Client: clientIdle, Hop: h})
		}
	}
	sort.SliceStable(errs, func(i, j int) bool {
		return errs[i].(*OutlivesError).Hop.IdleTimeout < errs[j].(*OutlivesError).Hop.IdleTimeout
	})
	return errors.Join(errs...)
}

// String formats the chain as "name=timeout" pairs from client to server.
func (c Chain) String() string {
	parts := make([]string, len(c))
	for i, h := range c {
		parts[i] = h.Name + "=" + formatIdle(h.IdleTimeout)
	}
	return strings.Join(parts, " → ")
}

// An OutlivesError says that the client keeps idle connections at least as
// long as a hop, and so reuses connections the hop has already reaped.
type OutlivesError struct {
	Client time.Duration // the client's idle timeout; zero or negative: none
	Hop    Hop
}

func (e *OutlivesError) Error() string {
	if e.Client <= 0 {
		return fmt.Sprintf("client idle timeout none ≥ %s %s: reuse after %s will reset",
			e.Hop.Name, e.Hop.IdleTimeout, e.Hop.IdleTimeout)
	}
	return fmt.Sprintf("client %s ≥ %s %s: reuse between %s and %s will reset",
		e.Client, e.Hop.Name, e.Hop.IdleTimeout, e.Hop.IdleTimeout, e.Client)
}

func formatIdle(d time.Duration) string {
	if d <= 0 {
		return "none"
	}
	return d.String()
}

// presets holds the published default idle timeouts of common hops. Each
// entry names its source; a deployment that changed the default must
// declare its own Hop.
var presets = []Hop{
	// nginx keepalive_timeout default 75s (ngx_http_core_module docs).
	{Name: "nginx", IdleTimeout: 75 * time.Second},
	// Apache httpd KeepAliveTimeout default 5s (core docs).
	{Name: "apache", IdleTimeout: 5 * time.Second},
	// Node.js http.Server keepAliveTimeout default 5000 ms (http module docs).
	{Name: "node", IdleTimeout: 5 * time.Second},
	// Gunicorn --keep-alive default 2s (settings docs).
	{Name: "gunicorn", IdleTimeout: 2 * time.Second},
	// Uvicorn --timeout-keep-alive default 5s (settings docs).
	{Name: "uvicorn", IdleTimeout: 5 * time.Second},
	// Envoy HTTP connection manager common_http_protocol_options.idle_timeout default 1h.
	{Name: "envoy", IdleTimeout: time.Hour},
	// AWS Application Load Balancer idle timeout default 60s (ELB docs).
	{Name: "aws-alb", IdleTimeout: 60 * time.Second},
	// AWS Network Load Balancer TCP idle timeout 350s (ELB docs).
	{Name: "aws-nlb", IdleTimeout: 350 * time.Second, Middlebox: true},
	// AWS NAT gateway drops flows idle for 350s (VPC NAT gateway docs).
	{Name: "aws-nat", IdleTimeout: 350 * time.Second, Middlebox: true},
	// Azure Load Balancer TCP idle timeout default 4 minutes (Azure LB docs).
	{Name: "azure-lb", IdleTimeout: 4 * time.Minute, Middlebox: true},
	// Google Cloud HTTP(S) LB backend keepalive timeout 600s (Cloud LB docs).
	{Name: "gcp-lb", IdleTimeout: 600 * time.Second},
	// Google Cloud NAT established TCP idle timeout default 1200s (Cloud NAT docs).
	{Name: "gcp-nat", IdleTimeout: 1200 * time.Second, Middlebox: true},
	// Linux nf_conntrack_tcp_timeout_established default 432000s, 5 days (kernel docs).
	{Name: "linux-conntrack", IdleTimeout: 432000 * time.Second, Middlebox: true},
	// Go http.Transport IdleConnTimeout default 90s (net/http DefaultTransport).
	{Name: "go-transport", IdleTimeout: 90 * time.Second},
	// MySQL/MariaDB wait_timeout default 28800s, 8h (server system variables docs).
	{Name: "mysql", IdleTimeout: 8 * time.Hour},
	// PgBouncer server_idle_timeout default 600s (pgbouncer config docs).
	{Name: "pgbouncer", IdleTimeout: 600 * time.Second},
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

// Presets returns the hops whose published default idle timeouts rstpool
// knows, by name: nginx, apache, node, gunicorn, uvicorn, envoy, aws-alb,
// aws-nlb, aws-nat, azure-lb, gcp-lb, gcp-nat, linux-conntrack,
// go-transport, mysql and pgbouncer.
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
