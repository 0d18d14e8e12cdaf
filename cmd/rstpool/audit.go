package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/rstpool/rstpool"
	"github.com/rstpool/rstpool/internal/diag"
)

func init() {
	register("audit", command{Summary: "check a client's idle, keepalive, user timeout and lifetime against the hops of its path", Run: runAudit})
}

const auditAbout = `Checks a client's connection settings against the hops between it and the
server, listed from the client towards the server, with the rules rstpool's
Dialer applies:
  --hop aws-alb                     a preset: %s
  --hop nginx=1s                    a preset with its idle timeout changed
  --hop api=30s                     a hop marked neither way: the server, or a hop
                                    you are unsure of (judged strictly)
  --hop lb=60s,terminates           an L7 proxy or balancer that ends the client's
                                    TCP connection; the hops behind it are judged
                                    against its own upstream connections
  --hop lb=60s,terminates,upstream=90s   … keeping idle upstream connections 90s
  --hop nat=350s,passthrough        a NAT, L4 balancer or conntrack (keepalive
                                    keeps it fresh)
  --hop lb=60s,lifetime=1h          a hop that also closes connections older than 1h
or one hop a line in --file (# starts a comment). The client's own connection
ends at the first hop that terminates it: its idle timeout must be below every
hop up to there. It reports the hops the client outlives and when resets
happen, proxies that outlive the hops behind them, keepalive against
pass-through hops, the user timeout, the lifetime against hard caps, and the
settings an rstpool Dialer with this chain derives (the suggestion). The
defaults of the client flags are Go's net/http and net.Dialer. A setting the
Dialer refuses on its own is a usage error with the Dialer's reason.

--json prints one object: "path" (string), "hops" (each "name", "kind":
terminates, passthrough or unmarked, "idle_timeout_ms", "upstream_idle_timeout_ms",
"max_lifetime_ms"), "client" (the settings audited) and "suggested" (each
"idle_timeout_ms", "keepalive_idle_ms", "keepalive_interval_ms",
"keepalive_count", "user_timeout_ms", "max_lifetime_ms"; 0 means none or off),
and "findings" (each "severity": ok, info, warn or crit, "check", "message",
"advice" when there is one). Durations are whole milliseconds.

Exit status 1 when a finding is warn or crit, 2 for a usage error.`

// hopList collects repeated --hop flags.
type hopList struct{ chain *rstpool.Chain }

func (h hopList) String() string {
	if h.chain == nil {
		return ""
	}
	return h.chain.String()
}

func (h hopList) Set(s string) error {
	hop, err := diag.ParseHop(s)
	if err != nil {
		return err
	}
	*h.chain = append(*h.chain, hop)
	return nil
}

func presetNames() string {
	var names []string
	for _, h := range rstpool.Presets() {
		names = append(names, h.Name)
	}
	return strings.Join(names, ", ")
}

// auditFlags names the flag of each Dialer field the audit sets.
var auditFlags = map[string]string{
	"Dialer.IdleTimeout": "--idle", "Dialer.KeepAliveIdle": "--keepalive-idle",
	"Dialer.KeepAliveInterval": "--keepalive-interval", "Dialer.KeepAliveCount": "--keepalive-count",
	"Dialer.UserTimeout": "--user-timeout", "Dialer.MaxLifetime": "--lifetime",
}

func runAudit(args []string, stdout, stderr io.Writer) int {
	var cfg diag.AuditConfig
	fs := newFlags("audit", "--hop HOP [--hop HOP ...] | --file FILE [flags]", fmt.Sprintf(auditAbout, presetNames()), stderr)
	fs.Var(hopList{&cfg.Hops}, "hop", "a `hop` of the path, client side first (repeatable)")
	file := fs.String("file", "", "read hops from `FILE`, one a line, after any --hop")
	fs.DurationVar(&cfg.ClientIdle, "idle", 90*time.Second, "client idle timeout, 0 = keep forever (default: Go's http.Transport)")
	fs.DurationVar(&cfg.KeepAliveIdle, "keepalive-idle", 15*time.Second, "TCP keepalive idle time, 0 = keepalive off (default: Go's net.Dialer)")
	fs.DurationVar(&cfg.KeepAliveInterval, "keepalive-interval", 15*time.Second, "TCP keepalive probe interval")
	fs.IntVar(&cfg.KeepAliveCount, "keepalive-count", 9, "TCP keepalive probes before the connection is dropped")
	fs.DurationVar(&cfg.UserTimeout, "user-timeout", 0, "TCP_USER_TIMEOUT, 0 = unset")
	fs.DurationVar(&cfg.Lifetime, "lifetime", 0, "client maximum connection age, 0 = none")
	asJSON := fs.Bool("json", false, "print the audit as one JSON object (see above)")
	if st := parseFlags(fs, args); st >= 0 {
		return st
	}
	if st := checkAuditArgs(fs.Args(), *file, &cfg, stderr); st >= 0 {
		return st
	}
	findings, sug, err := diag.Audit(cfg)
	if err != nil {
		return auditConfigError(stderr, err)
	}
	if *asJSON {
		if st := writeJSON(stdout, newAuditJSON(cfg, findings, sug)); st != exitOK {
			return st
		}
		return findingsStatus(findings)
	}
	fmt.Fprintf(stdout, "path:   %s\nclient: %s\n", diag.FormatPath(cfg.Hops), describeClient(cfg))
	fmt.Fprint(stdout, diag.FormatFindings(findings))
	return findingsStatus(findings)
}

