package main

import (
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

const auditAbout = `Checks a client's connection settings against the idle timeouts of the hops
between it and the server, listed from the client towards the server:
  --hop aws-alb            a preset: %s
  --hop aws-alb=120s       a preset with its idle timeout changed
  --hop api=30s            a server or proxy (it terminates TCP)
  --hop nat=350s,middlebox a NAT, L4 balancer or firewall (kept fresh by keepalive)
  --hop lb=60s,lifetime=1h a hop that also closes connections older than 1h
or one hop a line in --file (# starts a comment). It reports the hops the
client outlives and when resets happen, proxies that outlive the backend behind
them, keepalive against middleboxes, the user timeout against keepalive, the
lifetime against hard caps, and suggested settings.
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
	asJSON := fs.Bool("json", false, "print findings and suggested settings as JSON")
	if st := parseFlags(fs, args); st >= 0 {
		return st
	}
	if *file != "" {
		if err := readHopFile(*file, &cfg.Hops); err != nil {
			fmt.Fprintf(stderr, "rstpool audit: %v\n", err)
			return exitUsage
		}
	}
	if len(cfg.Hops) == 0 || fs.NArg() > 0 || cfg.ClientIdle < 0 || cfg.KeepAliveInterval < 0 || cfg.UserTimeout < 0 || cfg.Lifetime < 0 {
		fmt.Fprintln(stderr, "rstpool audit: give at least one --hop or a --file, and no negative durations")
		return exitUsage
	}
	findings := diag.Audit(cfg)
	if *asJSON {
		writeJSON(stdout, struct {
			Path      string         `json:"path"`
			Findings  []diag.Finding `json:"findings"`
			Suggested diag.Settings  `json:"suggested"`
		}{cfg.Hops.String(), findings, diag.Suggest(cfg)})
		return findingsStatus(findings)
	}
	fmt.Fprintf(stdout, "path: client → %s\n", cfg.Hops)
	fmt.Fprint(stdout, diag.FormatFindings(findings))
	return findingsStatus(findings)
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
