package rstpool

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/net/nettest"
)

// noRetry is a Dialer for tests: refusals are reported at once.
func noRetry() *Dialer { return &Dialer{RefusedRetry: -1} }

// listen starts a loopback listener whose accepted connections are handed
// to serve, each in its own goroutine; it is closed with the test.
func listen(t testing.TB, serve func(net.Conn)) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	go acceptLoop(ln, serve)
	return ln
}

// acceptLoop hands each connection ln accepts to serve until ln closes.
func acceptLoop(ln net.Listener, serve func(net.Conn)) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go serve(c)
	}
}

// echo answers every read with the same bytes until EOF.
func echo(c net.Conn) {
	defer c.Close()
	_, _ = io.Copy(c, c)
}

func dialTracked(t *testing.T, d *Dialer, addr string) *Conn {
	t.Helper()
	c, err := d.DialContext(context.Background(), "tcp", addr)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c.(*Conn)
}

func TestConnPassesNettest(t *testing.T) {
	nettest.TestConn(t, func() (c1, c2 net.Conn, stop func(), err error) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, nil, nil, err
		}
		defer ln.Close()
		accepted := make(chan net.Conn, 1)
		go func() {
			c, _ := ln.Accept()
			accepted <- c
		}()
		c1, err = noRetry().Dial("tcp", ln.Addr().String())
		if err != nil {
			return nil, nil, nil, err
		}
		c2 = <-accepted
		return c1, c2, func() { c1.Close(); c2.Close() }, nil
	})
}

func TestConnCountsBytesAndReuse(t *testing.T) {
	ln := listen(t, echo)
	c := dialTracked(t, noRetry(), ln.Addr().String())
	buf := make([]byte, 5)
	for range 3 {
		_, err := c.Write([]byte("hello"))
		require.NoError(t, err)
		_, err = io.ReadFull(c, buf)
		require.NoError(t, err)
	}
	st := c.Stats()
	require.Equal(t, int64(15), st.BytesRead)
	require.Equal(t, int64(15), st.BytesWritten)
	require.False(t, c.reused(), "no quiet spell and no checkout: one piece of work")

	time.Sleep(2 * DefaultPeekAfter)
	_, err := c.Write([]byte("hello"))
	require.NoError(t, err)
	require.True(t, c.reused(), "used, left quiet, used again")

	c.begin()
	require.False(t, c.reused(), "a consumer's first checkout decides instead")
	c.begin()
	require.True(t, c.reused())
	require.Equal(t, int64(2), c.Stats().Checkouts)
}

func TestConnKeepsSyscallConnAndCloseWrite(t *testing.T) {
	ln := listen(t, echo)
	c := dialTracked(t, noRetry(), ln.Addr().String())
	var _ syscall.Conn = c
	raw, err := c.SyscallConn()
	require.NoError(t, err)
	require.NoError(t, raw.Control(func(fd uintptr) { require.NotZero(t, fd) }))
	_, err = c.Write([]byte("x"))
	require.NoError(t, err)
	require.NoError(t, c.CloseWrite())
	b, err := io.ReadAll(c)
	require.NoError(t, err, "echo returns what was sent, then EOF after our CloseWrite")
	require.Equal(t, "x", string(b))
	require.True(t, c.Stats().PeerClosed)
}

func TestDialRefusedIsClassified(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	ln.Close()
	_, err = noRetry().Dial("tcp", addr)
	require.Error(t, err)
	var ce *ConnError
	require.ErrorAs(t, err, &ce)
	require.Equal(t, "dial", ce.Op)
	require.Equal(t, ClassRefused, Classify(err))
	require.ErrorIs(t, err, syscall.ECONNREFUSED)
	require.Equal(t, CauseNotListening, ce.Cause())
}

func TestReadErrorIsConnErrorAndEOFIsBare(t *testing.T) {
	ln := listen(t, func(c net.Conn) {
		buf := make([]byte, 1)
		_, _ = c.Read(buf)
		c.(*net.TCPConn).SetLinger(0)
		c.Close()
	})
	c := dialTracked(t, noRetry(), ln.Addr().String())
	_, err := c.Write([]byte("x"))
	require.NoError(t, err)
	_, err = c.Read(make([]byte, 1))
	require.ErrorIs(t, err, syscall.ECONNRESET)
	var ce *ConnError
	require.ErrorAs(t, err, &ce)
	require.Equal(t, ClassReset, ce.Class)
	require.Equal(t, int64(1), ce.Written)
	require.False(t, ce.Reused)
	require.Equal(t, CauseConnectReset, ce.Cause(), "reset before its first answer")
	require.False(t, ce.untouched, "the server read the byte before it reset: no refusal to try again")

	ln2 := listen(t, func(c net.Conn) { c.Close() })
	c2 := dialTracked(t, noRetry(), ln2.Addr().String())
	_, err = c2.Read(make([]byte, 1))
	require.True(t, err == io.EOF, "EOF must stay bare for io.Reader callers, got %v", err)
	require.False(t, errors.Is(err, net.ErrClosed))
}

// A deadline is not a failure of the connection: it stays usable, and a
// later error is not blamed on it.
func TestDeadlineIsNotRememberedAsFailure(t *testing.T) {
	c := dialTracked(t, noRetry(), listen(t, echo).Addr().String())
	require.NoError(t, c.SetReadDeadline(time.Now().Add(5*time.Millisecond)))
	_, err := c.Read(make([]byte, 1))
	require.ErrorIs(t, err, os.ErrDeadlineExceeded)
	require.Nil(t, c.failed())

	require.NoError(t, c.SetReadDeadline(time.Time{}))
	_, err = c.Write([]byte("x"))
	require.NoError(t, err)
	_, err = io.ReadFull(c, make([]byte, 1))
	require.NoError(t, err, "still usable after the deadline")

	require.NoError(t, c.Close())
	_, err = c.Read(make([]byte, 1))
	require.Equal(t, ClassCanceled, Classify(err), "a local close, not the old deadline")
	require.Nil(t, c.failed())
}
