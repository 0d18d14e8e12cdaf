package demo

import (
	"fmt"
	"time"

	"github.com/rstpool/rstpool"
)

// Faults are the faults the proxy in front of each server injects. The zero
// value injects none: the proxy forwards faithfully.
type Faults struct {
	// Reap makes the proxy forget flows idle longer than Config.LBIdle and
	// answer their next bytes with an RST, like a load balancer.
	Reap bool
	// ResetRate is the share of flows, in [0, 1], reset mid-transfer once
	// ResetAfter bytes of requests went through them.
	ResetRate  float64
	ResetAfter int64
	// RestartEvery is the mean time between two restarts of the proxy
	// (every flow reset, connects refused for RestartDown); the times are
	// drawn from the seed. Zero: no restarts.
	RestartEvery time.Duration
	RestartDown  time.Duration
}

// DefaultFaults is the default fault mix of the demo: idle reaping, one flow
// in ten reset after 1500 bytes of requests (a few requests in, never the
// first), and a restart every 8 s on average that refuses connects for
// 50 ms (under 1% of the time: a rolling restart, not an outage).
var DefaultFaults = Faults{
	Reap:         true,
	ResetRate:    0.1,
	ResetAfter:   1500,
	RestartEvery: 8 * time.Second,
	RestartDown:  50 * time.Millisecond,
}

// Config configures Run. Zero fields take the defaults below.
type Config struct {
	Requests    int           // requests per client; 0: DefaultRequests
	Seed        int64         // seeds the schedule, the restarts and the proxy's choices
	Duration    time.Duration // upper bound on the run; 0: DefaultDuration
	Concurrency int           // requests in flight per client; 0: DefaultConcurrency
	LBIdle      time.Duration // the load balancer's idle timeout; 0: DefaultLBIdle
	ServerIdle  time.Duration // the server's keep-alive timeout; 0: 5 × LBIdle
	LongGaps    float64       // share of gaps longer than LBIdle; 0: DefaultLongGaps, negative: none
	Faults      Faults        // what the proxy injects

	// Databases names the database legs to run beside the HTTP legs, each
	// at most once: "postgres", "mysql", "redis", those registered in this
	// build (DatabaseNames; see package demodb). A database not reachable
	// at its local address is skipped, with the reason in the report,
	// unless RequireDatabases is set: then Run fails before it starts.
	Databases        []string
	RequireDatabases bool

	// Progress, if set, is called about every ProgressEvery (0: 250 ms)
	// while the run goes, and once at its end.
	Progress      func(Progress)
	ProgressEvery time.Duration
}

// Defaults of Config: about 20 s on a small machine.
const (
	DefaultRequests    = 1000
	DefaultDuration    = 2 * time.Minute
	DefaultConcurrency = 4
	DefaultLBIdle      = 600 * time.Millisecond
	DefaultLongGaps    = 0.25
)

// Progress reports how far each client got.
type Progress struct {
	Elapsed time.Duration
	Clients []ClientProgress
}

// ClientProgress is the progress of one client.
type ClientProgress struct {
	Name   string
	Done   int64 // requests finished
	Total  int   // requests in the schedule
	Errors int64 // requests that failed
}

func (c Config) withDefaults() Config {
	c.Requests = orInt(c.Requests, DefaultRequests)
	c.Concurrency = orInt(c.Concurrency, DefaultConcurrency)
	c.Duration = orDur(c.Duration, DefaultDuration)
	c.LBIdle = orDur(c.LBIdle, DefaultLBIdle)
	c.ServerIdle = orDur(c.ServerIdle, 5*c.LBIdle)
	c.ProgressEvery = orDur(c.ProgressEvery, 250*time.Millisecond)
	switch {
	case c.LongGaps == 0:
		c.LongGaps = DefaultLongGaps
	case c.LongGaps < 0:
		c.LongGaps = 0
	}
	return c
}

// validate reports the first field of c, defaults applied, that Run cannot
// honour.
func (c Config) validate() error {
	switch {
	case c.Requests < 0:
		return fmt.Errorf("demo: Config.Requests %d: negative", c.Requests)
	case c.Concurrency < 0:
		return fmt.Errorf("demo: Config.Concurrency %d: negative", c.Concurrency)
	case c.Duration < 0 || c.LBIdle < 0 || c.ServerIdle < 0:
		return fmt.Errorf("demo: Config.Duration %v, LBIdle %v, ServerIdle %v: negative", c.Duration, c.LBIdle, c.ServerIdle)
	case c.LongGaps > 1:
		return fmt.Errorf("demo: Config.LongGaps %v: above 1", c.LongGaps)
	case c.Faults.ResetRate < 0 || c.Faults.ResetRate > 1:
		return fmt.Errorf("demo: Faults.ResetRate %v: outside [0, 1]", c.Faults.ResetRate)
	case c.Faults.ResetRate > 0 && c.Faults.ResetAfter <= 0:
		return fmt.Errorf("demo: Faults.ResetAfter %d: ResetRate needs it positive", c.Faults.ResetAfter)
	case c.Faults.RestartEvery < 0 || c.Faults.RestartDown < 0:
		return fmt.Errorf("demo: Faults.RestartEvery %v, RestartDown %v: negative", c.Faults.RestartEvery, c.Faults.RestartDown)
	}
	return checkDatabases(c.Databases)
}

// Chain is the path the demo declares: the load balancer (the proxy), then
// the server.
func (c Config) Chain() rstpool.Chain {
	c = c.withDefaults()
	return rstpool.Chain{
		{Name: "lb", IdleTimeout: c.LBIdle},
		{Name: "server", IdleTimeout: c.ServerIdle},
	}
}

// schedule is the workload every client runs, defaults applied.
func (c Config) schedule() []Burst {
	return Workload{Requests: c.Requests, Seed: c.Seed, Idle: c.LBIdle, LongGaps: c.LongGaps}.Schedule()
}

func orInt(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

func orDur(v, def time.Duration) time.Duration {
	if v == 0 {
		return def
	}
	return v
}
