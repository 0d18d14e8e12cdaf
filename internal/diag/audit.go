package diag

import (
	"errors"
	"fmt"
	"time"

	"github.com/rstpool/rstpool"
)

// AuditConfig is a client's connection settings and the path it talks over.
type AuditConfig struct {
	// Hops is the path from the client towards the server. A hop that is not
	// a middlebox terminates TCP: the hops after it are reached over its own
	// connections, so it is audited as the client of the rest of the path.
	Hops rstpool.Chain

	// ClientIdle is how long the client keeps an idle connection; zero
	// means forever.
	ClientIdle time.Duration

	// KeepAliveIdle, KeepAliveInterval and KeepAliveCount are the client's
	// TCP keepalive; zero or negative KeepAliveIdle means keepalive is off.
	KeepAliveIdle     time.Duration
	KeepAliveInterval time.Duration
	KeepAliveCount    int

	// UserTimeout is TCP_USER_TIMEOUT; zero means unset.
	UserTimeout time.Duration

	// Lifetime is the client's maximum connection age; zero means none.
	Lifetime time.Duration
}

// Settings are the client settings an audit suggests for a path.
type Settings struct {
	ClientIdle        time.Duration `json:"client_idle"` // zero: no hop reaps, any value works
	KeepAliveIdle     time.Duration `json:"keepalive_idle"`
	KeepAliveInterval time.Duration `json:"keepalive_interval"`
	KeepAliveCount    int           `json:"keepalive_count"`
	UserTimeout       time.Duration `json:"user_timeout"`
	Lifetime          time.Duration `json:"lifetime"` // zero: no hop caps age
}

func (s Settings) String() string {
	out := fmt.Sprintf("--idle %s --keepalive-idle %s --keepalive-interval %s --keepalive-count %d --user-timeout %s",
		s.ClientIdle, s.KeepAliveIdle, s.KeepAliveInterval, s.KeepAliveCount, s.UserTimeout)
	if s.Lifetime > 0 {
		out += fmt.Sprintf(" --lifetime %s", s.Lifetime)
	}
	return out
}

// A segment is one TCP connection of the path: who opens it and the hops it
// crosses, ending at the hop that terminates it.
type segment struct {
	client string
	idle   time.Duration
	hops   rstpool.Chain
}

func segments(cfg AuditConfig) []segment {
	segs := []segment{{client: "client", idle: cfg.ClientIdle}}
	for i, h := range cfg.Hops {
		cur := &segs[len(segs)-1]
		cur.hops = append(cur.hops, h)
		if !h.Middlebox && i < len(cfg.Hops)-1 {
			segs = append(segs, segment{client: h.Name, idle: h.IdleTimeout})
		}
	}
	return segs
}

// Audit judges a client's settings against its path: hops the client (or a
// proxy on the path) outlives, keepalive against the middleboxes, the user
// timeout against keepalive, the lifetime against hop caps. The last
// finding carries the suggested settings.
func Audit(cfg AuditConfig) []Finding {
	segs := segments(cfg)
	var out []Finding
	out = append(out, clientIdleFindings(cfg, segs[0])...)
	for _, s := range segs[1:] {
		out = append(out, proxyIdleFindings(s)...)
	}
	out = append(out, keepAliveFinding(cfg, segs[0].hops))
	out = append(out, userTimeoutFinding(cfg))
	out = append(out, lifetimeFinding(cfg, segs[0].hops))
	s := Suggest(cfg)
	out = append(out, Finding{Severity: OK, Check: "suggested", Message: s.String()})
	return out
}

// outlived returns the hops of c that a client with this idle timeout
// outlives, smallest first, as rstpool.Chain.Check reports them.
func outlived(c rstpool.Chain, idle time.Duration) []*rstpool.OutlivesError {
	var out []*rstpool.OutlivesError
	err := c.Check(idle)
	joined, ok := err.(interface{ Unwrap() []error })
	if !ok {
		return nil
	}
	for _, e := range joined.Unwrap() {
		var oe *rstpool.OutlivesError
		if errors.As(e, &oe) {
			out = append(out, oe)
		}
	}
	return out
}

