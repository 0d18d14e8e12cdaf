package rstpool

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func hop(name string) Hop {
	h, ok := LookupHop(name)
	if !ok {
		panic("no preset " + name)
	}
	return h
}

func TestPresetTable(t *testing.T) {
	const s = time.Second
	want := []Hop{
		{Name: "apache", IdleTimeout: 5 * s},
		{Name: "node", IdleTimeout: 5 * s},
		{Name: "gunicorn", IdleTimeout: 2 * s},
		{Name: "uvicorn", IdleTimeout: 5 * s},
		{Name: "mysql", IdleTimeout: 8 * time.Hour},
		{Name: "nginx", IdleTimeout: 75 * s, Terminates: true, UpstreamIdleTimeout: 60 * s},
		{Name: "envoy", IdleTimeout: time.Hour, Terminates: true, UpstreamIdleTimeout: time.Hour},
		{Name: "aws-alb", IdleTimeout: 60 * s, Terminates: true},
		{Name: "gcp-lb", IdleTimeout: 610 * s, Terminates: true, UpstreamIdleTimeout: 600 * s},
		{Name: "pgbouncer-tx", Terminates: true, UpstreamIdleTimeout: 600 * s},
		{Name: "pgbouncer"},
		{Name: "aws-nlb", IdleTimeout: 350 * s, Middlebox: true},
		{Name: "aws-nat", IdleTimeout: 350 * s, Middlebox: true},
		{Name: "azure-lb", IdleTimeout: 4 * time.Minute, Middlebox: true},
		{Name: "gcp-nat", IdleTimeout: 1200 * s, Middlebox: true},
		{Name: "linux-conntrack", IdleTimeout: 5 * 24 * time.Hour, Middlebox: true},
	}
	require.Equal(t, want, Presets())
	for _, h := range want {
		require.Equal(t, h, MustHop(h.Name))
		require.False(t, h.Terminates && h.Middlebox, h.Name)
		_, err := (&Dialer{Chain: Chain{h}}).settings()
		require.NoError(t, err, "the preset alone dials: %s", h.Name)
	}
	p := Presets()
	p[0].IdleTimeout = 0
	require.NotZero(t, hop(p[0].Name).IdleTimeout, "Presets returns a copy")
	_, ok := LookupHop("nope")
	require.False(t, ok)
	require.Panics(t, func() { MustHop("nope") })
}

