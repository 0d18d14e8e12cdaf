package diag

import (
	"strings"
	"testing"
	"time"

	"github.com/rstpool/rstpool"
	"github.com/stretchr/testify/require"
)

func mustHops(t *testing.T, specs ...string) rstpool.Chain {
	t.Helper()
	var c rstpool.Chain
	for _, s := range specs {
		h, err := ParseHop(s)
		require.NoError(t, err)
		c = append(c, h)
	}
	return c
}

func goDefaults(hops rstpool.Chain) AuditConfig {
	return AuditConfig{Hops: hops, ClientIdle: 90 * time.Second, KeepAliveIdle: 15 * time.Second,
		KeepAliveInterval: 15 * time.Second, KeepAliveCount: 9}
}

func audit(t *testing.T, cfg AuditConfig) []Finding {
	t.Helper()
	fs, _, err := Audit(cfg)
	require.NoError(t, err)
	return fs
}

func TestParseHop(t *testing.T) {
	h, err := ParseHop("aws-alb")
	require.NoError(t, err)
	require.Equal(t, rstpool.MustHop("aws-alb"), h)

	h, err = ParseHop("nginx=1s")
	require.NoError(t, err)
	require.Equal(t, rstpool.MustHop("nginx").WithIdle(time.Second), h, "the command's nginx=1s is the library's WithIdle")

	h, err = ParseHop("aws-nlb=100s")
	require.NoError(t, err)
	require.Equal(t, rstpool.Hop{Name: "aws-nlb", IdleTimeout: 100 * time.Second, Middlebox: true}, h, "an override keeps the preset's mark")

	h, err = ParseHop("fw=30m,passthrough,lifetime=1h")
	require.NoError(t, err)
	require.Equal(t, rstpool.Hop{Name: "fw", IdleTimeout: 30 * time.Minute, Middlebox: true, MaxLifetime: time.Hour}, h)
	h2, err := ParseHop("fw=30m,middlebox,lifetime=1h")
	require.NoError(t, err)
	require.Equal(t, h, h2, "middlebox is passthrough")

	h, err = ParseHop("lb=60s,terminates,upstream=90s")
	require.NoError(t, err)
	require.Equal(t, rstpool.Hop{Name: "lb", IdleTimeout: time.Minute, Terminates: true, UpstreamIdleTimeout: 90 * time.Second}, h)
	h, err = ParseHop("lb=60s,terminates,upstream=0")
	require.NoError(t, err)
	require.Negative(t, h.UpstreamIdleTimeout, "upstream=0: keeps them forever")

	for bad, msg := range map[string]string{
		"": "no name", "nosuchpreset": "unknown preset", "x=abc": "invalid duration", "x=-1s": "negative",
		"x=1s,bogus": "unknown option", "=5s": "no name", "aws-nat,terminates": "both terminates and passthrough",
		"x=1s,upstream=5s": "upstream= needs terminates",
	} {
		_, err := ParseHop(bad)
		require.ErrorContains(t, err, msg, bad)
	}
}

func TestParseHops(t *testing.T) {
	c, err := ParseHops(strings.NewReader("# path to the API\naws-alb\n\n  nginx   # reverse proxy\napi=30s\n"))
	require.NoError(t, err)
	require.Equal(t, "aws-alb=1m0s → nginx=1m15s → api=30s", c.String())

	_, err = ParseHops(strings.NewReader("aws-alb\nwhat\n"))
	require.ErrorContains(t, err, "line 2")
}

// The README's audit example, finding by finding, and what the library
// says of the same path.
func TestAuditREADMEExample(t *testing.T) {
	hops := mustHops(t, "aws-nat", "aws-alb", "node")
	fs, sug, err := Audit(goDefaults(hops))
	require.NoError(t, err)
	type row struct {
		sev          Severity
		check, words string
	}
	want := []row{
		{Crit, "client-idle", "client 1m30s ≥ aws-alb 1m0s: reuse between 1m0s and 1m30s will reset"},
		{Crit, "proxy-idle", "aws-alb keeps idle upstream connections 1m0s ≥ node 5s: it reuses connections node has closed, and requests fail (502s) between 5s and 1m0s idle"},
		{OK, "keepalive", "keepalive idle 15s + interval 15s is below pass-through aws-nat 5m50s"},
		{Info, "user-timeout", "no TCP_USER_TIMEOUT"},
		{OK, "lifetime", "no hop on the client's connection caps connection age"},
		{OK, "suggested", "--idle 45s --keepalive-idle 30s --keepalive-interval 10s --keepalive-count 3 --user-timeout 1m0s"},
	}
	require.Len(t, fs, len(want), FormatFindings(fs))
	for i, w := range want {
		require.Equal(t, w.sev, fs[i].Severity, fs[i].String())
		require.Equal(t, w.check, fs[i].Check)
		require.Contains(t, fs[i].Message, w.words)
	}
	require.Equal(t, "set the client idle timeout below 1m0s (suggested 45s)", fs[0].Advice)

	// The library: the same hop, window and numbers.
	require.EqualError(t, hops.Check(90*time.Second), fs[0].Message)
	require.Equal(t, sug.ClientIdle, hops.ClientIdleTimeout())
	require.Equal(t, sug.KeepAliveIdle, hops.KeepAliveIdle())
	d := &rstpool.Dialer{Chain: hops}
	idle, life, err := d.Limits()
	require.NoError(t, err)
	ka, ut, err := d.KeepAlive()
	require.NoError(t, err)
	require.Equal(t, Settings{ClientIdle: idle, KeepAliveIdle: ka.Idle, KeepAliveInterval: ka.Interval,
		KeepAliveCount: ka.Count, UserTimeout: ut, Lifetime: life}, sug)
	_, _, err = (&rstpool.Dialer{Chain: hops, IdleTimeout: sug.ClientIdle}).Limits()
	require.NoError(t, err, "the library accepts the audit's suggestion")
	_, _, err = (&rstpool.Dialer{Chain: hops, IdleTimeout: 90 * time.Second}).Limits()
	require.ErrorContains(t, err, fs[0].Message, "and refuses what the audit calls crit, in its words")
}

