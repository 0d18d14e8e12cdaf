package pathrule

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestKeepAliveFor(t *testing.T) {
	const s = time.Second
	cases := []struct{ m, interval, want time.Duration }{
		{350 * s, 10 * s, 30 * s}, // the default is already below
		{61 * s, 10 * s, 30 * s},  // half is 30.5 s: whole seconds
		{40 * s, 10 * s, 20 * s},  // half
		{20 * s, 10 * s, 9 * s},   // half + interval would reach it
		{25 * s, 20 * s, 4 * s},   // a long interval leaves less
		{5 * s, 10 * s, s},        // nothing fits: the kernel's least
		{300 * time.Millisecond, s, s},
	}
	for _, tc := range cases {
		require.Equal(t, tc.want, keepAliveFor(tc.m, 30*s, tc.interval), "m %s interval %s", tc.m, tc.interval)
	}
}

func TestMarginRoundsToMilliseconds(t *testing.T) {
	require.Equal(t, 45750*time.Millisecond, margin(61*time.Second))
	require.Equal(t, 7*time.Millisecond, margin(10*time.Millisecond), "7.5 ms: whole milliseconds, rounded down")
	require.Equal(t, 750*time.Microsecond, margin(time.Millisecond), "below a millisecond it stays exact")
}

func TestClientHops(t *testing.T) {
	hops := []Hop{{Name: "nat", Kind: PassThrough}, {Name: "alb", Kind: Terminates}, {Name: "node"}}
	require.Equal(t, hops[:2], ClientHops(hops))
	require.Equal(t, hops[2:], ClientHops(hops[2:]))
	require.Empty(t, ClientHops(nil))
}

func TestProxyFindingsPerSegment(t *testing.T) {
	hops := []Hop{
		{Name: "alb", Kind: Terminates, Idle: time.Minute, Upstream: time.Minute},
		{Name: "envoy", Kind: Terminates, Idle: 30 * time.Second, Upstream: -1},
		{Name: "api", Idle: 5 * time.Second},
	}
	var crit []string
	for _, f := range Findings(hops, Client{Idle: 45 * time.Second}, Client{}) {
		if f.Check == "proxy-idle" && f.Severity == Crit {
			crit = append(crit, f.Message)
		}
	}
	require.Equal(t, []string{
		"alb keeps idle upstream connections 1m0s ≥ envoy 30s: it reuses connections envoy has closed, and requests fail (502s) between 30s and 1m0s idle",
		"envoy keeps idle upstream connections none ≥ api 5s: it reuses connections api has closed, and requests fail (502s) after 5s idle",
	}, crit)
}
