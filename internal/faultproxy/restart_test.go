package faultproxy

import (
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func requireRefused(t *testing.T, addr string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if c != nil {
		_ = c.Close()
	}
	require.ErrorIs(t, err, syscall.ECONNREFUSED)
}

func TestRestart(t *testing.T) {
	up := startEcho(t)
	p := startProxy(t, Config{}, up.addr())
	old := dial(t, p.Addr())
	roundTrip(t, old, "before")

	back := p.Restart(300 * time.Millisecond)
	requireRefused(t, p.Addr())
	_, err := readErr(old, 2*time.Second)
	require.True(t, isReset(err), "open flows are reset, got %v", err)

	select {
	case err := <-back:
		require.NoError(t, err)
	case <-time.After(3 * time.Second):
		t.Fatal("the proxy did not listen again")
	}
	roundTrip(t, dial(t, p.Addr()), "after, same port")
	st := p.Stats()
	require.Equal(t, int64(1), st.Restarts)
	require.Equal(t, int64(1), st.RefusedWindows)
	require.Equal(t, int64(1), st.FlowsReset)
}

func TestRefuseKeepsOpenFlows(t *testing.T) {
	up := startEcho(t)
	p := startProxy(t, Config{}, up.addr())
	old := dial(t, p.Addr())
	roundTrip(t, old, "before")

	back := p.Refuse(200 * time.Millisecond)
	requireRefused(t, p.Addr())
	roundTrip(t, old, "during the window")
	require.NoError(t, <-back)
	roundTrip(t, dial(t, p.Addr()), "after")
	roundTrip(t, old, "after")
	require.Equal(t, int64(0), p.Stats().FlowsReset)
}

func TestRefuseWindowsMerge(t *testing.T) {
	up := startEcho(t)
	p := startProxy(t, Config{}, up.addr())
	start := time.Now()
	first := p.Refuse(50 * time.Millisecond)
	second := p.Refuse(300 * time.Millisecond)
	require.NoError(t, <-first)
	require.NoError(t, <-second)
	require.GreaterOrEqual(t, time.Since(start), 300*time.Millisecond, "the later end wins")
	roundTrip(t, dial(t, p.Addr()), "after")
	require.Equal(t, int64(1), p.Stats().RefusedWindows, "one window: the listener closed once")
}
