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

func TestParseHop(t *testing.T) {
	h, err := ParseHop("aws-alb")
	require.NoError(t, err)
	require.Equal(t, rstpool.Hop{Name: "aws-alb", IdleTimeout: 60 * time.Second}, h)

	h, err = ParseHop("aws-nlb=100s")
	require.NoError(t, err)
	require.Equal(t, 100*time.Second, h.IdleTimeout)
	require.True(t, h.Middlebox, "an override keeps the preset's kind")

	h, err = ParseHop("fw=30m,middlebox,lifetime=1h")
	require.NoError(t, err)
	require.Equal(t, rstpool.Hop{Name: "fw", IdleTimeout: 30 * time.Minute, Middlebox: true, MaxLifetime: time.Hour}, h)

	for _, bad := range []string{"", "nosuchpreset", "x=abc", "x=-1s", "x=1s,bogus", "=5s"} {
		_, err := ParseHop(bad)
		require.Error(t, err, bad)
	}
}

func TestParseHops(t *testing.T) {
	c, err := ParseHops(strings.NewReader("# path to the API\naws-alb\n\n  nginx   # reverse proxy\napi=30s\n"))
	require.NoError(t, err)
	require.Equal(t, "aws-alb=1m0s → nginx=1m15s → api=30s", c.String())

	_, err = ParseHops(strings.NewReader("aws-alb\nwhat\n"))
	require.ErrorContains(t, err, "line 2")
}

func TestAuditClientOutlivesALB(t *testing.T) {
	fs := Audit(goDefaults(mustHops(t, "aws-alb", "nginx")))
	ci := byCheck(fs, "client-idle")
	require.Len(t, ci, 1, "nginx is behind the ALB: not on the client's connection")
	require.Equal(t, Crit, ci[0].Severity)
	require.Contains(t, ci[0].Message, "between 1m0s and 1m30s")
	require.Contains(t, ci[0].Advice, "suggested 45s")

	px := byCheck(fs, "proxy-idle")
	require.Equal(t, OK, px[0].Severity, "ALB 60s < nginx 75s")
	require.Equal(t, Crit, Worst(fs))
}

func TestAuditLBLongerThanBackend(t *testing.T) {
	cfg := goDefaults(mustHops(t, "aws-alb", "node"))
	cfg.ClientIdle = 30 * time.Second
	fs := Audit(cfg)
	require.Equal(t, OK, byCheck(fs, "client-idle")[0].Severity)
	px := byCheck(fs, "proxy-idle")
	require.Len(t, px, 1)
	require.Equal(t, Crit, px[0].Severity)
	require.Contains(t, px[0].Message, "aws-alb keeps idle backend connections 1m0s ≥ node 5s")
	require.Contains(t, px[0].Message, "between 5s and 1m0s")

	// The order matters: node in front of the ALB is a different path.
	cfg.Hops = mustHops(t, "node", "aws-alb")
	fs = Audit(cfg)
	require.Equal(t, Crit, byCheck(fs, "client-idle")[0].Severity, "client 30s outlives node 5s")
	require.Equal(t, OK, byCheck(fs, "proxy-idle")[0].Severity)
}

func TestAuditMiddleboxAndKeepalive(t *testing.T) {
	cfg := goDefaults(mustHops(t, "aws-nat", "api=10m"))
	cfg.ClientIdle = 0 // keeps idle connections forever
	fs := Audit(cfg)
	ci := byCheck(fs, "client-idle")
	require.Len(t, ci, 2)
	require.Equal(t, OK, ci[0].Severity, "keepalive keeps the NAT fresh")
	require.Contains(t, ci[0].Message, "keeps its flow fresh")
	require.Equal(t, Crit, ci[1].Severity, "keepalive does not keep the server's keep-alive fresh")
	require.Equal(t, OK, byCheck(fs, "keepalive")[0].Severity)

	cfg.KeepAliveIdle = 7200 * time.Second
	fs = Audit(cfg)
	require.Equal(t, Crit, byCheck(fs, "client-idle")[0].Severity)
	ka := byCheck(fs, "keepalive")[0]
	require.Equal(t, Crit, ka.Severity)
	require.Contains(t, ka.Advice, "2m55s")

	cfg.KeepAliveIdle = 340 * time.Second
	require.Equal(t, Warn, byCheck(Audit(cfg), "keepalive")[0].Severity)

	cfg.KeepAliveIdle = -1
	require.Equal(t, Warn, byCheck(Audit(cfg), "keepalive")[0].Severity)
}

func TestAuditUserTimeout(t *testing.T) {
	cfg := goDefaults(mustHops(t, "nginx"))
	cfg.ClientIdle = 30 * time.Second
	require.Equal(t, Info, byCheck(Audit(cfg), "user-timeout")[0].Severity)

	cfg.UserTimeout = 20 * time.Second
	ut := byCheck(Audit(cfg), "user-timeout")[0]
	require.Equal(t, Crit, ut.Severity)
	require.Contains(t, ut.Message, "one lost probe")
	require.Contains(t, ut.Advice, "2m30s")

	cfg.UserTimeout = time.Minute
	require.Equal(t, OK, byCheck(Audit(cfg), "user-timeout")[0].Severity)
}

func TestAuditLifetime(t *testing.T) {
	cfg := goDefaults(mustHops(t, "lb=60s,lifetime=1h"))
	cfg.ClientIdle = 30 * time.Second
	cfg.UserTimeout = time.Minute
	lt := byCheck(Audit(cfg), "lifetime")[0]
	require.Equal(t, Crit, lt.Severity)
	require.Contains(t, lt.Advice, "54m0s")

	cfg.Lifetime = 50 * time.Minute
	fs := Audit(cfg)
	require.Equal(t, OK, byCheck(fs, "lifetime")[0].Severity)
	require.Equal(t, OK, Worst(fs), FormatFindings(fs))
}

func TestSuggest(t *testing.T) {
	s := Suggest(AuditConfig{Hops: mustHops(t, "aws-nat", "aws-alb", "node")})
	require.Equal(t, Settings{ClientIdle: 45 * time.Second, KeepAliveIdle: 175 * time.Second,
		KeepAliveInterval: 15 * time.Second, KeepAliveCount: 3, UserTimeout: 220 * time.Second}, s)

	// The suggestion passes its own audit.
	cfg := AuditConfig{Hops: mustHops(t, "aws-nat", "aws-alb"), ClientIdle: s.ClientIdle, KeepAliveIdle: s.KeepAliveIdle,
		KeepAliveInterval: s.KeepAliveInterval, KeepAliveCount: s.KeepAliveCount, UserTimeout: s.UserTimeout}
	fs := Audit(cfg)
	require.Equal(t, OK, Worst(fs), FormatFindings(fs))
}