// For every preset, alone and in front of a server: the suggestion is what
// the Dialer derives, and it passes its own audit.
func TestAuditPresets(t *testing.T) {
	for _, p := range rstpool.Presets() {
		for _, hops := range []rstpool.Chain{{p}, {p, {Name: "api", IdleTimeout: 2 * time.Hour}}} {
			_, sug, err := Audit(AuditConfig{Hops: hops})
			require.NoError(t, err, hops.String())
			require.Equal(t, hops.ClientIdleTimeout(), sug.ClientIdle, hops.String())
			require.Equal(t, hops.KeepAliveIdle(), sug.KeepAliveIdle, hops.String())
			require.Equal(t, hops.MaxLifetime(), sug.Lifetime, hops.String())
			cfg := AuditConfig{Hops: hops, ClientIdle: sug.ClientIdle, KeepAliveIdle: sug.KeepAliveIdle,
				KeepAliveInterval: sug.KeepAliveInterval, KeepAliveCount: sug.KeepAliveCount, UserTimeout: sug.UserTimeout, Lifetime: sug.Lifetime}
			fs := audit(t, cfg)
			require.LessOrEqual(t, Worst(fs), Info, "%s\n%s", hops, FormatFindings(fs))
			_, _, err = cfg.Dialer().Limits()
			require.NoError(t, err, "the Dialer takes the suggestion: %s", hops)
		}
	}
}

func TestAuditLBLongerThanBackend(t *testing.T) {
	cfg := goDefaults(mustHops(t, "lb=60s,terminates", "node"))
	cfg.ClientIdle = 30 * time.Second
	fs := audit(t, cfg)
	require.Equal(t, OK, byCheck(fs, "client-idle")[0].Severity)
	px := byCheck(fs, "proxy-idle")
	require.Len(t, px, 1)
	require.Equal(t, Crit, px[0].Severity)
	require.Contains(t, px[0].Message, "lb keeps idle upstream connections 1m0s ≥ node 5s")
	require.Contains(t, px[0].Advice, "raise node's idle timeout above lb's 1m0s")

	// The order matters: node in front of the balancer is a different path.
	cfg.Hops = mustHops(t, "node", "lb=60s,terminates")
	fs = audit(t, cfg)
	require.Equal(t, Crit, byCheck(fs, "client-idle")[0].Severity, "client 30s outlives node 5s")
	require.Empty(t, byCheck(fs, "proxy-idle"), "nothing behind the balancer")
	require.Equal(t, Info, byCheck(fs, "path")[0].Severity, "node is not marked")

	// Unmarked, the balancer is judged strictly: node bounds the client.
	cfg.Hops = mustHops(t, "lb=60s", "node")
	require.Equal(t, Crit, byCheck(audit(t, cfg), "client-idle")[0].Severity)
}

func TestAuditPgBouncer(t *testing.T) {
	cfg := goDefaults(mustHops(t, "pgbouncer-tx", "postgres=5m"))
	cfg.ClientIdle = 45 * time.Second
	fs := audit(t, cfg)
	require.Equal(t, OK, byCheck(fs, "client-idle")[0].Severity, "client_idle_timeout is off")
	px := byCheck(fs, "proxy-idle")
	require.Equal(t, Crit, px[0].Severity)
	require.Contains(t, px[0].Message, "pgbouncer-tx keeps idle upstream connections 10m0s ≥ postgres 5m0s")

	cfg.Hops = mustHops(t, "pgbouncer", "postgres=30s") // session mode: the server's timeout reaches the client
	ci := byCheck(audit(t, cfg), "client-idle")
	require.Equal(t, Crit, ci[0].Severity)
	require.Contains(t, ci[0].Message, "client 45s ≥ postgres 30s")
}

