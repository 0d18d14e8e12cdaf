package diag

import (
	"bufio"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/rstpool/rstpool"
)

// ParseHop parses one hop as the audit command takes it:
//
//	aws-alb                      a preset (rstpool.Presets)
//	nginx=1s                     a preset with its idle timeout changed (rstpool.Hop.WithIdle)
//	api=30s                      a hop you describe, marked neither way: judged strictly
//	lb=60s,terminates            an L7 proxy that ends the client's TCP connection
//	lb=60s,terminates,upstream=90s   … and keeps idle upstream connections 90s (0: forever)
//	nat=350s,passthrough         a NAT, L4 balancer or conntrack ("middlebox" is the same)
//	lb=60s,lifetime=1h           a hop that also closes connections older than 1h
//
// An idle timeout of 0 means the hop never reaps idle connections.
func ParseHop(s string) (rstpool.Hop, error) {
	parts := strings.Split(strings.TrimSpace(s), ",")
	name, idle, hasIdle := strings.Cut(parts[0], "=")
	name = strings.TrimSpace(name)
	if name == "" {
		return rstpool.Hop{}, fmt.Errorf("hop %q: no name", s)
	}
	h, preset := rstpool.LookupHop(name)
	if !preset && !hasIdle {
		return rstpool.Hop{}, fmt.Errorf("hop %q: unknown preset; give its idle timeout as %s=DURATION", s, name)
	}
	h.Name = name
	if hasIdle {
		d, err := parseDuration(idle)
		if err != nil {
			return rstpool.Hop{}, fmt.Errorf("hop %q: %w", s, err)
		}
		h = h.WithIdle(d)
	}
	for _, opt := range parts[1:] {
		if err := applyHopOption(&h, strings.TrimSpace(opt)); err != nil {
			return rstpool.Hop{}, fmt.Errorf("hop %q: %w", s, err)
		}
	}
	if err := checkMarks(h); err != nil {
		return rstpool.Hop{}, fmt.Errorf("hop %q: %w", s, err)
	}
	return h, nil
}

func applyHopOption(h *rstpool.Hop, opt string) error {
	key, val, _ := strings.Cut(opt, "=")
	switch key {
	case "terminates":
		h.Terminates = true
	case "passthrough", "middlebox":
		h.Middlebox = true
	case "upstream":
		d, err := parseDuration(val)
		if err != nil {
			return fmt.Errorf("upstream: %w", err)
		}
		h.UpstreamIdleTimeout = d
		if d == 0 {
			h.UpstreamIdleTimeout = -1 // keeps them forever
		}
	case "lifetime":
		d, err := parseDuration(val)
		if err != nil {
			return fmt.Errorf("lifetime: %w", err)
		}
		h.MaxLifetime = d
	default:
		return fmt.Errorf("unknown option %q (want terminates, passthrough, upstream=DURATION or lifetime=DURATION)", opt)
	}
	return nil
}

func checkMarks(h rstpool.Hop) error {
	switch {
	case h.Terminates && h.Middlebox:
		return fmt.Errorf("both terminates and passthrough: a hop either ends the client's connection or forwards it")
	case h.UpstreamIdleTimeout != 0 && !h.Terminates:
		return fmt.Errorf("upstream= needs terminates: only a hop that ends the client's connection has upstream connections of its own")
	}
	return nil
}

// parseDuration accepts a Go duration or "0"; negative durations are errors.
func parseDuration(s string) (time.Duration, error) {
	d, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		return 0, err
	}
	if d < 0 {
		return 0, fmt.Errorf("negative duration %s", d)
	}
	return d, nil
}

// ParseHops reads a hop list: one hop a line in ParseHop's syntax, from the
// client towards the server; blank lines and text after '#' are ignored.
func ParseHops(r io.Reader) (rstpool.Chain, error) {
	var c rstpool.Chain
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line, _, _ := strings.Cut(sc.Text(), "#")
		if strings.TrimSpace(line) == "" {
			continue
		}
		h, err := ParseHop(line)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		c = append(c, h)
	}
	return c, sc.Err()
}

// FormatPath formats the chain as the audit reads it: each hop with its idle
// timeout and how it treats the client's connection.
func FormatPath(c rstpool.Chain) string {
	parts := []string{"client"}
	for _, h := range c {
		p := h.Name + "=" + formatIdle(h.IdleTimeout)
		switch {
		case h.Terminates:
			up := h.UpstreamIdleTimeout
			if up == 0 {
				up = h.IdleTimeout
			}
			p += fmt.Sprintf(" (terminates; upstream %s)", formatIdle(up))
		case h.Middlebox:
			p += " (passthrough)"
		}
		parts = append(parts, p)
	}
	return strings.Join(parts, " → ")
}
