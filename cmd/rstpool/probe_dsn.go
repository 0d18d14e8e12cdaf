package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"time"

	"github.com/rstpool/rstpool"
	"github.com/rstpool/rstpool/cmd/rstpool/internal/dbprobe"
	"github.com/rstpool/rstpool/internal/diag"
)

// runProbeDSN is "rstpool probe --dsn URL": the probe's rounds over
// sessions that log in through the database's driver.
func runProbeDSN(dsn string, cfg diag.ProbeConfig, asJSON bool, stdout, stderr io.Writer) int {
	t, err := dbprobe.Parse(dsn)
	if err != nil {
		return usageError(stderr, "probe", "--dsn %v", err)
	}
	cfg.Addr, cfg.Sessions = t.Addr, t.Sessions()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	declared, err := t.Declared(ctx, &rstpool.Dialer{NetDialer: cfg.Dialer, RefusedRetry: -1})
	if err != nil {
		return fail(stderr, "probe", err)
	}
	if !asJSON {
		fmt.Fprintf(stdout, "probing %s (%s at %s): idle durations from %s to --max %s, %d connections\n",
			t.URL, t.Kind, t.Addr, cfg.Min, cfg.Max, cfg.Conns)
		fmt.Fprintf(stdout, "mode: %s\n", cfg.Sessions.Mode)
		if declared.Text != "" {
			fmt.Fprintf(stdout, "the server declares %s\n", declared.Text)
		}
	}
	prog := newProbeProgress(stderr, cfg.Max)
	cfg.Progress = prog.show
	res, err := diag.Probe(ctx, cfg)
	prog.end()
	if err != nil && !res.Interrupted {
		return fail(stderr, "probe", err)
	}
	st := exitOK
	if res.Interrupted {
		st = exitFindings
	}
	advice, advised := t.Advise(res)
	if asJSON {
		if wst := writeJSON(stdout, newProbeDSNJSON(t, res, declared, advice, advised)); wst != exitOK {
			return wst
		}
		return st
	}
	printProbeDSN(stdout, res, declared, advice, advised)
	return st
}

func printProbeDSN(w io.Writer, r diag.ProbeResult, declared dbprobe.Setting, a dbprobe.Advice, advised bool) {
	fmt.Fprintln(w, r)
	switch {
	case r.Farewell != "":
		fmt.Fprintf(w, "the server said: %s\n", r.Farewell)
	case r.End == diag.EndFIN:
		fmt.Fprintln(w, "the server closed without a word")
	}
	if note := declaredNote(r, declared); note != "" {
		fmt.Fprintf(w, "note: %s\n", note)
	}
	if swept(r) {
		fmt.Fprintf(w, "note: another session was still open after %s idle: the server closes idle sessions on a periodic "+
			"sweep (as PgBouncer and Redis do), here after between %s and %s idle; the shortest counts\n",
			r.Outlived.Round(time.Millisecond), r.DeadAt.Round(time.Millisecond), r.Outlived.Round(time.Millisecond))
	}
	if !advised {
		return
	}
	fmt.Fprintln(w, "advice: declare the hop, and the client idle limit follows (¾ of the smallest hop):")
	fmt.Fprintf(w, "  chain := rstpool.Chain{%s}\n", a.Declare)
	fmt.Fprintf(w, "  d := &rstpool.Dialer{Chain: chain} // client idle limit %s\n", a.Idle)
	for _, s := range a.Settings {
		fmt.Fprintf(w, "  %s\n", s)
	}
}

// declaredNote compares what the probe saw with the server's own setting;
// "" when they agree or the server did not say.
func declaredNote(r diag.ProbeResult, s dbprobe.Setting) string {
	switch {
	case s.Text == "":
		return ""
	case r.End == diag.EndNone && s.Timeout > r.Max && !r.Interrupted:
		return fmt.Sprintf("the server's own timeout is above --max %s: run with --max %s to measure it", r.Max, (s.Timeout + s.Timeout/10).Round(time.Second))
	case r.End != diag.EndNone && s.Timeout == 0:
		return "the server declares no idle timeout: a hop in between (a proxy, a balancer, NAT) ended the sessions"
	case r.End != diag.EndNone && r.DeadAt < s.Timeout-s.Timeout/10:
		return "the sessions ended before the server's own timeout: a hop in between (a proxy, a balancer, NAT) ended them"
	}
	return ""
}

// swept reports whether a session outlived the shortest end by more than
// the probe's own spread (5 %, at least 20ms): the server ends idle
// sessions on a periodic sweep rather than each on its own timer.
func swept(r diag.ProbeResult) bool {
	return r.End != diag.EndNone && r.Outlived > r.DeadAt+max(r.DeadAt/20, 20*time.Millisecond)
}

// probeDSNJSON is the --json output of probe --dsn: the probe's fields,
// then what only a login can tell.
type probeDSNJSON struct {
	probeJSON
	DSN          string `json:"dsn"`
	Declared     string `json:"declared"`
	DeclaredMs   int64  `json:"declared_ms"`
	Farewell     string `json:"farewell"`
	Hop          string `json:"hop"`
	HopIdleMs    int64  `json:"hop_idle_ms"`
	ClientIdleMs int64  `json:"client_idle_ms"`
}

func newProbeDSNJSON(t *dbprobe.Target, r diag.ProbeResult, declared dbprobe.Setting, a dbprobe.Advice, advised bool) probeDSNJSON {
	j := probeDSNJSON{probeJSON: newProbeJSON(r), DSN: t.URL, Declared: declared.Text, DeclaredMs: ms(declared.Timeout),
		Farewell: r.Farewell}
	if advised {
		j.Hop, j.HopIdleMs, j.ClientIdleMs = a.Declare, ms(a.Hop.IdleTimeout), ms(a.Idle)
	}
	return j
}