// keptFresh reports whether the client's keepalive probes reach a
// middlebox hop often enough that it never sees the flow idle.
func keptFresh(cfg AuditConfig, h rstpool.Hop) bool {
	return h.Middlebox && cfg.KeepAliveIdle > 0 &&
		cfg.KeepAliveIdle+cfg.KeepAliveInterval < h.IdleTimeout
}

func clientIdleFindings(cfg AuditConfig, s segment) []Finding {
	var out []Finding
	for _, oe := range outlived(s.hops, s.idle) {
		if keptFresh(cfg, oe.Hop) {
			out = append(out, Finding{Severity: OK, Check: "client-idle", Message: fmt.Sprintf(
				"client idle %s outlives middlebox %s %s, but keepalive every %s keeps its flow fresh",
				formatIdle(s.idle), oe.Hop.Name, oe.Hop.IdleTimeout, cfg.KeepAliveIdle)})
			continue
		}
		out = append(out, Finding{Severity: Crit, Check: "client-idle", Message: oe.Error(),
			Advice: fmt.Sprintf("set the client idle timeout below %s (suggested %s)",
				oe.Hop.IdleTimeout, s.hops.ClientIdleTimeout())})
	}
	if len(out) == 0 {
		out = append(out, Finding{Severity: OK, Check: "client-idle", Message: fmt.Sprintf(
			"client idle %s is below every hop on its connection (%s)", formatIdle(s.idle), s.hops)})
	}
	return out
}

func proxyIdleFindings(s segment) []Finding {
	var out []Finding
	for _, oe := range outlived(s.hops, s.idle) {
		window := fmt.Sprintf("after %s idle", oe.Hop.IdleTimeout)
		if s.idle > 0 {
			window = fmt.Sprintf("between %s and %s idle", oe.Hop.IdleTimeout, s.idle)
		}
		out = append(out, Finding{Severity: Crit, Check: "proxy-idle", Message: fmt.Sprintf(
			"%s keeps idle backend connections %s ≥ %s %s: it reuses connections %s has closed, resets (502s) %s",
			s.client, formatIdle(s.idle), oe.Hop.Name, oe.Hop.IdleTimeout, oe.Hop.Name, window),
			Advice: fmt.Sprintf("raise %s's keep-alive timeout above %s's %s: a backend must outlive the proxy in front of it",
				oe.Hop.Name, s.client, formatIdle(s.idle))})
	}
	if len(out) == 0 {
		out = append(out, Finding{Severity: OK, Check: "proxy-idle", Message: fmt.Sprintf(
			"%s (idle %s) gives up backend connections before %s does", s.client, formatIdle(s.idle), s.hops)})
	}
	return out
}

func smallestMiddlebox(c rstpool.Chain) (rstpool.Hop, bool) {
	var best rstpool.Hop
	found := false
	for _, h := range c {
		if h.Middlebox && h.IdleTimeout > 0 && (!found || h.IdleTimeout < best.IdleTimeout) {
			best, found = h, true
		}
	}
	return best, found
}

func keepAliveFinding(cfg AuditConfig, hops rstpool.Chain) Finding {
	f := Finding{Severity: OK, Check: "keepalive"}
	m, ok := smallestMiddlebox(hops)
	switch {
	case !ok && cfg.KeepAliveIdle <= 0:
		f.Severity, f.Message = Info, "keepalive off: no middlebox on the client's connection, but dead peers go unnoticed"
		f.Advice = "enable keepalive to find dead peers on idle connections"
	case !ok:
		f.Message = fmt.Sprintf("keepalive idle %s; no middlebox on the client's connection", cfg.KeepAliveIdle)
	case cfg.KeepAliveIdle <= 0:
		f.Severity, f.Message = Warn, fmt.Sprintf("keepalive off behind middlebox %s %s: a quiet connection (a long request) loses its flow state", m.Name, m.IdleTimeout)
		f.Advice = fmt.Sprintf("enable keepalive with idle %s", hops.KeepAliveIdle())
	case cfg.KeepAliveIdle >= m.IdleTimeout:
		f.Severity, f.Message = Crit, fmt.Sprintf("keepalive idle %s not below middlebox %s %s: its flow state expires before the first probe", cfg.KeepAliveIdle, m.Name, m.IdleTimeout)
		f.Advice = fmt.Sprintf("set keepalive idle to %s", hops.KeepAliveIdle())
	case cfg.KeepAliveIdle+cfg.KeepAliveInterval >= m.IdleTimeout:
		f.Severity, f.Message = Warn, fmt.Sprintf("keepalive idle %s + interval %s reaches middlebox %s %s: one lost probe and the flow expires", cfg.KeepAliveIdle, cfg.KeepAliveInterval, m.Name, m.IdleTimeout)
		f.Advice = fmt.Sprintf("set keepalive idle to %s", hops.KeepAliveIdle())
	default:
		f.Message = fmt.Sprintf("keepalive idle %s is below middlebox %s %s", cfg.KeepAliveIdle, m.Name, m.IdleTimeout)
	}
	return f
}

