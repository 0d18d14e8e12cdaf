package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strconv"
	"time"

	"github.com/rstpool/rstpool/internal/diag"
)

func init() {
	register("probe", command{Summary: "measure a path's idle timeout and how it ends idle flows (FIN, RST, silent drop)", Run: runProbe})
}

const probeAbout = `Measures how long the path to HOST:PORT keeps an idle connection. Each probe
connection makes one exchange, then idles for a duration spread geometrically
between --min and --max (then refined between the last alive and the first
dead); all are watched with a non-blocking peek that sees a FIN or RST as it
arrives, and checked with the exchange again when their time is up, which
finds silent drops. The exchange matters: many servers (Go's http.Server,
nginx) apply their keep-alive timeout only after a request.
  --proto auto       detect it (the default): a MySQL greeting, an answer to
                     PING (HTTP or RESP), an answer to a PostgreSQL SSLRequest
  --proto http       OPTIONS * HTTP/1.1, expects an HTTP response
  --proto redis      PING, expects a RESP answer
  --proto postgres   SSLRequest, no login (the server's pre-login timeout applies)
  --proto mysql      reads the greeting, no login (ditto)
  --proto tcp        nothing: peeks only (a server may time such a connection
                     differently, and a silent drop is not seen)
The report names the mode used and, when the answer may not be the timeout a
used connection meets, why. A round starts its connections over min(--min,
1s), so that a server sweeping idle connections periodically meets them at
different points of its sweep, and watches each until it has idled past the
shortest end seen: the shortest counts. A progress line on stderr shows the
bracket measured so far; Ctrl-C prints it. It takes about as long as the
timeout (a silent drop: about twice), at most --max plus a refining round.

--dsn URL logs in instead, with the URL's own credentials, through the
driver of rstpool's recipes, runs SELECT 1 (Redis: PING) on each session,
and measures the idle timeout a pooled session meets after login. HOST:PORT
cannot: a database times a connection that has not logged in by another
timer (PostgreSQL authentication_timeout, MySQL connect_timeout).
  postgres://USER:PASSWORD@HOST:PORT/DB?PARAMS   (or postgresql://) pgx:
        PostgreSQL idle_session_timeout; through PgBouncer, its
        client_idle_timeout (applied in transaction and statement pool modes)
  mysql://USER:PASSWORD@HOST:PORT/DB?PARAMS      go-sql-driver/mysql, whose
        own DSN USER:PASSWORD@tcp(HOST:PORT)/DB?PARAMS works too: wait_timeout.
        PARAMS are the driver's (tls=true, timeout=5s) or session variables it
        sets after login (wait_timeout=60)
  redis://USER:PASSWORD@HOST:PORT/DB             (or rediss:// for TLS)
        go-redis: timeout. Redis counts idle time in whole seconds, so each
        session sends its PING just before the server's clock (TIME) turns a
        second: the shortest idle Redis may close is measured
It first asks the server its own setting (SHOW idle_session_timeout, SELECT
@@SESSION.wait_timeout, CONFIG GET timeout), then reports what the server said
when it closed a session (PostgreSQL: FATAL 57P05; PgBouncer: FATAL 08P01
client_idle_timeout; MySQL 8.0.24 and later: error 4031; MariaDB resets and
Redis closes without a word), and the advice that follows: the hop to declare
in a rstpool.Chain, the client idle limit it gives, and where that limit goes
in pgxpool, database/sql or go-redis. The password is never printed. For a
role whose idle_session_timeout is 2s:

  $ rstpool probe --dsn 'postgres://app:secret@127.0.0.1:5432/test' --min 1s --max 3s
  probing postgres://app:xxxxx@127.0.0.1:5432/test (postgres at 127.0.0.1:5432): idle durations from 1s to --max 3s, 16 connections
  mode: pgx: a login and SELECT 1 per session, SELECT 1 per check
  the server declares idle_session_timeout = 2s for this session
  idle timeout ≈ 2.025s in [2.016s, 2.033s], ended by FIN; 8 connections in 2.969s
  the server said: FATAL 57P05: terminating connection due to idle-session timeout
  advice: declare the hop, and the client idle limit follows (¾ of the smallest hop):
    chain := rstpool.Chain{rstpool.Hop{Name: "postgres", IdleTimeout: 2 * time.Second}}
    d := &rstpool.Dialer{Chain: chain} // client idle limit 1.5s
    pgxpool:      rstpgx.Configure(cfg, d) sets cfg.MaxConnIdleTime to 1.5s (alone: cfg.MaxConnIdleTime = 1500 * time.Millisecond)
    database/sql: db := rstpgx.OpenDB(*cc, d); db.SetConnMaxIdleTime(1500 * time.Millisecond)

--json prints one object: "addr", "proto" (the exchange used), "detected" (why
auto chose it, "" when --proto named it), "mode", "caveat" ("" when the answer
is the timeout a used connection meets), "min_ms", "max_ms", "alive_at_ms",
"dead_at_ms" (0: no end seen), "estimate_ms", "end" (none, FIN, RST or silent
drop), "outlived_ms" (the longest idle another connection survived beyond
dead_at_ms: the server sweeps its idle sessions periodically; 0: none),
"conns", "elapsed_ms", "interrupted"; with --dsn also "dsn" (password
hidden), "declared" (the server's own setting, "" when it did not say),
"declared_ms" (0: none, or not said), "farewell" ("" when the server said
nothing), "hop" (the hop to declare, as Go source; "" when no session
ended), "hop_idle_ms" and "client_idle_ms". Durations are whole
milliseconds.

Exit status 1 when the probe fails or is interrupted, 2 for a usage error.`