// Each chain's derived settings, as a Dialer with the chain and nothing
// else resolves them.
func TestChainDerivesFromTheClientsConnection(t *testing.T) {
	const s = time.Second
	fw := func(idle time.Duration) Hop { return Hop{Name: "fw", IdleTimeout: idle, Middlebox: true} }
	cases := []struct {
		name                 string
		chain                Chain
		idle, keepAlive, cap time.Duration
	}{
		{"no chain", nil, DefaultIdleTimeout, DefaultKeepAliveIdle, 0},
		{"issue 12: the connection ends at the ALB", Chain{hop("aws-nat"), hop("aws-alb"), hop("node")}, 45 * s, 30 * s, 0},
		{"a server alone", Chain{hop("node")}, 3750 * time.Millisecond, 30 * s, 0},
		{"NLB passes through to nginx", Chain{hop("aws-nlb"), hop("nginx")}, 56250 * time.Millisecond, 30 * s, 0},
		{"an unmarked proxy is judged strictly", Chain{{Name: "lb", IdleTimeout: 60 * s}, hop("node")}, 3750 * time.Millisecond, 30 * s, 0},
		{"issue 10: 61s middlebox, server undeclared", Chain{fw(61 * s)}, DefaultIdleTimeout, 30 * s, 0},
		{"20s middlebox: one lost probe still in time", Chain{fw(20 * s), {Name: "api", IdleTimeout: time.Minute}}, 15 * s, 9 * s, 0},
		{"7s middlebox, 10s interval: as low as the kernel goes", Chain{fw(7 * s), {Name: "api", IdleTimeout: time.Minute}}, 5250 * time.Millisecond, s, 0},
		{"sub-second middlebox", Chain{fw(300 * time.Millisecond)}, 225 * time.Millisecond, s, 0},
		{"pgbouncer in transaction mode: client_idle_timeout off", Chain{hop("pgbouncer-tx"), {Name: "postgres", IdleTimeout: 5 * time.Minute}}, DefaultIdleTimeout, 30 * s, 0},
		{"pgbouncer in session mode: the server reaches the client", Chain{hop("pgbouncer"), {Name: "postgres", IdleTimeout: 5 * time.Minute}}, 225 * s, 30 * s, 0},
		{"caps behind a terminating hop are its own", Chain{{Name: "lb", IdleTimeout: time.Minute, Terminates: true, MaxLifetime: time.Hour}, {Name: "api", MaxLifetime: 10 * time.Minute}}, 45 * s, 30 * s, time.Hour},
		{"GCP LB client keepalive 610s", Chain{hop("gcp-lb"), {Name: "api", IdleTimeout: 620 * s}}, 457500 * time.Millisecond, 30 * s, 0},
		{"tuned preset", Chain{MustHop("nginx").WithIdle(s)}, 750 * time.Millisecond, 30 * s, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.idle, tc.chain.ClientIdleTimeout(), "idle")
			require.Equal(t, tc.keepAlive, tc.chain.KeepAliveIdle(), "keepalive idle")
			require.Equal(t, tc.cap, tc.chain.MaxLifetime(), "lifetime")
			d := &Dialer{Chain: tc.chain}
			idle, life, err := d.Limits()
			require.NoError(t, err)
			require.Equal(t, tc.idle, idle, "the Dialer derives the same")
			require.Equal(t, tc.cap, life)
			ka, _, err := d.KeepAlive()
			require.NoError(t, err)
			require.Equal(t, tc.keepAlive, ka.Idle)
			require.Zero(t, ka.Idle%time.Second, "whole seconds")
			require.NoError(t, tc.chain.Check(idle), "the derived limit passes its own check")
		})
	}
}

func TestCheckNamesTheHopAndTheWindow(t *testing.T) {
	c := Chain{hop("aws-nat"), hop("aws-alb"), hop("node")} // the README's audit example
	err := c.Check(90 * time.Second)
	require.EqualError(t, err, "client 1m30s ≥ aws-alb 1m0s: reuse between 1m0s and 1m30s will reset",
		"node is behind the ALB, the NAT is kept fresh by keepalive")
	var oe *OutlivesError
	require.ErrorAs(t, err, &oe)
	require.Equal(t, "aws-alb", oe.Hop.Name)
	require.NoError(t, c.Check(45*time.Second))
	require.Error(t, c.Check(60*time.Second), "equal is not below")

	err = Chain{{Name: "lb", IdleTimeout: time.Minute}, hop("nginx")}.Check(90 * time.Second)
	require.Len(t, err.(interface{ Unwrap() []error }).Unwrap(), 2, "unmarked: both bound the client")
	require.True(t, errors.As(err, &oe))
	require.Equal(t, "lb", oe.Hop.Name, "the smallest hop comes first")

	err = Chain{hop("aws-alb")}.Check(0)
	require.ErrorContains(t, err, "client idle timeout none ≥ aws-alb 1m0s")

	err = Chain{hop("aws-nat"), {Name: "api", IdleTimeout: 10 * time.Minute}}.Check(20 * time.Minute)
	require.EqualError(t, err, "client 20m0s ≥ api 10m0s: reuse between 10m0s and 20m0s will reset",
		"keepalive keeps the NAT fresh, not the server")
}

func TestWithIdle(t *testing.T) {
	n := MustHop("nginx").WithIdle(time.Second)
	require.Equal(t, time.Second, n.IdleTimeout)
	require.Equal(t, 60*time.Second, n.rule().Upstream, "nginx's upstream keepalive_timeout is its own setting")
	alb := MustHop("aws-alb").WithIdle(2 * time.Minute)
	require.Equal(t, 2*time.Minute, alb.rule().Upstream, "one ALB setting for both sides")
	require.Equal(t, 75*time.Second, MustHop("nginx").IdleTimeout, "the preset is unchanged")
}