// checkAuditArgs validates what the flag package cannot: arguments, the hop
// file, negative durations, a zero count. It returns -1 to go on.
func checkAuditArgs(args []string, file string, cfg *diag.AuditConfig, stderr io.Writer) int {
	if len(args) > 0 {
		return usageError(stderr, "audit", "unexpected argument %q (hops are given with --hop)", args[0])
	}
	if file != "" {
		if err := readHopFile(file, &cfg.Hops); err != nil {
			return usageError(stderr, "audit", "--file: %v", err)
		}
	}
	if len(cfg.Hops) == 0 {
		return usageError(stderr, "audit", "give at least one --hop or a --file")
	}
	for _, d := range []struct {
		flag, zero string
		v          time.Duration
	}{{"--idle", "keep idle connections forever", cfg.ClientIdle}, {"--keepalive-idle", "keepalive off", cfg.KeepAliveIdle},
		{"--keepalive-interval", "", cfg.KeepAliveInterval}, {"--user-timeout", "unset", cfg.UserTimeout}, {"--lifetime", "none", cfg.Lifetime}} {
		if d.v < 0 {
			return usageError(stderr, "audit", "%s %s: must not be negative (0: %s)", d.flag, d.v, d.zero)
		}
	}
	if cfg.KeepAliveIdle > 0 && cfg.KeepAliveCount == 0 {
		return usageError(stderr, "audit", "--keepalive-count 0: must be between 1 and 127")
	}
	return -1
}

// auditConfigError reports a setting the Dialer refuses as a usage error
// naming the flag, with the Dialer's reason.
func auditConfigError(stderr io.Writer, err error) int {
	var ce *rstpool.ConfigError
	if !errors.As(err, &ce) {
		return fail(stderr, "audit", err)
	}
	flag, ok := auditFlags[ce.Field]
	if !ok {
		flag = "--hop" // Dialer.Chain[i]: a hop ParseHop let through
	}
	return usageError(stderr, "audit", "%s: %s", flag, ce.Msg)
}

func describeClient(cfg diag.AuditConfig) string {
	ka := "keepalive off"
	if cfg.KeepAliveIdle > 0 {
		ka = fmt.Sprintf("keepalive idle %s interval %s count %d", cfg.KeepAliveIdle, cfg.KeepAliveInterval, cfg.KeepAliveCount)
	}
	return fmt.Sprintf("idle %s, %s, user timeout %s, lifetime %s",
		none(cfg.ClientIdle), ka, none(cfg.UserTimeout), none(cfg.Lifetime))
}

func none(d time.Duration) string {
	if d <= 0 {
		return "none"
	}
	return d.String()
}

func readHopFile(name string, into *rstpool.Chain) error {
	f, err := os.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	c, err := diag.ParseHops(f)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	*into = append(*into, c...)
	return nil
}

// auditJSON is the audit's --json output.
type auditJSON struct {
	Path      string         `json:"path"`
	Hops      []hopJSON      `json:"hops"`
	Client    settingsJSON   `json:"client"`
	Suggested settingsJSON   `json:"suggested"`
	Findings  []diag.Finding `json:"findings"`
}

type hopJSON struct {
	Name           string `json:"name"`
	Kind           string `json:"kind"` // terminates, passthrough or unmarked
	IdleTimeoutMs  int64  `json:"idle_timeout_ms"`
	UpstreamIdleMs int64  `json:"upstream_idle_timeout_ms"` // terminates only; 0: none
	MaxLifetimeMs  int64  `json:"max_lifetime_ms"`
}

type settingsJSON struct {
	IdleTimeoutMs       int64 `json:"idle_timeout_ms"`
	KeepAliveIdleMs     int64 `json:"keepalive_idle_ms"`
	KeepAliveIntervalMs int64 `json:"keepalive_interval_ms"`
	KeepAliveCount      int   `json:"keepalive_count"`
	UserTimeoutMs       int64 `json:"user_timeout_ms"`
	MaxLifetimeMs       int64 `json:"max_lifetime_ms"`
}

func newAuditJSON(cfg diag.AuditConfig, findings []diag.Finding, sug diag.Settings) auditJSON {
	out := auditJSON{Path: cfg.Hops.String(), Findings: findings, Suggested: newSettingsJSON(sug),
		Client: newSettingsJSON(diag.Settings{ClientIdle: cfg.ClientIdle, KeepAliveIdle: cfg.KeepAliveIdle,
			KeepAliveInterval: cfg.KeepAliveInterval, KeepAliveCount: cfg.KeepAliveCount,
			UserTimeout: cfg.UserTimeout, Lifetime: cfg.Lifetime})}
	for _, h := range cfg.Hops {
		j := hopJSON{Name: h.Name, Kind: "unmarked", IdleTimeoutMs: ms(h.IdleTimeout), MaxLifetimeMs: ms(h.MaxLifetime)}
		switch {
		case h.Terminates:
			j.Kind, j.UpstreamIdleMs = "terminates", ms(h.IdleTimeout)
			if h.UpstreamIdleTimeout != 0 {
				j.UpstreamIdleMs = ms(h.UpstreamIdleTimeout)
			}
		case h.Middlebox:
			j.Kind = "passthrough"
		}
		out.Hops = append(out.Hops, j)
	}
	return out
}

func newSettingsJSON(s diag.Settings) settingsJSON {
	j := settingsJSON{IdleTimeoutMs: ms(s.ClientIdle), KeepAliveIdleMs: ms(s.KeepAliveIdle), UserTimeoutMs: ms(s.UserTimeout),
		MaxLifetimeMs: ms(s.Lifetime)}
	if s.KeepAliveIdle > 0 {
		j.KeepAliveIntervalMs, j.KeepAliveCount = ms(s.KeepAliveInterval), s.KeepAliveCount
	}
	return j
}