func runProbe(args []string, stdout, stderr io.Writer) int {
	var cfg diag.ProbeConfig
	fs := newFlags("probe", "[flags] HOST:PORT | --dsn URL", probeAbout, stderr)
	fs.StringVar(&cfg.Proto, "proto", "auto", "the exchange: auto, tcp, http, redis, postgres or mysql")
	dsn := fs.String("dsn", "", "log in to this database `URL` and measure the idle timeout after login (see above)")
	fs.DurationVar(&cfg.Min, "min", 250*time.Millisecond, "shortest idle duration tried")
	fs.DurationVar(&cfg.Max, "max", 10*time.Minute, "longest idle duration tried")
	fs.IntVar(&cfg.Conns, "conns", 16, "connection budget over both rounds (at least 2)")
	fs.DurationVar(&cfg.Wait, "wait", 2*time.Second, "how long an exchange waits for its answer")
	asJSON := fs.Bool("json", false, "print the result as one JSON object (see above)")
	if st := parseFlags(fs, args); st >= 0 {
		return st
	}
	if st := checkProbeArgs(fs, &cfg, stderr); st >= 0 {
		return st
	}
	if *dsn != "" {
		return runProbeDSN(*dsn, cfg, *asJSON, stdout, stderr)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	prog := newProbeProgress(stderr, cfg.Max)
	cfg.Progress = prog.show
	if !*asJSON {
		fmt.Fprintf(stdout, "probing %s: idle durations from %s to --max %s, %d connections\n", cfg.Addr, cfg.Min, cfg.Max, cfg.Conns)
	}
	res, err := diag.Probe(ctx, cfg)
	prog.end()
	if err != nil && !res.Interrupted {
		return fail(stderr, "probe", err)
	}
	st := exitOK
	if res.Interrupted {
		st = exitFindings
	}
	if *asJSON {
		if wst := writeJSON(stdout, newProbeJSON(res)); wst != exitOK {
			return wst
		}
		return st
	}
	printProbe(stdout, res)
	return st
}

var probeProtos = map[string]bool{"auto": true, "tcp": true, "http": true, "redis": true, "postgres": true, "mysql": true}

// checkProbeArgs validates the command line before any connection is
// made. It returns -1 to go on.
func checkProbeArgs(fs *flag.FlagSet, cfg *diag.ProbeConfig, stderr io.Writer) int {
	args, dsn := fs.Args(), fs.Lookup("dsn").Value.String()
	if st := checkProbeFlags(cfg, stderr); st >= 0 {
		return st
	}
	switch {
	case dsn != "" && len(args) > 0:
		return usageError(stderr, "probe", "unexpected argument %q with --dsn: give HOST:PORT or --dsn URL", args[0])
	case dsn != "" && isSet(fs, "proto"):
		return usageError(stderr, "probe", "--proto with --dsn: the URL's scheme names the protocol")
	case dsn != "":
		return -1
	case len(args) == 0:
		return usageError(stderr, "probe", "give the HOST:PORT to probe, or --dsn URL")
	case len(args) > 1:
		return usageError(stderr, "probe", "unexpected argument %q after %s", args[1], args[0])
	}
	host, port, err := net.SplitHostPort(args[0])
	if n, perr := strconv.ParseUint(port, 10, 16); err != nil || perr != nil || n == 0 || host == "" {
		return usageError(stderr, "probe", "%q: want HOST:PORT with a port from 1 to 65535", args[0])
	}
	cfg.Addr = args[0]
	return -1
}

// isSet reports whether the command line set the flag.
func isSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// checkProbeFlags validates the flags shared by both forms.
func checkProbeFlags(cfg *diag.ProbeConfig, stderr io.Writer) int {
	switch {
	case !probeProtos[cfg.Proto]:
		return usageError(stderr, "probe", "--proto %q: want auto, tcp, http, redis, postgres or mysql", cfg.Proto)
	case cfg.Min <= 0:
		return usageError(stderr, "probe", "--min %s: must be positive", cfg.Min)
	case cfg.Max < cfg.Min:
		return usageError(stderr, "probe", "--max %s: must be at least --min (%s)", cfg.Max, cfg.Min)
	case cfg.Conns < 2:
		return usageError(stderr, "probe", "--conns %d: must be at least 2", cfg.Conns)
	case cfg.Wait <= 0:
		return usageError(stderr, "probe", "--wait %s: must be positive", cfg.Wait)
	}
	return -1
}

func printProbe(w io.Writer, r diag.ProbeResult) {
	how := "--proto " + r.Proto
	if r.Detected != "" {
		how = "detected: " + r.Detected
	}
	if r.Mode != "" {
		fmt.Fprintf(w, "mode: %s (%s): %s\n", r.Proto, how, r.Mode)
	}
	fmt.Fprintln(w, r)
	if r.Caveat != "" {
		fmt.Fprintf(w, "note: %s\n", r.Caveat)
	}
}

// probeProgress shows the bracket measured so far on stderr: one line
// rewritten in place on a terminal, a line every 10 s (or when the bracket
// closes) otherwise.
type probeProgress struct {
	w      io.Writer
	tty    bool
	max    time.Duration
	shown  bool
	lastAt time.Time
	dead   time.Duration
}

func newProbeProgress(w io.Writer, maxIdle time.Duration) *probeProgress {
	p := &probeProgress{w: w, max: maxIdle}
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			p.tty = true
		}
	}
	return p
}

