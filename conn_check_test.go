package rstpool

import (
	"io"
	"net"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// exchangeThen serves one request-response exchange per connection (a line
// in, "ok\n" out), then waits for the client to go idle and ends the
// connection with end.
func exchangeThen(end func(*net.TCPConn)) func(net.Conn) {
	return func(c net.Conn) {
		buf := make([]byte, 64)
		if _, err := c.Read(buf); err != nil {
			c.Close()
			return
		}
		_, _ = c.Write([]byte("ok\n"))
		time.Sleep(20 * time.Millisecond)
		end(c.(*net.TCPConn))
	}
}

func finClose(c *net.TCPConn) { c.Close() }

func rstClose(c *net.TCPConn) {
	_ = c.SetLinger(0)
	c.Close()
}

// idleAfterExchange dials, completes one exchange, then sleeps past the
// server's close so that the next Write is the first after an idle gap.
func idleAfterExchange(t *testing.T, d *Dialer, serve func(net.Conn)) *Conn {
	t.Helper()
	c := dialTracked(t, d, listen(t, serve).Addr().String())
	c.begin() // as a consumer that hands it out for the exchange would
	exchangeThenIdle(t, c)
	return c
}

// exchangeThenIdle sends a request, reads the answer and sits quiet.
func exchangeThenIdle(t *testing.T, c *Conn) {
	t.Helper()
	_, err := c.Write([]byte("req\n"))
	require.NoError(t, err)
	_, err = io.ReadFull(c, make([]byte, 3))
	require.NoError(t, err)
	time.Sleep(80 * time.Millisecond)
}

// requireValidateFailure hands c out, as a consumer would, and checks that
// its first write fails before a byte leaves.
func requireValidateFailure(t *testing.T, c *Conn, class Class) *ConnError {
	t.Helper()
	c.begin()
	n, err := c.Write([]byte("req\n"))
	require.Equal(t, 0, n, "nothing may be written to a dead connection")
	var ce *ConnError
	require.ErrorAs(t, err, &ce)
	require.Equal(t, "validate", ce.Op)
	require.Equal(t, class, ce.Class, "%v", err)
	require.Equal(t, int64(0), ce.Written)
	require.True(t, ce.NothingWritten())
	require.Equal(t, int64(4), c.Stats().BytesWritten, "only the first request reached the socket")
	require.False(t, c.closed.Load(), "the client closes a failed connection its own way (a driver's goodbye)")
	require.NoError(t, c.Close())
	_, err = c.Read(make([]byte, 1))
	require.ErrorIs(t, err, net.ErrClosed)
	require.Equal(t, class, Classify(err), "a Read after the close (net/http's readLoop) reports why, not just 'closed'")
	return ce
}

func TestFirstWriteAfterPeerFIN(t *testing.T) {
	c := idleAfterExchange(t, noRetry(), exchangeThen(finClose))
	ce := requireValidateFailure(t, c, ClassPeerClosed)
	require.ErrorIs(t, ce, ErrPeerClosed)
	require.True(t, ce.Reused)
	require.Equal(t, CauseIdleReaped, ce.Cause())
	require.GreaterOrEqual(t, ce.Idle, 50*time.Millisecond)
}

// Written counts the bytes of the current piece of work: since the
// consumer's last checkout (else since the dial), never less.
func TestWrittenSinceCheckoutElseDial(t *testing.T) {
	c := idleAfterExchange(t, noRetry(), exchangeThen(finClose))
	_, err := c.Write([]byte("req\n"))
	var ce *ConnError
	require.ErrorAs(t, err, &ce)
	require.Equal(t, "validate", ce.Op)
	require.Equal(t, int64(4), ce.Written, "no checkout since the exchange: counted since the last one")
	require.False(t, ce.NothingWritten())
}

func TestFirstWriteAfterPeerRST(t *testing.T) {
	c := idleAfterExchange(t, noRetry(), exchangeThen(rstClose))
	ce := requireValidateFailure(t, c, ClassReset)
	require.ErrorIs(t, ce, syscall.ECONNRESET)
	require.Equal(t, CauseIdleReaped, ce.Cause())
}

func TestFINBehindPendingData(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("only Linux reads the TCP state behind pending data")
	}
	// PostgreSQL's idle_session_timeout: a FATAL message, then FIN.
	c := idleAfterExchange(t, noRetry(), exchangeThen(func(c *net.TCPConn) {
		_, _ = c.Write([]byte("FATAL: idle timeout\n"))
		c.Close()
	}))
	h, err := c.Check()
	require.NoError(t, err)
	require.Equal(t, HealthClosed, h)
	requireValidateFailure(t, c, ClassPeerClosed)
}

