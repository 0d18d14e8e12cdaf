package diag

import (
	"fmt"
	"time"

	"github.com/rstpool/rstpool"
	"github.com/rstpool/rstpool/internal/pathrule"
)

// AuditConfig is a client's connection settings and the path it talks over.
// Zero turns a setting off, as on the command line; negative values are
// invalid.
type AuditConfig struct {
	// Hops is the path from the client towards the server.
	Hops rstpool.Chain

	// ClientIdle is how long the client keeps an idle connection; zero
	// means forever.
	ClientIdle time.Duration

	// KeepAliveIdle, KeepAliveInterval and KeepAliveCount are the client's
	// TCP keepalive; a zero KeepAliveIdle means keepalive is off.
	KeepAliveIdle     time.Duration
	KeepAliveInterval time.Duration
	KeepAliveCount    int

	// UserTimeout is TCP_USER_TIMEOUT; zero means unset.
	UserTimeout time.Duration

	// Lifetime is the client's maximum connection age; zero means none.
	Lifetime time.Duration
}

// Dialer returns the rstpool Dialer that has these settings.
func (cfg AuditConfig) Dialer() *rstpool.Dialer {
	off := func(d time.Duration) time.Duration {
		if d == 0 {
			return -1
		}
		return d
	}
	return &rstpool.Dialer{Chain: cfg.Hops, IdleTimeout: off(cfg.ClientIdle), KeepAliveIdle: off(cfg.KeepAliveIdle),
		KeepAliveInterval: cfg.KeepAliveInterval, KeepAliveCount: cfg.KeepAliveCount,
		UserTimeout: off(cfg.UserTimeout), MaxLifetime: off(cfg.Lifetime)}
}

// Settings are a client's connection settings with defaults resolved.
type Settings struct {
	ClientIdle        time.Duration // zero: none
	KeepAliveIdle     time.Duration // zero: keepalive off
	KeepAliveInterval time.Duration
	KeepAliveCount    int
	UserTimeout       time.Duration // zero: unset
	Lifetime          time.Duration // zero: none
}

func (s Settings) String() string {
	out := fmt.Sprintf("--idle %s --keepalive-idle %s --keepalive-interval %s --keepalive-count %d --user-timeout %s",
		s.ClientIdle, s.KeepAliveIdle, s.KeepAliveInterval, s.KeepAliveCount, s.UserTimeout)
	if s.Lifetime > 0 {
		out += fmt.Sprintf(" --lifetime %s", s.Lifetime)
	}
	return out
}

func (s Settings) client() pathrule.Client {
	return pathrule.Client{Idle: s.ClientIdle, KeepAlive: s.KeepAliveIdle, Interval: s.KeepAliveInterval,
		Count: s.KeepAliveCount, UserTimeout: s.UserTimeout, Lifetime: s.Lifetime}
}

// resolved returns what the Dialer's connections get.
func resolved(d *rstpool.Dialer) (Settings, error) {
	idle, life, err := d.Limits()
	if err != nil {
		return Settings{}, err
	}
	ka, ut, err := d.KeepAlive()
	if err != nil {
		return Settings{}, err
	}
	s := Settings{ClientIdle: idle, UserTimeout: ut, Lifetime: life}
	if ka.Enable {
		s.KeepAliveIdle, s.KeepAliveInterval, s.KeepAliveCount = ka.Idle, ka.Interval, ka.Count
	}
	return s, nil
}

// Audit judges a client's settings against its path with the rules the
// rstpool Dialer applies (internal/pathrule): the hops on the client's own
// connection it outlives, proxies that outlive the hops behind them,
// keepalive against the pass-through hops, the user timeout, the lifetime
// against hard caps. The last finding carries the suggested settings, which
// are exactly what an rstpool Dialer with this chain and no settings of its
// own uses.
//
// The error is the *rstpool.ConfigError the Dialer returns for a setting it
// refuses on its own, before any path is considered (a keepalive idle that
// is not whole seconds, a count out of range, a user timeout at or below
// keepalive idle + interval), or for a malformed hop.
func Audit(cfg AuditConfig) ([]Finding, Settings, error) {
	d := cfg.Dialer()
	d.Chain = nil
	if _, err := resolved(d); err != nil {
		return nil, Settings{}, err
	}
	sug, err := resolved(&rstpool.Dialer{Chain: cfg.Hops})
	if err != nil {
		return nil, Settings{}, err
	}
	c := Settings{ClientIdle: cfg.ClientIdle, KeepAliveIdle: cfg.KeepAliveIdle, KeepAliveInterval: cfg.KeepAliveInterval,
		KeepAliveCount: cfg.KeepAliveCount, UserTimeout: cfg.UserTimeout, Lifetime: cfg.Lifetime}
	var out []Finding
	for _, f := range pathrule.Findings(ruleHops(cfg.Hops), c.client(), sug.client()) {
		out = append(out, Finding{Severity: Severity(f.Severity), Check: f.Check, Message: f.Message, Advice: f.Advice})
	}
	out = append(out, Finding{Severity: OK, Check: "suggested", Message: sug.String()})
	return out, sug, nil
}

func ruleHops(c rstpool.Chain) []pathrule.Hop {
	out := make([]pathrule.Hop, len(c))
	for i, h := range c {
		out[i] = pathrule.HopOf(h.Name, h.IdleTimeout, h.UpstreamIdleTimeout, h.MaxLifetime, h.Terminates, h.Middlebox)
	}
	return out
}

func formatIdle(d time.Duration) string { return pathrule.FormatIdle(d) }