func (p *probeProgress) show(pr diag.ProbeProgress) {
	if !p.tty && pr.Dead == p.dead && time.Since(p.lastAt) < 10*time.Second {
		return
	}
	p.lastAt, p.dead = time.Now(), pr.Dead
	upper := fmt.Sprintf("%s (--max)", p.max)
	if pr.Dead > 0 {
		upper = pr.Dead.Round(time.Millisecond).String()
	}
	line := fmt.Sprintf("probe %s: round %d: timeout in [%s, %s], %d connections idling",
		pr.Elapsed.Round(100*time.Millisecond), pr.Round, pr.Alive.Round(time.Millisecond), upper, pr.Idling)
	if p.tty {
		fmt.Fprintf(p.w, "\r%s\x1b[K", line)
	} else {
		fmt.Fprintln(p.w, line)
	}
	p.shown = true
}

// end finishes the in-place line.
func (p *probeProgress) end() {
	if p.tty && p.shown {
		fmt.Fprintln(p.w)
	}
}

// probeJSON is the probe's --json output.
type probeJSON struct {
	Addr        string `json:"addr"`
	Proto       string `json:"proto"`
	Detected    string `json:"detected"`
	Mode        string `json:"mode"`
	Caveat      string `json:"caveat"`
	MinMs       int64  `json:"min_ms"`
	MaxMs       int64  `json:"max_ms"`
	AliveAtMs   int64  `json:"alive_at_ms"`
	DeadAtMs    int64  `json:"dead_at_ms"`
	EstimateMs  int64  `json:"estimate_ms"`
	End         string `json:"end"`
	OutlivedMs  int64  `json:"outlived_ms"`
	Conns       int    `json:"conns"`
	ElapsedMs   int64  `json:"elapsed_ms"`
	Interrupted bool   `json:"interrupted"`
}

func newProbeJSON(r diag.ProbeResult) probeJSON {
	return probeJSON{Addr: r.Addr, Proto: r.Proto, Detected: r.Detected, Mode: r.Mode, Caveat: r.Caveat,
		MinMs: ms(r.Min), MaxMs: ms(r.Max), AliveAtMs: ms(r.AliveAt), DeadAtMs: ms(r.DeadAt), EstimateMs: ms(r.Estimate),
		End: r.End.String(), OutlivedMs: ms(r.Outlived), Conns: r.Conns, ElapsedMs: ms(r.Elapsed), Interrupted: r.Interrupted}
}
