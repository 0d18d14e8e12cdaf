package rstpool

import (
	"context"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rstpool/rstpool/internal/netns"
)

// A packet-level black hole (every segment of the flow dropped, no FIN, no
// RST) is detected within the user timeout, with the kernel's ETIMEDOUT
// classified as a timeout whose likely cause is a black hole. Without
// TCP_USER_TIMEOUT Linux would retransmit for about 15 minutes.
func TestBlackHoleEndsWithinUserTimeout(t *testing.T) {
	ns, ln := echoInNamespace(t)
	const userTimeout = 1500 * time.Millisecond
	d := &Dialer{RefusedRetry: -1, KeepAliveIdle: -1, UserTimeout: userTimeout}
	c := exchangeInNamespace(t, ns, d, ln.Addr().String())

	ns.Drop(uint16(ln.Addr().(*net.TCPAddr).Port))
	start := time.Now()
	_, err := c.Write([]byte("lost"))
	require.NoError(t, err, "the kernel accepts the bytes; they are never acknowledged")
	require.NoError(t, c.SetReadDeadline(time.Now().Add(10*time.Second)))
	_, err = c.Read(make([]byte, 4))
	elapsed := time.Since(start)

	require.ErrorIs(t, err, syscall.ETIMEDOUT, "the user timeout, not the test's deadline, ended it")
	var ce *ConnError
	require.ErrorAs(t, err, &ce)
	require.Equal(t, ClassTimeout, ce.Class)
	require.Equal(t, CauseBlackHole, ce.Cause())
	require.GreaterOrEqual(t, elapsed, userTimeout-100*time.Millisecond)
	require.Less(t, elapsed, userTimeout+3*time.Second)
}

// An idle connection behind a black hole is ended by keepalive, and the
// check before the next write finds it dead: the write sends nothing.
func TestIdleBlackHoleFoundBeforeUse(t *testing.T) {
	ns, ln := echoInNamespace(t)
	d := &Dialer{RefusedRetry: -1, KeepAliveIdle: time.Second, KeepAliveInterval: time.Second, KeepAliveCount: 2}
	c := exchangeInNamespace(t, ns, d, ln.Addr().String())
	ns.Drop(uint16(ln.Addr().(*net.TCPAddr).Port))

	deadline := time.Now().Add(8 * time.Second) // keepalive gives up after 1s + 2 × 1s
	h, err := c.Check()
	for h == HealthAlive && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
		h, err = c.Check()
	}
	require.Equal(t, HealthReset, h)
	require.ErrorIs(t, err, syscall.ETIMEDOUT)

	n, err := c.Write([]byte("req"))
	require.Zero(t, n)
	var ce *ConnError
	require.ErrorAs(t, err, &ce)
	require.Equal(t, "validate", ce.Op)
	require.Equal(t, CauseBlackHole, ce.Cause())
}

// echoInNamespace starts an echo server on the loopback of a namespace the
// test creates, so that its packets can be dropped without touching the host.
func echoInNamespace(t *testing.T) (*netns.NS, net.Listener) {
	netns.SkipUnlessAvailable(t)
	ns := netns.New(t)
	var ln net.Listener
	require.NoError(t, ns.Do(func() (err error) {
		ln, err = net.Listen("tcp4", "127.0.0.1:0")
		return err
	}))
	t.Cleanup(func() { ln.Close() })
	go acceptLoop(ln, echo)
	return ns, ln
}

// exchangeInNamespace dials from inside the namespace and completes one
// exchange.
func exchangeInNamespace(t *testing.T, ns *netns.NS, d *Dialer, addr string) *Conn {
	var nc net.Conn
	require.NoError(t, ns.Do(func() (err error) {
		nc, err = d.DialContext(context.Background(), "tcp4", addr)
		return err
	}))
	c := nc.(*Conn)
	t.Cleanup(func() { c.Close() })
	_, err := c.Write([]byte("ping"))
	require.NoError(t, err)
	_, err = io.ReadFull(c, make([]byte, 4))
	require.NoError(t, err)
	return c
}
