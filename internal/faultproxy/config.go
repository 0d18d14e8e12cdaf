package faultproxy

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"time"
)

// Action is what the proxy does to a flow it forgot after an idle gap, at the
// moment the flow is next used.
type Action uint8

const (
	// ActionReset answers the client's next bytes with an RST and closes the
	// upstream side. Nothing is forwarded.
	ActionReset Action = iota
	// ActionDrop turns the flow into a black hole: bytes from either side are
	// read and discarded, nothing is forwarded and nothing is answered.
	ActionDrop
	// ActionClose closes both sides with a FIN when the client next sends.
	ActionClose
)

// String returns "reset", "drop" or "close".
func (a Action) String() string {
	switch a {
	case ActionReset:
		return "reset"
	case ActionDrop:
		return "drop"
	case ActionClose:
		return "close"
	}
	return fmt.Sprintf("Action(%d)", uint8(a))
}

// Direction selects which forwarded bytes count towards a threshold.
type Direction uint8

const (
	// Both counts bytes forwarded in either direction.
	Both Direction = iota
	// Up counts bytes forwarded from the client to the upstream.
	Up
	// Down counts bytes forwarded from the upstream to the client.
	Down
)

// DefaultMaxConns is the bound on concurrent flows when Config.MaxConns is 0.
// It keeps a runaway test from exhausting file descriptors.
const DefaultMaxConns = 1024

// DefaultListen is the listen address when Config.Listen is empty: a fresh
// loopback port.
const DefaultListen = "127.0.0.1:0"

// Config configures a Proxy. The zero value of every field but Upstream is a
// proxy that forwards faithfully and injects no fault.
type Config struct {
	// Upstream is the host:port every flow is forwarded to. Required. The host
	// must be a loopback IP literal (127.0.0.0/8, ::1) or "localhost".
	Upstream string

	// Listen is the address to listen on; empty means DefaultListen. It must
	// be a loopback address, like Upstream.
	Listen string

	// IdleTimeout is how long a flow may see no bytes in either direction
	// before the proxy forgets it, silently, like a NAT or load balancer.
	// Zero or negative means flows are never forgotten. IdleAction says what
	// happens when a forgotten flow is next used; its zero value is
	// ActionReset. Both can be changed at run time with SetIdleTimeout.
	IdleTimeout time.Duration
	IdleAction  Action

	// IdleWaitsForClient, when true, counts as idle only the time a flow
	// waits for the client: bytes from the upstream are always forwarded
	// and refresh the flow, so an answer slower than IdleTimeout (a server
	// that thinks, a loaded machine) is delivered, as an L7 proxy's
	// keep-alive timeout, which runs between requests, would deliver it.
	// The client's next bytes after IdleTimeout without a byte either way
	// still meet IdleAction. False: a flow idle longer than IdleTimeout is
	// forgotten whichever side speaks next, and a late answer vanishes.
	IdleWaitsForClient bool

	// ResetAfterBytes, when positive, makes the proxy forward exactly that many
	// bytes (counted in ResetDirection) on a chosen flow, then RST the client
	// and close the upstream. ResetFraction is the share of flows chosen, in
	// [0, 1]; 0 means every flow. Ignored when ResetAfterBytes is 0.
	ResetAfterBytes int64
	ResetFraction   float64
	ResetDirection  Direction

	// EarlyResponse, when non-empty, makes the proxy answer a chosen flow in
	// place of the upstream: once the client has sent EarlyAfterBytes bytes
	// (0: its first byte), the proxy writes EarlyResponse to the client and
	// closes the client socket while the client still sends, so the kernel
	// answers with an RST. Client bytes of such a flow are never forwarded. A
	// client that half-closes before EarlyAfterBytes gets the response at its
	// FIN, then a plain close.
	// EarlyFraction is the share of flows chosen, in [0, 1]; 0 means every
	// flow.
	EarlyResponse   []byte
	EarlyAfterBytes int64
	EarlyFraction   float64

	// Seed seeds the generator that chooses flows for ResetFraction and
	// EarlyFraction. The choice depends only on Seed and the order in which
	// connections are accepted.
	Seed int64

	// MaxConns bounds the flows open at once; a connection beyond it is reset
	// as soon as it is accepted. Zero means DefaultMaxConns.
	MaxConns int
}

func (c *Config) listen() string {
	if c.Listen == "" {
		return DefaultListen
	}
	return c.Listen
}

func (c *Config) maxConns() int {
	if c.MaxConns == 0 {
		return DefaultMaxConns
	}
	return c.MaxConns
}

// validate reports the first field of c that the proxy cannot honour.
func (c *Config) validate() error {
	if c.Upstream == "" {
		return errors.New("faultproxy: Config.Upstream is required")
	}
	if err := checkLoopback(c.Upstream); err != nil {
		return fmt.Errorf("faultproxy: Config.Upstream: %w", err)
	}
	if err := checkLoopback(c.listen()); err != nil {
		return fmt.Errorf("faultproxy: Config.Listen: %w", err)
	}
	if c.IdleAction > ActionClose {
		return fmt.Errorf("faultproxy: Config.IdleAction: unknown action %d", c.IdleAction)
	}
	if c.ResetDirection > Down {
		return fmt.Errorf("faultproxy: Config.ResetDirection: unknown direction %d", c.ResetDirection)
	}
	if c.ResetAfterBytes < 0 {
		return fmt.Errorf("faultproxy: Config.ResetAfterBytes: negative (%d)", c.ResetAfterBytes)
	}
	if c.EarlyAfterBytes < 0 {
		return fmt.Errorf("faultproxy: Config.EarlyAfterBytes: negative (%d)", c.EarlyAfterBytes)
	}
	if err := checkFraction(c.ResetFraction); err != nil {
		return fmt.Errorf("faultproxy: Config.ResetFraction: %w", err)
	}
	if err := checkFraction(c.EarlyFraction); err != nil {
		return fmt.Errorf("faultproxy: Config.EarlyFraction: %w", err)
	}
	if c.MaxConns < 0 {
		return fmt.Errorf("faultproxy: Config.MaxConns: negative (%d)", c.MaxConns)
	}
	return nil
}

// ErrNotLoopback is wrapped by the error Start returns for an address that is
// not on loopback.
var ErrNotLoopback = errors.New("not a loopback address")

func checkLoopback(hostport string) error {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return err
	}
	if host == "localhost" {
		return nil
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || !ip.IsLoopback() {
		return fmt.Errorf("%q: %w", host, ErrNotLoopback)
	}
	return nil
}

func checkFraction(f float64) error {
	if math.IsNaN(f) || f < 0 || f > 1 {
		return fmt.Errorf("%v is outside [0, 1]", f)
	}
	return nil
}
