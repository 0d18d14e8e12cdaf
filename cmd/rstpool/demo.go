package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"time"

	"github.com/rstpool/rstpool/cmd/rstpool/internal/demo"
)

func init() {
	register("demo", command{Summary: "run the same workload through stock clients and rstpool over a hostile path, side by side (HTTP; databases with --with)", Run: runDemo})
}

const demoAbout = `Starts an HTTP server on loopback behind a fault-injecting proxy that acts as a
load balancer with a short idle timeout (it reaps idle flows with an RST),
restarts now and then and resets some flows mid-transfer. Runs the same seeded
workload (GET, PUT, POST with and without Idempotency-Key, with idle gaps)
through a stock net/http Transport and through rstpool.Transport at the same
time, each over its own copy of the path, and prints a side-by-side table:
errors surfaced by class, retries, POSTs the server saw twice, latency, and
the timeout-chain audit of both clients. --faults none runs the same without
faults, as a baseline. The counts vary from run to run: timing decides which
requests a fault hits.

--with postgres,mysql,redis also runs, at the same time and each over its own
copy of the path, the real drivers against the local servers, stock and wired
to rstpool as README.md and CLIENTS.md show:
  postgres  pgxpool; rstpgx.Configure, calls in rstpgx.Retry
            (postgres@127.0.0.1:5432, database test, trust)
  mysql     database/sql + go-sql-driver/mysql; mysql.RegisterDialContext with
            the Dialer, rstpool.WrapConnector, calls in rstpool.Retry
            (root@127.0.0.1:3306, no password, database test)
  redis     go-redis; Options.Dialer, ConnMaxIdleTime from d.Limits(),
            DialerRetries 1, go-redis's own retries (127.0.0.1:6379)
Reads, and writes the server counts (INSERT into table rstpool_demo_writes,
HINCRBY on hash rstpool-demo:RUN; each run deletes its own), so that a write
applied twice shows. "retries taken" counts the second attempts the demo sees
(rstpool.Retry's, rstpgx.Retry's), not a driver's own (go-redis, database/sql).
A server that does not answer is skipped, and the report says how to start
it; RSTPOOL_REQUIRE_SERVICES=1 makes that an error:
  go run ./cmd/rstpool demo --with postgres,mysql,redis

--json prints the report as one JSON document: snake_case keys, and every
duration a number of milliseconds in a key ending in _ms. Top level:
requests, seed, concurrency, chain, lb_idle_ms, server_idle_ms, faults
{reap, reset_rate, reset_after_bytes, restart_every_ms (0: none),
restart_down_ms}, idle_gaps_ms, clients, databases [{name, client, addr,
skipped (empty when it ran), clients}], elapsed_ms. Each client: name, about,
idle_timeout_ms (0: none), audit, audit_ok, requests, sent, ok, errors,
errors_by_class {reset, broken_pipe, ...}, errors_by_kind {get, put,
post_keyed, post, read, write}, idempotent_errors, non_idempotent_errors,
retries, duplicates, server {arrivals, distinct, duplicates, replays},
p50_ms, p99_ms, max_ms, proxy {accepted, reaped_reset, mid_transfer_resets,
restarts, flows_reset}, elapsed_ms, transport_stats.

Exit status: 0 after a run, 1 when the run failed, 2 for a bad command line.`

// Bounds of the flags beyond which the demo says no.
const (
	maxRequests    = 1_000_000
	maxConcurrency = 256 // the proxy keeps at most 1024 flows
	minLBIdle      = 10 * time.Millisecond
)

// demoFlags are the command line of "rstpool demo".
type demoFlags struct {
	cfg    demo.Config
	faults string
	json   bool
	save   string
	custom demo.Faults // the fault flags, applied over --faults when set
}