func TestAuditMiddleboxAndKeepalive(t *testing.T) {
	cfg := goDefaults(mustHops(t, "aws-nat", "api=10m"))
	cfg.ClientIdle = 0 // keeps idle connections forever
	fs := audit(t, cfg)
	ci := byCheck(fs, "client-idle")
	require.Len(t, ci, 2)
	require.Equal(t, OK, ci[0].Severity, "keepalive keeps the NAT fresh")
	require.Contains(t, ci[0].Message, "keeps its flow fresh")
	require.Equal(t, Crit, ci[1].Severity, "keepalive does not keep the server's keep-alive fresh")
	require.Equal(t, OK, byCheck(fs, "keepalive")[0].Severity)

	cfg.KeepAliveIdle = 7200 * time.Second
	fs = audit(t, cfg)
	require.Equal(t, Crit, byCheck(fs, "client-idle")[0].Severity, "no longer fresh")
	ka := byCheck(fs, "keepalive")[0]
	require.Equal(t, Crit, ka.Severity)
	require.Contains(t, ka.Advice, "set keepalive idle to 30s")

	cfg.KeepAliveIdle = 340 * time.Second
	require.Equal(t, Warn, byCheck(audit(t, cfg), "keepalive")[0].Severity)

	cfg.KeepAliveIdle = 0
	require.Equal(t, Warn, byCheck(audit(t, cfg), "keepalive")[0].Severity)

	cfg.Hops = mustHops(t, "aws-nat")
	require.Contains(t, byCheck(audit(t, cfg), "path")[0].Message, "the server behind it is not declared")
}

func TestAuditUserTimeout(t *testing.T) {
	cfg := goDefaults(mustHops(t, "nginx"))
	cfg.ClientIdle = 30 * time.Second
	ut := byCheck(audit(t, cfg), "user-timeout")[0]
	require.Equal(t, Info, ut.Severity)
	require.Contains(t, ut.Advice, "suggested 1m0s")

	cfg.UserTimeout = time.Minute
	require.Equal(t, OK, byCheck(audit(t, cfg), "user-timeout")[0].Severity)
}

// A setting the Dialer refuses on its own is refused by the audit, with the
// Dialer's error.
func TestAuditRefusesWhatTheDialerRefuses(t *testing.T) {
	cases := []struct {
		set   func(*AuditConfig)
		field string
	}{
		{func(c *AuditConfig) { c.KeepAliveIdle = 500 * time.Millisecond }, "Dialer.KeepAliveIdle"},
		{func(c *AuditConfig) { c.KeepAliveIdle = 1500 * time.Millisecond }, "Dialer.KeepAliveIdle"},
		{func(c *AuditConfig) { c.KeepAliveCount = -3 }, "Dialer.KeepAliveCount"},
		{func(c *AuditConfig) { c.KeepAliveInterval = 0 }, ""}, // zero: the Dialer's default
		{func(c *AuditConfig) { c.UserTimeout = 20 * time.Second }, "Dialer.UserTimeout"},
		{func(c *AuditConfig) { c.KeepAliveIdle, c.UserTimeout = 0, 20*time.Second }, ""}, // keepalive off
	}
	for _, tc := range cases {
		cfg := goDefaults(mustHops(t, "aws-alb"))
		tc.set(&cfg)
		_, _, err := Audit(cfg)
		if tc.field == "" {
			require.NoError(t, err)
			continue
		}
		var ce *rstpool.ConfigError
		require.ErrorAs(t, err, &ce)
		require.Equal(t, tc.field, ce.Field)
		d := cfg.Dialer()
		d.Chain = nil
		_, _, derr := d.Limits()
		require.EqualError(t, err, derr.Error(), "the Dialer's own words")
	}
}

func TestAuditLifetime(t *testing.T) {
	cfg := goDefaults(mustHops(t, "lb=60s,lifetime=1h"))
	cfg.ClientIdle = 30 * time.Second
	cfg.UserTimeout = 3 * time.Minute
	lt := byCheck(audit(t, cfg), "lifetime")[0]
	require.Equal(t, Crit, lt.Severity)
	require.Contains(t, lt.Advice, "at most 1h0m0s")

	cfg.Lifetime = 50 * time.Minute
	fs := audit(t, cfg)
	require.Equal(t, OK, byCheck(fs, "lifetime")[0].Severity)
	require.Equal(t, OK, Worst(fs), FormatFindings(fs))
}

func TestFormatPath(t *testing.T) {
	require.Equal(t, "client → aws-nat=5m50s (passthrough) → aws-alb=1m0s (terminates; upstream 1m0s) → node=5s",
		FormatPath(mustHops(t, "aws-nat", "aws-alb", "node")))
}