func TestDerivedKeepAliveIsNeverAConfigError(t *testing.T) {
	for _, m := range []time.Duration{61 * time.Second, 350 * time.Second, 7 * time.Second, 1500 * time.Millisecond, 300 * time.Millisecond} {
		d := &Dialer{Chain: Chain{{Name: "fw", IdleTimeout: m, Middlebox: true}}}
		ka, ut, err := d.KeepAlive()
		require.NoError(t, err, "middlebox %s", m)
		require.Zero(t, ka.Idle%time.Second, "middlebox %s: %s", m, ka.Idle)
		require.Greater(t, ut, ka.Idle+ka.Interval)
	}
	_, _, err := (&Dialer{KeepAliveIdle: 1500 * time.Millisecond}).KeepAlive()
	var ce *ConfigError
	require.ErrorAs(t, err, &ce, "a value the user set stays an error")
	require.Equal(t, "Dialer.KeepAliveIdle", ce.Field)
}

// The Dialer refuses what the path rules call critical when the user set
// it, in the words "rstpool audit" prints.
func TestDialerRefusesWhatDoesNotFitTheChain(t *testing.T) {
	nat, alb, node := hop("aws-nat"), hop("aws-alb"), hop("node")
	capped := Hop{Name: "lb", IdleTimeout: time.Minute, MaxLifetime: time.Hour}
	cases := []struct {
		d     Dialer
		field string // "" when accepted
		msg   string
	}{
		{Dialer{Chain: Chain{nat, alb, node}, IdleTimeout: 45 * time.Second}, "", ""},
		{Dialer{Chain: Chain{nat, alb, node}, IdleTimeout: 90 * time.Second}, "Dialer.IdleTimeout",
			"1m30s does not fit the declared chain: client 1m30s ≥ aws-alb 1m0s: reuse between 1m0s and 1m30s will reset"},
		{Dialer{Chain: Chain{alb}, IdleTimeout: -1}, "Dialer.IdleTimeout", "none does not fit the declared chain: client idle timeout none ≥ aws-alb"},
		{Dialer{Chain: Chain{nat}, IdleTimeout: 10 * time.Minute}, "", ""},
		{Dialer{Chain: Chain{nat}, IdleTimeout: 10 * time.Minute, KeepAliveIdle: -1}, "Dialer.IdleTimeout", "client 10m0s ≥ aws-nat 5m50s"},
		{Dialer{Chain: Chain{nat}, KeepAliveIdle: 6 * time.Minute}, "Dialer.KeepAliveIdle", "keepalive idle 6m0s not below pass-through aws-nat 5m50s"},
		{Dialer{Chain: Chain{capped}, MaxLifetime: 2 * time.Hour}, "Dialer.MaxLifetime", "client lifetime 2h0m0s outlives lb's hard cap 1h0m0s"},
		{Dialer{Chain: Chain{capped}, MaxLifetime: time.Hour}, "", ""},
		{Dialer{Chain: Chain{{Name: "x", Terminates: true, Middlebox: true}}}, "Dialer.Chain[0]", `"x" is marked both`},
		{Dialer{Chain: Chain{alb, {Name: "y", IdleTimeout: -time.Second}}}, "Dialer.Chain[1].IdleTimeout", "must not be negative"},
	}
	for _, tc := range cases {
		_, _, err := tc.d.Limits()
		if tc.field == "" {
			require.NoError(t, err, "%+v", tc.d)
			continue
		}
		var ce *ConfigError
		require.ErrorAs(t, err, &ce, "%+v", tc.d)
		require.Equal(t, tc.field, ce.Field)
		require.Contains(t, ce.Msg, tc.msg)
	}
}

func TestChainString(t *testing.T) {
	require.Equal(t, "aws-nat=5m50s → aws-alb=1m0s → node=5s", Chain{hop("aws-nat"), hop("aws-alb"), hop("node")}.String())
	require.Equal(t, "pgbouncer=none", Chain{hop("pgbouncer")}.String())
}