func (f *demoFlags) define(fs *flag.FlagSet) {
	fs.IntVar(&f.cfg.Requests, "requests", demo.DefaultRequests, "requests per client, 1 to 1000000")
	fs.Int64Var(&f.cfg.Seed, "seed", 1, "seed of the schedule, the restarts and the proxy's choices")
	fs.DurationVar(&f.cfg.Duration, "duration", demo.DefaultDuration, "upper bound on the run")
	fs.IntVar(&f.cfg.Concurrency, "concurrency", demo.DefaultConcurrency, "requests in flight per client, 1 to 256")
	fs.DurationVar(&f.cfg.LBIdle, "lb-idle", demo.DefaultLBIdle, "idle timeout of the load balancer (the proxy), at least 10ms")
	fs.DurationVar(&f.cfg.ServerIdle, "server-idle", 0, "keep-alive idle timeout of the HTTP server (default 5 × lb-idle)")
	fs.Float64Var(&f.cfg.LongGaps, "long-gaps", demo.DefaultLongGaps, "share of idle gaps longer than lb-idle, 0 to 1")
	fs.StringVar(&f.faults, "faults", "default", "fault mix: default or none (the fault flags below change it)")
	d := demo.DefaultFaults
	fs.BoolVar(&f.custom.Reap, "reap", d.Reap, "the load balancer reaps idle flows with an RST")
	fs.Float64Var(&f.custom.ResetRate, "reset-rate", d.ResetRate, "share of flows reset mid-transfer, 0 to 1")
	fs.Int64Var(&f.custom.ResetAfter, "reset-after", d.ResetAfter, "request bytes after which a chosen flow is reset")
	fs.DurationVar(&f.custom.RestartEvery, "restart-every", d.RestartEvery, "mean time between restarts, 0 = none")
	fs.DurationVar(&f.custom.RestartDown, "restart-down", d.RestartDown, "how long a restart refuses connects")
	fs.Func("with", withUsage(), f.addDatabases)
	fs.BoolVar(&f.json, "json", false, "print the report as one JSON document on stdout")
	fs.StringVar(&f.save, "json-out", "", "also write the JSON report to `FILE`")
}

// addDatabases takes one --with value.
func (f *demoFlags) addDatabases(s string) error {
	for _, name := range strings.Split(s, ",") {
		switch {
		case !slices.Contains(demo.Known, name):
			return fmt.Errorf("%q: want %s", name, strings.Join(demo.Known, ", "))
		case !slices.Contains(demo.DatabaseNames(), name):
			return fmt.Errorf("%q: %w", name, demo.ErrNotBuiltIn)
		case slices.Contains(f.cfg.Databases, name):
			return fmt.Errorf("%q named twice", name)
		}
		f.cfg.Databases = append(f.cfg.Databases, name)
	}
	return nil
}

// withUsage is the usage line of --with.
func withUsage() string {
	return "database `legs`, comma-separated: " + strings.Join(demo.Known, ", ")
}

// check validates the parsed command line, naming the flag at fault, and
// resolves the fault mix into cfg.Faults.
func (f *demoFlags) check(fs *flag.FlagSet) error {
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q: demo takes flags only", fs.Arg(0))
	}
	set := map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
	c, x := f.cfg, f.custom
	for _, r := range []struct {
		bad        bool
		name, want string
	}{
		{c.Requests < 1 || c.Requests > maxRequests, "requests", "must be between 1 and 1000000"},
		{c.Duration <= 0, "duration", "must be positive"},
		{c.Concurrency < 1 || c.Concurrency > maxConcurrency, "concurrency", "must be between 1 and 256"},
		{c.LBIdle < minLBIdle, "lb-idle", "must be at least 10ms"},
		{set["server-idle"] && c.ServerIdle <= 0, "server-idle", "must be positive"},
		{!(c.LongGaps >= 0 && c.LongGaps <= 1), "long-gaps", "must be between 0 and 1"},
		{f.faults != "default" && f.faults != "none", "faults", "want default or none"},
		{!(x.ResetRate >= 0 && x.ResetRate <= 1), "reset-rate", "must be between 0 and 1"},
		{x.ResetAfter < 1, "reset-after", "must be at least 1"},
		{x.RestartEvery < 0, "restart-every", "must be 0 (no restarts) or positive"},
		{x.RestartDown <= 0, "restart-down", "must be positive"},
	} {
		if r.bad {
			return fmt.Errorf("--%s %s: %s", r.name, fs.Lookup(r.name).Value, r.want)
		}
	}
	f.resolve(set)
	return nil
}

