package faultproxy

import (
	"io"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

const (
	testIdle = 100 * time.Millisecond
	testGap  = 250 * time.Millisecond
)

// idleFlow returns a client whose flow was used once, then left idle past the
// proxy's idle timeout, and checks that the proxy told the client nothing.
func idleFlow(t *testing.T, a Action) (*Proxy, *net.TCPConn) {
	t.Helper()
	up := startEcho(t)
	p := startProxy(t, Config{IdleTimeout: testIdle, IdleAction: a}, up.addr())
	c := dial(t, p.Addr())
	roundTrip(t, c, "before the gap")
	time.Sleep(testGap)
	_, err := readErr(c, 50*time.Millisecond)
	require.True(t, isTimeout(err), "the client must learn nothing before it sends: %v", err)
	if a != ActionReset {
		require.Equal(t, int64(0), p.Stats().Reaped(), "forgetting is lazy")
	}
	_, err = c.Write([]byte("after the gap"))
	require.NoError(t, err)
	return p, c
}

func TestIdleReapReset(t *testing.T) {
	p, c := idleFlow(t, ActionReset)
	got, err := readErr(c, 2*time.Second)
	require.True(t, isReset(err), "want ECONNRESET, got %v", err)
	require.Empty(t, got)
	st := p.Stats()
	require.Equal(t, int64(1), st.ReapedReset)
	require.Equal(t, int64(len("before the gap")), st.BytesUp, "nothing forwarded after the gap")
	if silenceWorks(t) {
		// As a NAT that forgot the flow: the reset answers the bytes
		// after the gap and acknowledges none of them.
		raw, err := c.SyscallConn()
		require.NoError(t, err)
		acked := -1
		require.NoError(t, raw.Control(func(fd uintptr) { acked = bytesAcked(int(fd)) }))
		require.Equal(t, len("before the gap"), acked, "the bytes after the gap were not acknowledged")
	}
}

func TestIdleReapClose(t *testing.T) {
	p, c := idleFlow(t, ActionClose)
	got, err := readErr(c, 2*time.Second)
	require.ErrorIs(t, err, io.EOF)
	require.Empty(t, got)
	require.Equal(t, int64(1), p.Stats().ReapedClose)
}

func TestIdleReapDrop(t *testing.T) {
	p, c := idleFlow(t, ActionDrop)
	_, err := readErr(c, 200*time.Millisecond)
	require.True(t, isTimeout(err), "want a read timeout, got %v", err)
	st := p.Stats()
	require.Equal(t, int64(1), st.ReapedDrop)
	require.Equal(t, int64(len("after the gap")), st.BytesDiscarded)
	require.Equal(t, int64(1), st.Open, "a dropped flow stays open")
	_, err = c.Write([]byte("still nothing"))
	require.NoError(t, err)
	_, err = readErr(c, 100*time.Millisecond)
	require.True(t, isTimeout(err), "want a read timeout, got %v", err)
}

func TestActivityKeepsFlowAlive(t *testing.T) {
	up := startEcho(t)
	p := startProxy(t, Config{IdleTimeout: testIdle}, up.addr())
	c := dial(t, p.Addr())
	for range 6 { // 6 × 40 ms is well past the idle timeout in total
		roundTrip(t, c, "ping")
		time.Sleep(testIdle / 3)
	}
	require.Equal(t, int64(0), p.Stats().Reaped())
}

func TestSetIdleTimeoutAtRunTime(t *testing.T) {
	up := startEcho(t)
	p := startProxy(t, Config{}, up.addr())
	c := dial(t, p.Addr())
	roundTrip(t, c, "one")
	time.Sleep(testGap)
	roundTrip(t, c, "two") // no idle timeout configured yet
	p.SetIdleTimeout(testIdle, ActionReset)
	time.Sleep(testGap)
	_, err := c.Write([]byte("three"))
	require.NoError(t, err)
	_, err = readErr(c, 2*time.Second)
	require.True(t, isReset(err), "want ECONNRESET, got %v", err)
	require.Equal(t, int64(1), p.Stats().ReapedReset)
}

// slowEcho answers each read after testGap, longer than testIdle: a server
// that thinks.
func slowEcho(c *net.TCPConn) {
	buf := make([]byte, 1024)
	for {
		n, err := c.Read(buf)
		if err != nil {
			return
		}
		time.Sleep(testGap)
		if _, err := c.Write(buf[:n]); err != nil {
			return
		}
	}
}

// An answer slower than the idle timeout vanishes by default (the flow
// was idle when it came), and is delivered with IdleWaitsForClient, where
// the client's bytes after a gap still meet the idle action.
func TestIdleWaitsForClient(t *testing.T) {
	for _, waits := range []bool{false, true} {
		up := startServer(t, slowEcho)
		p := startProxy(t, Config{IdleTimeout: testIdle, IdleWaitsForClient: waits}, up.addr())
		c := dial(t, p.Addr())
		_, err := c.Write([]byte("slow question"))
		require.NoError(t, err)
		if !waits {
			got, err := readErr(c, testGap+time.Second)
			require.True(t, isTimeout(err), "the late answer must vanish: %q, %v", got, err)
			require.Equal(t, int64(1), p.Stats().ReapedReset)
			continue
		}
		// Read the answer alone: the flow idles from the moment it passed.
		got := make([]byte, len("slow question"))
		_ = c.SetReadDeadline(time.Now().Add(testGap + time.Second))
		_, err = io.ReadFull(c, got)
		require.Equal(t, "slow question", string(got), "the late answer must pass: %v", err)
		require.Zero(t, p.Stats().Reaped(), "answering is not idling")
		time.Sleep(testGap)
		_, err = c.Write([]byte("after the gap"))
		require.NoError(t, err)
		_, err = readErr(c, 2*time.Second)
		require.True(t, isReset(err), "the client's bytes after a gap are reset: %v", err)
		require.Equal(t, int64(1), p.Stats().ReapedReset)
	}
}

// The sweep that forgets idle flows silently meets a flow that lives on:
// forgetting was turned off (SetIdleTimeout(0), as a test does when its
// episode ends) between the sweep's look at the flow and its forgetting.
// The flow must go on answering, not swallow the client's bytes.
func TestSweepLeavesALiveFlowAnswering(t *testing.T) {
	if !silenceWorks(t) {
		t.Skip("TCP_REPAIR is not allowed here (CAP_NET_ADMIN)")
	}
	up := startEcho(t)
	p := startProxy(t, Config{IdleTimeout: time.Hour, IdleAction: ActionReset}, up.addr())
	c := dial(t, p.Addr())
	roundTrip(t, c, "before")
	flows := p.openFlows()
	require.Len(t, flows, 1)
	p.SetIdleTimeout(0, ActionReset)
	flows[0].forgetSilently(time.Now().Add(time.Hour).UnixNano())
	roundTrip(t, c, "after")
	require.Zero(t, p.Stats().Reaped())
}