func TestPendingDataLetsTheWriteGo(t *testing.T) {
	c := idleAfterExchange(t, noRetry(), exchangeThen(func(c *net.TCPConn) {
		_, _ = c.Write([]byte("unsolicited\n"))
		time.Sleep(time.Second)
		c.Close()
	}))
	h, err := c.Check()
	require.NoError(t, err)
	require.Equal(t, HealthPending, h)
	n, err := c.Write([]byte("req\n"))
	require.NoError(t, err, "a protocol may legitimately send while idle (TLS tickets, HTTP/2 frames)")
	require.Equal(t, 4, n)
	b := make([]byte, 12)
	_, err = io.ReadFull(c, b)
	require.NoError(t, err)
	require.Equal(t, "unsolicited\n", string(b), "the check consumed nothing")
}

func TestCheckAlive(t *testing.T) {
	c := dialTracked(t, noRetry(), listen(t, echo).Addr().String())
	h, err := c.Check()
	require.NoError(t, err)
	require.Equal(t, HealthAlive, h)
	require.NoError(t, c.Close())
	h, err = c.Check()
	require.Error(t, err, "a closed connection cannot be checked")
	require.Equal(t, HealthUnknown, h)
}

// A Conn enforces no idle limit or lifetime: those belong to whoever hands
// it out. A held connection quiet beyond both still writes.
func TestHeldConnOutlivesItsLimits(t *testing.T) {
	d := &Dialer{RefusedRetry: -1, IdleTimeout: 40 * time.Millisecond, MaxLifetime: 40 * time.Millisecond}
	c := idleAfterExchange(t, d, exchangeThen(func(c *net.TCPConn) { echo(c) }))
	time.Sleep(80 * time.Millisecond)
	_, err := c.Write([]byte("still here\n"))
	require.NoError(t, err)
	b := make([]byte, 11)
	_, err = io.ReadFull(c, b)
	require.NoError(t, err)
	require.Equal(t, "still here\n", string(b))
}

func TestRecentlyActiveConnSkipsTheCheck(t *testing.T) {
	d := &Dialer{RefusedRetry: -1, PeekAfter: time.Hour}
	c := idleAfterExchange(t, d, exchangeThen(finClose))
	n, err := c.Write([]byte("req\n"))
	require.NoError(t, err, "within the bypass window the write goes straight to the socket")
	require.Equal(t, 4, n)
}

func TestNoPeekLetsTheWriteGo(t *testing.T) {
	d := &Dialer{RefusedRetry: -1, PeekAfter: -1}
	c := idleAfterExchange(t, d, exchangeThen(finClose))
	n, err := c.Write([]byte("req\n"))
	require.NoError(t, err, "without the peek nothing stops a write")
	require.Equal(t, 4, n)
}

// A peer that half-closes (CloseWrite) and keeps reading gets the client's
// data: a FIN the application read itself does not stop its writes.
func TestHalfClosedPeerStillReads(t *testing.T) {
	got := make(chan string, 1)
	ln := listen(t, func(c net.Conn) {
		defer c.Close()
		_ = c.(*net.TCPConn).CloseWrite()
		b, _ := io.ReadAll(c)
		got <- string(b)
	})
	c := dialTracked(t, noRetry(), ln.Addr().String())
	_, err := c.Read(make([]byte, 1))
	require.Equal(t, io.EOF, err, "the peer's FIN, read by the application")
	time.Sleep(2 * DefaultPeekAfter) // the next write comes after a quiet spell: it peeks
	h, _ := c.Check()
	require.Equal(t, HealthClosed, h, "the check sees the FIN too")
	n, err := c.Write([]byte("late data"))
	require.NoError(t, err, "stock net.Conn delivers it; so must a Conn")
	require.Equal(t, 9, n)
	require.NoError(t, c.CloseWrite())
	require.Equal(t, "late data", <-got)
}

func TestReused(t *testing.T) {
	c := dialTracked(t, noRetry(), listen(t, exchangeThen(rstClose)).Addr().String())
	exchangeThenIdle(t, c) // no consumer: the quiet spell after traffic tells
	_, err := c.Write([]byte("req\n"))
	var ce *ConnError
	require.ErrorAs(t, err, &ce)
	require.True(t, ce.Reused, "used, then quiet, before the failed write")
	require.Equal(t, CauseIdleReaped, ce.Cause(), "the check before the write saw it die while idle")

	fresh := dialTracked(t, noRetry(), listen(t, resetServer).Addr().String())
	_, err = fresh.Write([]byte("x"))
	require.NoError(t, err)
	_, err = fresh.Read(make([]byte, 1))
	require.ErrorAs(t, err, &ce)
	require.False(t, ce.Reused)

	fresh.begin()
	fresh.begin()
	require.True(t, fresh.reused(), "a consumer's checkouts decide once recorded")
}