// resolve sets cfg.Faults from --faults and the fault flags given.
func (f *demoFlags) resolve(set map[string]bool) {
	f.cfg.Faults = demo.DefaultFaults
	if f.faults == "none" {
		f.cfg.Faults = demo.Faults{}
	}
	x, fl := f.custom, &f.cfg.Faults
	for name, apply := range map[string]func(){
		"reap":          func() { fl.Reap = x.Reap },
		"reset-rate":    func() { fl.ResetRate = x.ResetRate },
		"reset-after":   func() { fl.ResetAfter = x.ResetAfter },
		"restart-every": func() { fl.RestartEvery = x.RestartEvery },
		"restart-down":  func() { fl.RestartDown = x.RestartDown },
	} {
		if set[name] {
			apply()
		}
	}
	if fl.ResetRate > 0 && fl.ResetAfter == 0 {
		fl.ResetAfter = demo.DefaultFaults.ResetAfter // --faults none --reset-rate 0.2
	}
	if fl.RestartEvery > 0 && fl.RestartDown == 0 {
		fl.RestartDown = demo.DefaultFaults.RestartDown
	}
	if f.cfg.LongGaps == 0 {
		f.cfg.LongGaps = -1 // the flag's 0 means no long gaps
	}
}

func runDemo(args []string, stdout, stderr io.Writer) int {
	var f demoFlags
	fs := newFlags("demo", "[flags]", demoAbout, stderr)
	f.define(fs)
	if st := parseOneLine(fs, "demo", args, stderr); st >= 0 {
		return st
	}
	if err := f.check(fs); err != nil {
		return usageError(stderr, "demo", "%v", err)
	}
	f.cfg.RequireDatabases = os.Getenv("RSTPOOL_REQUIRE_SERVICES") == "1"
	var out *reportFile
	if f.save != "" {
		var err error
		if out, err = createReportFile(f.save); err != nil {
			return usageError(stderr, "demo", "--json-out %s: %v", f.save, err)
		}
		defer out.discard()
	}
	return demoRun(f, out, stdout, stderr)
}

// demoRun runs the demo the flags describe and prints its report.
func demoRun(f demoFlags, out *reportFile, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	prog := newProgress(stderr)
	f.cfg.Progress, f.cfg.ProgressEvery = prog.show, prog.every
	rep, err := demo.Run(ctx, f.cfg)
	prog.end()
	if err != nil {
		return fail(stderr, "demo", err)
	}
	if out != nil {
		if err := out.commit(rep); err != nil {
			return fail(stderr, "demo", fmt.Errorf("--json-out %s: %w", f.save, err))
		}
	}
	if f.json {
		return writeJSON(stdout, rep)
	}
	if err := demo.WriteTable(stdout, rep); err != nil {
		return fail(stderr, "demo", err)
	}
	return exitOK
}

// parseOneLine parses args like parseFlags, but reports a bad flag in one
// line instead of the usage. It returns -1 to go on, else the exit status.
func parseOneLine(fs *flag.FlagSet, name string, args []string, stderr io.Writer) int {
	usage, out := fs.Usage, fs.Output()
	fs.Usage = func() {}
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	fs.Usage = usage
	fs.SetOutput(out)
	switch {
	case errors.Is(err, flag.ErrHelp):
		fs.Usage()
		return exitOK
	case err != nil:
		return usageError(stderr, name, "%v", err)
	}
	return -1
}
