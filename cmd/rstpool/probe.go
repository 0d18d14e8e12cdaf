package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"time"

	"github.com/rstpool/rstpool/internal/diag"
)

func init() {
	register("probe", command{Summary: "measure a path's idle timeout and how it ends idle flows (FIN, RST, silent drop)", Run: runProbe})
}

const probeAbout = `Measures how long the path to HOST:PORT keeps an idle connection. Probe
connections idle for durations spread geometrically between --min and --max
(then refined between the last alive and the first dead); each is watched with
a non-blocking peek that sees a FIN or RST as it arrives, and checked with a
protocol no-op when its time is up, which finds silent drops:
  --proto tcp    peek only (cannot see a silent drop)
  --proto http   OPTIONS * HTTP/1.1, expects an HTTP response
  --proto redis  PING, expects +PONG
It takes about as long as the timeout (a silent drop: about twice), at most
--max plus a refining round. Exit status 1 when the probe fails.`

func runProbe(args []string, stdout, stderr io.Writer) int {
	var cfg diag.ProbeConfig
	fs := newFlags("probe", "[flags] HOST:PORT", probeAbout, stderr)
	fs.StringVar(&cfg.Proto, "proto", "tcp", "active check: tcp, http or redis")
	fs.DurationVar(&cfg.Min, "min", 250*time.Millisecond, "shortest idle duration tried")
	fs.DurationVar(&cfg.Max, "max", 10*time.Minute, "longest idle duration tried")
	fs.IntVar(&cfg.Conns, "conns", 16, "connection budget over both rounds (at least 2)")
	fs.DurationVar(&cfg.Wait, "wait", 2*time.Second, "how long an active check waits for its answer")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	if st := parseFlags(fs, args); st >= 0 {
		return st
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return exitUsage
	}
	cfg.Addr = fs.Arg(0)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if !*asJSON {
		fmt.Fprintf(stdout, "probing %s (%s) for idle timeouts up to %s...\n", cfg.Addr, cfg.Proto, cfg.Max)
	}
	res, err := diag.Probe(ctx, cfg)
	if err != nil {
		return fail(stderr, "probe", err)
	}
	if *asJSON {
		return writeJSON(stdout, res)
	}
	fmt.Fprintln(stdout, res)
	return exitOK
}