func userTimeoutFinding(cfg AuditConfig) Finding {
	f := Finding{Severity: OK, Check: "user-timeout"}
	probe := cfg.KeepAliveIdle + cfg.KeepAliveInterval
	switch {
	case cfg.UserTimeout <= 0:
		f.Severity, f.Message = Info, "no TCP_USER_TIMEOUT: unacknowledged writes into a black hole retry for about 15 minutes"
		f.Advice = fmt.Sprintf("set a user timeout (suggested %s)", Suggest(cfg).UserTimeout)
	case cfg.KeepAliveIdle <= 0:
		f.Message = fmt.Sprintf("user timeout %s bounds unacknowledged writes (keepalive off)", cfg.UserTimeout)
	case cfg.UserTimeout <= probe:
		f.Severity, f.Message = Crit, fmt.Sprintf("user timeout %s ≤ keepalive idle %s + interval %s: one lost probe kills an idle connection", cfg.UserTimeout, cfg.KeepAliveIdle, cfg.KeepAliveInterval)
		f.Advice = fmt.Sprintf("set the user timeout to idle + interval × count = %s", cfg.KeepAliveIdle+cfg.KeepAliveInterval*time.Duration(max(cfg.KeepAliveCount, 2)))
	default:
		f.Message = fmt.Sprintf("user timeout %s exceeds keepalive idle + interval (%s)", cfg.UserTimeout, probe)
	}
	return f
}

func lifetimeFinding(cfg AuditConfig, hops rstpool.Chain) Finding {
	limit := hops.MaxLifetime()
	switch {
	case limit == 0:
		return Finding{Severity: OK, Check: "lifetime", Message: "no hop caps connection age"}
	case cfg.Lifetime == 0 || cfg.Lifetime >= limit:
		return Finding{Severity: Crit, Check: "lifetime", Message: fmt.Sprintf(
			"client lifetime %s ≥ a hop's hard cap %s: connections older than %s are closed under the client",
			formatIdle(cfg.Lifetime), limit, limit),
			Advice: fmt.Sprintf("set the client lifetime to %s", Suggest(cfg).Lifetime)}
	}
	return Finding{Severity: OK, Check: "lifetime", Message: fmt.Sprintf(
		"client lifetime %s is below the hard cap %s", cfg.Lifetime, limit)}
}

// Suggest returns settings that fit the client's connection: the chain's
// client idle timeout, keepalive at the chain's keepalive idle (Go's 15s
// when there is no middlebox) with three probes a third of it apart (at most
// 15s), a user timeout that lets every probe fail first, and a lifetime
// 10% under the smallest hard cap.
func Suggest(cfg AuditConfig) Settings {
	hops := segments(cfg)[0].hops
	s := Settings{ClientIdle: hops.ClientIdleTimeout(), KeepAliveIdle: hops.KeepAliveIdle(), KeepAliveCount: 3}
	if s.KeepAliveIdle == 0 {
		s.KeepAliveIdle = 15 * time.Second
	}
	s.KeepAliveInterval = min(max(s.KeepAliveIdle/3, time.Second), 15*time.Second)
	s.UserTimeout = s.KeepAliveIdle + s.KeepAliveInterval*time.Duration(s.KeepAliveCount)
	if c := hops.MaxLifetime(); c > 0 {
		s.Lifetime = c - c/10
	}
	return s
}

func formatIdle(d time.Duration) string {
	if d <= 0 {
		return "none"
	}
	return d.String()
}
