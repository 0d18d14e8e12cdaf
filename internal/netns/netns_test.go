//go:build linux

package netns

import (
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func listenIn(t *testing.T, n *NS, addr string) net.Listener {
	var ln net.Listener
	require.NoError(t, n.Do(func() (err error) {
		ln, err = net.Listen("tcp4", addr)
		return err
	}))
	t.Cleanup(func() { ln.Close() })
	return ln
}

func dialIn(n *NS, addr string, timeout time.Duration) (net.Conn, error) {
	var c net.Conn
	err := n.Do(func() (err error) {
		c, err = net.DialTimeout("tcp4", addr, timeout)
		return err
	})
	return c, err
}

func TestLinkAndDo(t *testing.T) {
	SkipUnlessAvailable(t)
	a, b := New(t), New(t)
	Link(a, "10.77.9.1/24", b, "10.77.9.2/24")
	ln := listenIn(t, b, "10.77.9.2:0")
	go func() {
		c, err := ln.Accept()
		if err == nil {
			c.Write([]byte("hi"))
			c.Close()
		}
	}()
	c, err := dialIn(a, ln.Addr().String(), 2*time.Second)
	require.NoError(t, err)
	defer c.Close()
	got, err := io.ReadAll(c)
	require.NoError(t, err)
	require.Equal(t, "hi", string(got))

	// The host's namespace has no route to the test's addresses.
	_, err = net.DialTimeout("tcp4", ln.Addr().String(), 200*time.Millisecond)
	require.Error(t, err)

	// Do restored the thread: this process's namespace is the host's again.
	self, err := os.Readlink("/proc/thread-self/ns/net")
	require.NoError(t, err)
	host, err := os.Readlink("/proc/self/ns/net") // the main thread, never switched
	require.NoError(t, err)
	require.Equal(t, host, self)
}

func TestDropIsABlackHole(t *testing.T) {
	SkipUnlessAvailable(t)
	a, b := New(t), New(t)
	Link(a, "10.77.8.1/24", b, "10.77.8.2/24")
	ln := listenIn(t, b, "10.77.8.2:0")
	port := uint16(ln.Addr().(*net.TCPAddr).Port)
	b.Drop(port)
	_, err := dialIn(a, ln.Addr().String(), 300*time.Millisecond)
	var ne net.Error
	require.ErrorAs(t, err, &ne)
	require.True(t, ne.Timeout(), "a black hole times out, it does not refuse: %v", err)

	b.Flush()
	c, err := dialIn(a, ln.Addr().String(), 2*time.Second)
	require.NoError(t, err)
	c.Close()
}

func TestResetForgesRST(t *testing.T) {
	SkipUnlessAvailable(t)
	a, b := New(t), New(t)
	Link(a, "10.77.7.1/24", b, "10.77.7.2/24")
	ln := listenIn(t, b, "10.77.7.2:0")
	b.Reset(uint16(ln.Addr().(*net.TCPAddr).Port))
	_, err := dialIn(a, ln.Addr().String(), 2*time.Second)
	require.ErrorContains(t, err, "connection refused", "a RST answering the SYN")
}

func TestExecError(t *testing.T) {
	SkipUnlessAvailable(t)
	n := New(t)
	_, err := n.Exec("ip", "link", "set", "nosuchdev", "up")
	require.ErrorContains(t, err, n.Name)
}
