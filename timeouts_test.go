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

func TestClientIdleTimeoutBelowEveryHop(t *testing.T) {
	c := Chain{hop("nginx"), hop("aws-alb"), hop("aws-nlb"), {Name: "postgres"}}
	require.Equal(t, 45*time.Second, c.ClientIdleTimeout())
	require.NoError(t, c.Check(c.ClientIdleTimeout()))
	require.Equal(t, time.Duration(0), Chain{}.ClientIdleTimeout())
	require.Equal(t, time.Duration(0), Chain{{Name: "postgres"}}.ClientIdleTimeout(), "a hop without idle timeout reaps nothing")
	require.Equal(t, 175*time.Second, c.KeepAliveIdle(), "half of the NLB, the only middlebox")
}

func TestCheckNamesTheHopAndTheWindow(t *testing.T) {
	c := Chain{hop("nginx"), hop("aws-alb")}
	err := c.Check(90 * time.Second)
	require.Error(t, err)
	require.Contains(t, err.Error(), "client 1m30s ≥ aws-alb 1m0s: reuse between 1m0s and 1m30s will reset")
	var oe *OutlivesError
	require.True(t, errors.As(err, &oe))
	require.Equal(t, "aws-alb", oe.Hop.Name, "the smallest hop comes first")
	require.Contains(t, err.Error(), "nginx")

	err = c.Check(0)
	require.ErrorAs(t, err, &oe)
	require.Contains(t, err.Error(), "none ≥ aws-alb")

	require.NoError(t, c.Check(59*time.Second))
	require.Error(t, c.Check(60*time.Second), "equal is not below")
}

func TestPresets(t *testing.T) {
	want := map[string]time.Duration{
		"nginx": 75 * time.Second, "aws-alb": 60 * time.Second, "aws-nlb": 350 * time.Second,
		"azure-lb": 4 * time.Minute, "gcp-lb": 600 * time.Second, "mysql": 8 * time.Hour,
		"linux-conntrack": 5 * 24 * time.Hour, "node": 5 * time.Second,
	}
	for name, d := range want {
		require.Equal(t, d, hop(name).IdleTimeout, name)
	}
	p := Presets()
	p[0].IdleTimeout = 0
	require.NotZero(t, hop(p[0].Name).IdleTimeout, "Presets returns a copy")
	_, ok := LookupHop("nope")
	require.False(t, ok)
	require.Equal(t, "nginx=1m15s → aws-alb=1m0s", Chain{hop("nginx"), hop("aws-alb")}.String())
}
