// Package pathrule holds the rules of a timeout chain: which hops govern a
// client's own TCP connection, the settings they imply, and what is wrong
// with a client's settings on that path. The rstpool Dialer and the
// "rstpool audit" command both call it, so the library and the command
// cannot disagree.
package pathrule

import (
	"fmt"
	"strings"
	"time"
)

// Kind says how a hop treats the client's TCP connection.
type Kind uint8

const (
	// Unmarked: the server at the end of the path, or a hop whose kind is
	// not known. It is judged strictly: its idle timeout and those of the
	// hops behind it all bound the client, and TCP keepalive is not assumed
	// to keep it fresh.
	Unmarked Kind = iota
	// Terminates: the hop ends the client's TCP connection and reaches the
	// next hop over connections it pools on its own (an L7 proxy or load
	// balancer). The hops behind it govern its pool, not the client.
	Terminates
	// PassThrough: the hop forwards the client's TCP connection (NAT, L4
	// load balancer, conntrack); TCP keepalive probes refresh its timer.
	PassThrough
)

// A Hop is what the rules know of one hop.
type Hop struct {
	Name     string
	Kind     Kind
	Idle     time.Duration // how long it keeps an idle client-side connection; <= 0: forever
	Upstream time.Duration // Terminates: how long it keeps an idle upstream connection; <= 0: forever
	Lifetime time.Duration // hard cap on a connection's age; <= 0: none
}

// HopOf builds a Hop from the fields of an rstpool.Hop: a hop marked both
// ways is judged as unmarked, and a zero upstream idle timeout is the hop's
// own idle timeout.
func HopOf(name string, idle, upstream, lifetime time.Duration, terminates, passThrough bool) Hop {
	h := Hop{Name: name, Idle: idle, Upstream: upstream, Lifetime: lifetime}
	switch {
	case terminates && !passThrough:
		h.Kind = Terminates
	case passThrough && !terminates:
		h.Kind = PassThrough
	}
	if h.Upstream == 0 {
		h.Upstream = idle
	}
	return h
}

// Client is a client's connection settings as the rules judge them.
type Client struct {
	Idle        time.Duration // idle limit; <= 0: keeps idle connections forever
	KeepAlive   time.Duration // TCP keepalive idle; <= 0: keepalive off
	Interval    time.Duration // TCP keepalive interval
	Count       int           // TCP keepalive probes
	UserTimeout time.Duration // TCP_USER_TIMEOUT; <= 0: unset
	Lifetime    time.Duration // maximum connection age; <= 0: none
}

// ClientHops returns the hops the client's own TCP connection crosses:
// those up to and including the first that terminates it.
func ClientHops(hops []Hop) []Hop {
	for i, h := range hops {
		if h.Kind == Terminates {
			return hops[:i+1]
		}
	}
	return hops
}

// endDeclared reports whether the client's connection ends at a declared
// hop: one that terminates it, or a last hop that does not pass it on.
func endDeclared(client []Hop) bool {
	return len(client) > 0 && client[len(client)-1].Kind != PassThrough
}

// Derived are the settings a path implies for a client that sets none of
// its own.
type Derived struct {
	Idle      time.Duration // the idle limit; never zero
	KeepAlive time.Duration // the keepalive idle, whole seconds; never zero
	Lifetime  time.Duration // the lifetime cap; zero: no hop caps the client's connection
}

// Derive computes the settings a path implies, given the client's defaults
// for a path that says nothing (idle limit, keepalive idle) and its
// keepalive interval:
//
//   - idle: three quarters of the smallest idle timeout on the client's
//     connection, in whole milliseconds; the default when no hop on it
//     reaps, and at most the default when the connection's end (the
//     server) is not declared;
//   - keepalive idle: the default, lowered to half the smallest
//     pass-through hop's idle timeout and below that timeout minus one
//     interval (one lost probe still leaves time for the next), in whole
//     seconds, at least 1 s;
//   - lifetime: the smallest hard cap on the client's connection.
func Derive(hops []Hop, defIdle, defKeepAlive, interval time.Duration) Derived {
	client := ClientHops(hops)
	d := Derived{Idle: defIdle, KeepAlive: defKeepAlive}
	if m, ok := smallest(client, func(h Hop) time.Duration { return h.Idle }); ok {
		d.Idle = margin(m.Idle)
		if !endDeclared(client) {
			d.Idle = min(d.Idle, defIdle)
		}
	}
	if m, ok := smallestPassThrough(client); ok {
		d.KeepAlive = keepAliveFor(m.Idle, defKeepAlive, interval)
	}
	if m, ok := smallest(client, func(h Hop) time.Duration { return h.Lifetime }); ok {
		d.Lifetime = m.Lifetime
	}
	return d
}

// margin returns three quarters of d in whole milliseconds: the quarter
// absorbs reapers that fire on a coarse timer, clock drift between hops
// and the time a request spends in transit.
func margin(d time.Duration) time.Duration {
	m := d - d/4
	if t := m.Truncate(time.Millisecond); t > 0 {
		return t
	}
	return m
}

// keepAliveFor returns the keepalive idle that keeps a pass-through hop
// with idle timeout m fresh: at most def and m/2, strictly below m minus one
// interval, in whole seconds, at least 1 s (the kernel's unit).
func keepAliveFor(m, def, interval time.Duration) time.Duration {
	ka := min(def, m/2)
	if limit := m - interval; ka >= limit {
		ka = limit - 1
	}
	return max(ka.Truncate(time.Second), time.Second)
}

// smallest returns the hop with the smallest positive value of field.
func smallest(hops []Hop, field func(Hop) time.Duration) (Hop, bool) {
	var best Hop
	found := false
	for _, h := range hops {
		if v := field(h); v > 0 && (!found || v < field(best)) {
			best, found = h, true
		}
	}
	return best, found
}

func smallestPassThrough(hops []Hop) (Hop, bool) {
	var best Hop
	found := false
	for _, h := range hops {
		if h.Kind == PassThrough && h.Idle > 0 && (!found || h.Idle < best.Idle) {
			best, found = h, true
		}
	}
	return best, found
}

// keptFresh reports whether the client's keepalive probes reach a
// pass-through hop often enough, one lost probe included, that it never
// sees the flow idle.
func keptFresh(c Client, h Hop) bool {
	return h.Kind == PassThrough && c.KeepAlive > 0 && c.KeepAlive+c.Interval < h.Idle
}

// Format formats hops as "name=idle" pairs from client to server.
func Format(hops []Hop) string {
	parts := make([]string, len(hops))
	for i, h := range hops {
		parts[i] = h.Name + "=" + FormatIdle(h.Idle)
	}
	return strings.Join(parts, " → ")
}

// FormatIdle formats an idle timeout, "none" when there is none.
func FormatIdle(d time.Duration) string {
	if d <= 0 {
		return "none"
	}
	return d.String()
}

// OutlivesMessage says that a client keeps idle connections at least as
// long as a hop on its connection, and when its reuses reset.
func OutlivesMessage(client time.Duration, hop string, hopIdle time.Duration) string {
	if client <= 0 {
		return fmt.Sprintf("client idle timeout none ≥ %s %s: reuse after %s will reset", hop, hopIdle, hopIdle)
	}
	return fmt.Sprintf("client %s ≥ %s %s: reuse between %s and %s will reset", client, hop, hopIdle, hopIdle, client)
}
