package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/rstpool/rstpool/cmd/rstpool/internal/demo"
)

func init() {
	register("demo", command{Summary: "run the same workload through stock net/http and rstpool over a hostile path, side by side", Run: runDemo})
}

const demoAbout = `Starts an HTTP server on loopback behind a fault-injecting proxy that acts as a
load balancer with a short idle timeout (it reaps idle flows with an RST),
restarts now and then and resets some flows mid-transfer. Runs the same seeded
workload (GET, PUT, POST with and without Idempotency-Key, with idle gaps)
through a stock net/http Transport and through rstpool.Transport at the same
time, each over its own copy of the path, and prints a side-by-side table:
errors surfaced by class, retries, POSTs the server saw twice, latency, and
the timeout-chain audit of both clients. --faults none runs the same without
faults, as a baseline. --with postgres,redis adds a database leg when the
server listens at its default local address.`

// demoFlags are the command line of "rstpool demo".
type demoFlags struct {
	cfg    demo.Config
	faults string
	json   bool
	save   string
	custom demo.Faults // the fault flags, applied over --faults when set
}

func (f *demoFlags) define(fs *flag.FlagSet) {
	fs.IntVar(&f.cfg.Requests, "requests", demo.DefaultRequests, "requests per client")
	fs.Int64Var(&f.cfg.Seed, "seed", 1, "seed of the schedule, the restarts and the proxy's choices")
	fs.DurationVar(&f.cfg.Duration, "duration", demo.DefaultDuration, "upper bound on the run")
	fs.IntVar(&f.cfg.Concurrency, "concurrency", demo.DefaultConcurrency, "requests in flight per client")
	fs.DurationVar(&f.cfg.LBIdle, "lb-idle", demo.DefaultLBIdle, "idle timeout of the load balancer (the proxy)")
	fs.DurationVar(&f.cfg.ServerIdle, "server-idle", 0, "keep-alive idle timeout of the server (default 5 × lb-idle)")
	fs.Float64Var(&f.cfg.LongGaps, "long-gaps", demo.DefaultLongGaps, "share of idle gaps longer than lb-idle")
	fs.StringVar(&f.faults, "faults", "default", "fault mix: default or none (the fault flags below change it)")
	d := demo.DefaultFaults
	fs.BoolVar(&f.custom.Reap, "reap", d.Reap, "the load balancer reaps idle flows with an RST")
	fs.Float64Var(&f.custom.ResetRate, "reset-rate", d.ResetRate, "share of flows reset mid-transfer")
	fs.Int64Var(&f.custom.ResetAfter, "reset-after", d.ResetAfter, "request bytes after which a chosen flow is reset")
	fs.DurationVar(&f.custom.RestartEvery, "restart-every", d.RestartEvery, "mean time between restarts, 0 = none")
	fs.DurationVar(&f.custom.RestartDown, "restart-down", d.RestartDown, "how long a restart refuses connects")
	fs.Func("with", "database `legs`: postgres, redis or both, comma-separated", func(s string) error {
		f.cfg.Databases = append(f.cfg.Databases, strings.Split(s, ",")...)
		return nil
	})
	fs.BoolVar(&f.json, "json", false, "print the report as one JSON document on stdout")
	fs.StringVar(&f.save, "json-out", "", "also write the JSON report to `FILE`")
}

// resolve sets cfg.Faults from --faults and the fault flags given.
func (f *demoFlags) resolve(fs *flag.FlagSet) error {
	switch f.faults {
	case "default":
		f.cfg.Faults = demo.DefaultFaults
	case "none":
		f.cfg.Faults = demo.Faults{}
	default:
		return fmt.Errorf("--faults %q: want default or none", f.faults)
	}
	fs.Visit(func(fl *flag.Flag) {
		switch fl.Name {
		case "reap":
			f.cfg.Faults.Reap = f.custom.Reap
		case "reset-rate":
			f.cfg.Faults.ResetRate = f.custom.ResetRate
		case "reset-after":
			f.cfg.Faults.ResetAfter = f.custom.ResetAfter
		case "restart-every":
			f.cfg.Faults.RestartEvery = f.custom.RestartEvery
		case "restart-down":
			f.cfg.Faults.RestartDown = f.custom.RestartDown
		}
	})
	if f.cfg.LongGaps == 0 {
		f.cfg.LongGaps = -1 // the flag's 0 means no long gaps
	}
	return nil
}

func runDemo(args []string, stdout, stderr io.Writer) int {
	var f demoFlags
	fs := newFlags("demo", "[flags]", demoAbout, stderr)
	f.define(fs)
	if st := parseFlags(fs, args); st >= 0 {
		return st
	}
	if err := f.resolve(fs); err != nil || fs.NArg() > 0 {
		fmt.Fprintf(stderr, "rstpool demo: bad arguments: %v %v\n", err, fs.Args())
		return exitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	prog := newProgress(stderr)
	f.cfg.Progress, f.cfg.ProgressEvery = prog.show, prog.every
	rep, err := demo.Run(ctx, f.cfg)
	prog.end()
	if err != nil {
		return fail(stderr, "demo", err)
	}
	if f.save != "" {
		if err := saveJSON(f.save, rep); err != nil {
			return fail(stderr, "demo", err)
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

// saveJSON writes the report to the file name.
func saveJSON(name string, rep *demo.Report) error {
	f, err := os.Create(name)
	if err != nil {
		return err
	}
	writeJSON(f, rep)
	return f.Close()
}

// progress shows a run's progress on stderr: one line rewritten in place on
// a terminal, a line every few seconds otherwise.
type progress struct {
	w     io.Writer
	tty   bool
	every time.Duration
	shown bool
}

func newProgress(w io.Writer) *progress {
	p := &progress{w: w, every: 5 * time.Second}
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			p.tty, p.every = true, 200*time.Millisecond
		}
	}
	return p
}

func (p *progress) show(pr demo.Progress) {
	var b strings.Builder
	fmt.Fprintf(&b, "demo %5.1fs", pr.Elapsed.Seconds())
	for _, c := range pr.Clients {
		fmt.Fprintf(&b, "  %s %d/%d (%d errors)", c.Name, c.Done, c.Total, c.Errors)
	}
	if p.tty {
		fmt.Fprintf(p.w, "\r%s\x1b[K", b.String())
	} else {
		fmt.Fprintln(p.w, b.String())
	}
	p.shown = true
}

// end finishes the in-place line.
func (p *progress) end() {
	if p.tty && p.shown {
		fmt.Fprintln(p.w)
	}
}
